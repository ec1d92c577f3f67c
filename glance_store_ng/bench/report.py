"""A benchmark's results: one :class:`Measurement` per step, our ratio to glance_store,
an aligned text table, and a bar chart (with the ``bench`` extra: matplotlib)."""

from __future__ import annotations

import dataclasses

from ..errors import InvalidArgument
from ..units import MiB
from .cases import GLANCE_STORE, NO_FSYNC, OURS

__all__ = ["Measurement", "check_plotting", "format_table", "plot", "ratios"]


@dataclasses.dataclass
class Measurement:
    """One timed operation."""

    case: str
    operation: str  # add, get, hash md5+sha512, copy
    implementation: str  # glance_store_ng, glance_store, hashlib, read/write
    size: int
    seconds: float
    cpu_seconds: float
    peak_rss_growth: int  # bytes over the child's RSS before the operation
    allocated: int | None = None  # bytes the backend allocated for the image, where known

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10**6 bytes per second)."""
        return self.size / max(self.seconds, 1e-9) / 1e6


def ratios(results: list[Measurement]) -> dict[tuple[str, str, str], float]:
    """Our speed over glance_store's, per (case, operation, our implementation)."""
    speed = {(m.case, m.operation, m.implementation): m.mb_per_s for m in results}
    out = {}
    for (case, op, impl), value in speed.items():
        theirs = speed.get((case, op, GLANCE_STORE))
        if impl in (OURS, NO_FSYNC) and theirs:
            out[(case, op, impl)] = value / theirs
    return out


def format_table(results: list[Measurement]) -> str:
    """The results as an aligned text table, with the ratio to glance_store where measured."""
    ratio = ratios(results)
    head = (
        "case",
        "operation",
        "implementation",
        "MB/s",
        "CPU s",
        "peak RSS +MiB",
        "allocated",
        "vs glance_store",
    )
    rows = [head]
    for m in results:
        allocated = "-" if m.allocated is None else f"{100 * m.allocated / max(m.size, 1):.0f}%"
        r = ratio.get((m.case, m.operation, m.implementation))
        rows.append(
            (
                m.case, m.operation, m.implementation, f"{m.mb_per_s:,.0f}", f"{m.cpu_seconds:.2f}",
                f"{m.peak_rss_growth / MiB:.1f}", allocated, f"{r:.2f}x" if r else "",
            )
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i >= 3 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def check_plotting() -> None:
    """InvalidArgument naming the package to install when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InvalidArgument(
            "--plot needs matplotlib: pip install 'glance_store_ng[bench]'"
        ) from None


def plot(results: list[Measurement], path: str) -> None:
    """A bar chart of MB/s per case and operation, one bar per implementation."""
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((m.case, m.operation) for m in results))
    impls = list(dict.fromkeys(m.implementation for m in results))
    speed = {(m.case, m.operation, m.implementation): m.mb_per_s for m in results}
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups)), 4.5))
    width = 0.8 / len(impls)
    for i, impl in enumerate(impls):
        xs = [g + i * width for g in range(len(groups))]
        ax.bar(xs, [speed.get((*group, impl), 0) for group in groups], width, label=impl)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))])
    ax.set_xticklabels([f"{c}\n{o}" for c, o in groups], fontsize=8)
    ax.set_ylabel("MB/s")
    ax.set_title("glance-store-ng bench")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
