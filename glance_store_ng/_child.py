"""Commands that start a Python module of this package in a child process.

``python -m`` (and ``-c``) put the working directory first on the import path,
so a child started from a clone's root would import the source tree's
``glance_store_ng/`` instead of the installed package (without its drivers and
C module). These commands drop that entry before anything is imported.
"""

from __future__ import annotations

import sys

__all__ = ["module_command", "script_command"]

# With PYTHONSAFEPATH (-P) there is no cwd entry to drop: only an empty first entry goes.
_DROP_CWD = "import sys; sys.path[:1] = [p for p in sys.path[:1] if p]; "


def module_command(module: str, *args: str) -> list[str]:
    """``python -m module args...``, importing the installed package, not the cwd's."""
    run = f"import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    return [sys.executable, "-c", _DROP_CWD + run, *args]


def script_command(code: str, *args: str) -> list[str]:
    """``python -c code args...``, importing the installed package, not the cwd's."""
    return [sys.executable, "-c", _DROP_CWD + code, *args]
