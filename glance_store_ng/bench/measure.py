"""One timed run in this process: wall seconds, CPU seconds and peak RSS growth.

Linux only (it reads and resets the peak RSS through ``/proc/self``). Run one
measurement per process, as the benchmark does, so the peak is the run's own.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["cpu_seconds", "peak_rss", "reset_peak_rss", "rss", "timed"]

T = TypeVar("T")


def cpu_seconds() -> float:
    """User and system CPU seconds of every thread of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss() -> int:
    """This process's resident set size now, in bytes."""
    return _status_bytes("VmRSS")


def peak_rss() -> int:
    """This process's peak resident set size, in bytes, since start or :func:`reset_peak_rss`."""
    return _status_bytes("VmHWM")


def reset_peak_rss() -> None:
    """Make the peak RSS the current RSS, so that a later :func:`peak_rss` is the peak since."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def timed(run: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    """``run()``'s value and its figures: ``seconds`` (wall), ``cpu_seconds`` and
    ``peak_rss_growth`` (bytes over the RSS before it; never negative)."""
    reset_peak_rss()
    rss_before = rss()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    value = run()
    seconds = time.perf_counter() - started
    return value, {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "peak_rss_growth": max(0, peak_rss() - rss_before),
    }


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")
