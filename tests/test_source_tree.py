"""A clone's source tree is not the installed package: importing it says so in one line, and
the package's own child processes never import it by accident."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from glance_store_ng._child import module_command, script_command

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_source_tree_fails_with_one_clear_line():
    # -S: no site-packages, so nothing maps drivers/ into the package (as in a clone whose
    # package was installed elsewhere with pip install .)
    done = subprocess.run(
        [sys.executable, "-S", "-c", "import glance_store_ng"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: glance_store_ng is imported from its source tree")
    assert "pip install -e ." in last and "outside the clone" in last


def test_children_import_the_installed_package_not_the_working_directorys(tmp_path):
    decoy = tmp_path / "glance_store_ng"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('the decoy in the cwd was imported')\n")
    for command in (
        module_command("glance_store_ng._version"),
        script_command("import glance_store_ng, sys; print(glance_store_ng.__file__)", "x"),
    ):
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert str(tmp_path) not in done.stdout
