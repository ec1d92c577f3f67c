"""``glance-status upgrade check`` fails in Glance 33 on its own (NoSuchOptError:
enabled_backends); with this package installed it must fail no differently (its
legacy option registration loads every installed driver's options)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def upgrade_check(python: str, script: Path, conf: Path) -> tuple[int, str]:
    done = subprocess.run(
        [python, str(script), "--config-file", str(conf), "upgrade", "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "Error:" in line]
    return done.returncode, errors[-1] if errors else ""  # the exception the check died of


def test_glance_status_fails_no_differently_with_our_drivers(glance_venv, tmp_path):
    conf = tmp_path / "glance-api.conf"
    conf.write_text(
        "[glance_store]\nstores = file\ndefault_store = file\n"
        f"filesystem_store_datadir = {tmp_path / 'images'}\n"
        f"[database]\nconnection = sqlite:///{tmp_path / 'glance.sqlite'}\n"
    )
    script = Path(glance_venv["base_venv"]) / "bin" / "glance-status"
    without_us = upgrade_check(str(Path(glance_venv["base_venv"]) / "bin" / "python"), script, conf)
    with_us = upgrade_check(glance_venv["python"], script, conf)
    assert with_us == without_us
    assert "NoSuchOptError" in with_us[1] and "enabled_backends" in with_us[1]
    found = subprocess.run(
        [glance_venv["python"], "-c", "import glance_store_ng.glance.drivers"],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stderr  # our drivers really were importable there
