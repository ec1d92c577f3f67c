"""The machine a benchmark runs on: its cores, CPU model and load, for the chart's title and
the warning that figures taken on a busy machine swing.

:func:`load_average` is the one place the load is read, so a test can replace it.
"""

from __future__ import annotations

import os
import platform
import re

__all__ = ["BUSY_LOAD_PER_CORE", "cores", "cpu_model", "load_average", "load_warning", "summary"]

#: A 1-minute load average over this many runnable tasks per core counts as busy.
BUSY_LOAD_PER_CORE = 0.5


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float:
    """The machine's 1-minute load average."""
    return os.getloadavg()[0]


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name as /proc/cpuinfo gives it (``(R)``, ``(TM)`` and ``CPU`` left
    out), else what :mod:`platform` knows."""
    try:
        with open(cpuinfo) as info:
            text = info.read()
    except OSError:
        text = ""
    for field in ("model name", "Model", "Hardware", "cpu model", "cpu"):
        found = re.search(rf"^{field}\s*:\s*(.+)$", text, re.MULTILINE)
        if found:
            name = re.sub(r"\((R|TM|tm)\)|\bCPU\b", "", found.group(1))
            return " ".join(name.split())
    return platform.processor() or platform.machine() or "unknown CPU"


def summary(implementation: str) -> str:
    """``2 cores, Intel Xeon Processor, native C hashing``: the machine, as the chart's title
    names it (``implementation``: :data:`glance_store_ng.native.IMPLEMENTATION`)."""
    n = cores()
    hashing = {"native": "native C hashing", "python": "pure-Python hashing"}
    return f"{n} core{'s' if n != 1 else ''}, {cpu_model()}, " + hashing.get(
        implementation, f"{implementation} hashing"
    )


def load_warning() -> str | None:
    """One line saying the machine is busy (the load average and the cores), or None."""
    load, n = load_average(), cores()
    if load <= BUSY_LOAD_PER_CORE * n:
        return None
    return (
        f"the machine is busy (1-minute load average {load:.2f} on {n} "
        f"core{'s' if n != 1 else ''}): figures will swing; run it idle, or use --rounds 3 or more"
    )
