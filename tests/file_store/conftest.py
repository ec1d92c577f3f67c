"""Fixtures of the filesystem driver's tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture
def tiny_filesystem(tmp_path) -> Iterator[str]:
    """A 4 MiB tmpfs: the real ENOSPC. Mounting needs root (CI runs as root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(
            f"this test mounts a 4 MiB tmpfs to fill it and needs root: {done.stderr.strip()}"
        )
    try:
        yield str(mount)
    finally:
        subprocess.run(["umount", str(mount)], check=True)
