"""``glance-store-ng bench`` on a configured backend, glance_store's driver measured beside ours."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

EXE = shutil.which("glance-store-ng", path=os.path.dirname(sys.executable)) or "glance-store-ng"
CASES = ("random", "75% zero, runs", "75% zero, scattered")


def bench_beside_glance_store(config: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``glance-store-ng --config CONFIG --json bench`` on 1 MiB images (no baselines),
    check that every case went through both drivers, and return the JSON report."""
    path = tmp_path / "glance-api.conf"
    path.write_text(config)
    done = subprocess.run(
        [EXE, "--config", str(path), "--json", "bench", "--size", "1M", "--no-baselines",
         "--workdir", str(tmp_path)],
        capture_output=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    rows = {(r["case"], r["operation"], r["implementation"]) for r in report["results"]}
    for case in CASES:
        for impl in ("glance_store_ng", "glance_store"):
            assert {(case, "add", impl), (case, "get", impl)} <= rows, (case, impl)
    compared = {(r["case"], r["operation"]) for r in report["ratios"]}
    assert compared == {(case, op) for case in CASES for op in ("add", "get")}
    assert all(r["ratio"] > 0 for r in report["ratios"])
    return report
