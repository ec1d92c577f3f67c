"""A benchmark's results: one :class:`Measurement` per step (the median of its rounds, with
each round kept), our ratio to glance_store, an aligned text table, and a chart (with the
``bench`` extra: matplotlib)."""

from __future__ import annotations

import dataclasses
import statistics
import textwrap
from typing import Any

from ..errors import InvalidArgument
from ..units import MiB
from .cases import CASES, GLANCE_STORE, NO_FSYNC, NO_MD5, OUR_IMPLEMENTATIONS, OURS

__all__ = ["Measurement", "check_plotting", "format_table", "plot", "ratios"]


@dataclasses.dataclass
class Measurement:
    """One timed operation: with several rounds, the median of each figure, every round's
    own figures in :attr:`rounds`."""

    case: str
    operation: str  # add, get, hash md5+sha512, copy
    implementation: str  # glance_store_ng, glance_store, hashlib, read/write
    size: int
    seconds: float
    cpu_seconds: float
    peak_rss_growth: int  # bytes over the child's RSS before the operation
    allocated: int | None = None  # bytes the backend allocated for the image, where known
    #: every round's figures (seconds, cpu_seconds, peak_rss_growth, allocated), where known
    rounds: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @classmethod
    def of_rounds(
        cls, case: str, operation: str, implementation: str, size: int, rounds: list[dict]
    ) -> Measurement:
        """The median of ``rounds`` (each a step's figures), keeping every round."""
        allocated = [r["allocated"] for r in rounds if r.get("allocated") is not None]
        return cls(
            case=case,
            operation=operation,
            implementation=implementation,
            size=size,
            seconds=statistics.median(r["seconds"] for r in rounds),
            cpu_seconds=statistics.median(r["cpu_seconds"] for r in rounds),
            peak_rss_growth=statistics.median_low(r["peak_rss_growth"] for r in rounds),
            allocated=statistics.median_low(allocated) if allocated else None,
            rounds=[
                {k: r.get(k) for k in ("seconds", "cpu_seconds", "peak_rss_growth", "allocated")}
                for r in rounds
            ],
        )

    def _speed(self, seconds: float) -> float:
        return self.size / max(seconds, 1e-9) / 1e6

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10**6 bytes per second); the median of the rounds'."""
        if not self.rounds:
            return self._speed(self.seconds)
        return statistics.median(self._speed(r["seconds"]) for r in self.rounds)

    @property
    def mb_per_s_range(self) -> tuple[float, float]:
        """The slowest and the fastest round's MB/s."""
        speeds = [self._speed(r["seconds"]) for r in self.rounds] or [self.mb_per_s]
        return min(speeds), max(speeds)

    def as_json(self) -> dict[str, Any]:
        """The figures as ``--json`` prints them: the medians, MB/s with its range, every round."""
        low, high = self.mb_per_s_range
        rounds = self.rounds or [
            {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
             "peak_rss_growth": self.peak_rss_growth, "allocated": self.allocated}
        ]  # fmt: skip
        return {
            **dataclasses.asdict(self),
            "mb_per_s": self.mb_per_s,
            "mb_per_s_min": low,
            "mb_per_s_max": high,
            "rounds": [{**r, "mb_per_s": self._speed(r["seconds"])} for r in rounds],
        }


def ratios(results: list[Measurement]) -> dict[tuple[str, str, str], float]:
    """Our speed over glance_store's (medians), per (case, operation, our implementation)."""
    speed = {(m.case, m.operation, m.implementation): m.mb_per_s for m in results}
    out = {}
    for (case, op, impl), value in speed.items():
        theirs = speed.get((case, op, GLANCE_STORE))
        if impl in OUR_IMPLEMENTATIONS and theirs:
            out[(case, op, impl)] = value / theirs
    return out


def format_table(results: list[Measurement]) -> str:
    """The results as an aligned text table, with the ratio to glance_store where measured.

    With several rounds, MB/s is the median with the slowest and fastest round's in
    parentheses (``231 (220-240)``) and the other figures are medians."""
    ratio = ratios(results)
    several = any(len(m.rounds) > 1 for m in results)
    head = (
        "case",
        "operation",
        "implementation",
        "MB/s median (min-max)" if several else "MB/s",
        "CPU s",
        "peak RSS +MiB",
        "allocated",
        "vs glance_store",
    )
    rows = [head]
    for m in results:
        allocated = "-" if m.allocated is None else f"{100 * m.allocated / max(m.size, 1):.0f}%"
        r = ratio.get((m.case, m.operation, m.implementation))
        speed = f"{m.mb_per_s:,.0f}"
        if len(m.rounds) > 1:
            low, high = m.mb_per_s_range
            speed += f" ({low:,.0f}-{high:,.0f})"
        rows.append(
            (
                m.case, m.operation, m.implementation, speed, f"{m.cpu_seconds:.2f}",
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
            "--plot needs matplotlib: pip install '.[bench]' from the clone"
        ) from None


# -- the chart ------------------------------------------------------------------------------

#: Each panel's operation, its title, and the bars it shows in each case's group:
#: (operation, implementation) -> legend label and colour. The baselines are what an add
#: must do (hash, write and fsync), so they stand beside the adds; the no-fsync store reads
#: as the other does, so the get panel leaves it out (the table has it).
_PANELS = {
    "add": "add: the image into the store (hashed, zero runs skipped)",
    "get": "get: the image back from the store",
}
_SERIES = {
    ("add", OURS): ("glance_store_ng", "#1f5fa8"),
    ("add", NO_FSYNC): ("glance_store_ng, no fsync (as glance_store writes)", "#86b0e0"),
    ("add", NO_MD5): ("glance_store_ng, xxh3_128 without md5", "#5fb0a0"),
    ("add", GLANCE_STORE): ("glance_store", "#e8873a"),
    ("hash md5", "hashlib"): ("baseline: hashlib md5 alone", "#e3e3e3"),
    ("hash md5+sha512", "hashlib"): ("baseline: md5 then sha512 (as glance_store)", "#c8c8c8"),
    ("copy+fsync", "read/write"): ("baseline: plain copy + fsync", "#a3a3a3"),
    ("get", OURS): ("glance_store_ng", "#1f5fa8"),
    ("get", GLANCE_STORE): ("glance_store", "#e8873a"),
}  # fmt: skip
_PANEL_OF = {"add": "add", "get": "get", "hash md5": "add", "hash md5+sha512": "add",
             "copy+fsync": "add"}  # fmt: skip


def _size_text(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def plot(
    results: list[Measurement],
    path: str,
    *,
    store: str | None = None,
    machine: str | None = None,
) -> Any:
    """A chart of MB/s (higher is better) to ``path`` (PNG): one panel per operation (add,
    get), a group of bars per case, ours beside glance_store's (our ratio to it written
    above our bars) and, beside the adds, the baselines; with several rounds the bars are
    medians and the error bars span the slowest to the fastest round. A panel whose bars
    span more than 10x is drawn on a log scale. The title names the image size, ``store``
    (default: the embedded file store) and the ``machine`` (default: this one). Returns the
    matplotlib Figure."""
    check_plotting()
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from .. import native
    from . import machine as machine_info

    by_key = {(m.case, m.operation, m.implementation): m for m in results}
    ratio = ratios(results)
    panels = [op for op in _PANELS if any(_PANEL_OF.get(m.operation) == op for m in results)]
    if not panels:
        raise InvalidArgument("nothing to plot: no add or get was measured")
    measured = {(m.operation, m.implementation) for m in results}
    series = {op: [k for k in _SERIES if _PANEL_OF[k[0]] == op and k in measured] for op in panels}
    cases = {
        op: list(dict.fromkeys(m.case for m in results if (m.operation, m.implementation) in keys))
        for op, keys in series.items()
    }
    slots = {op: _slots(keys) for op, keys in series.items()}
    width = 0.86 / max(max(x) + 1 for x in slots.values())  # the same bar width in every panel
    rounds = max(len(m.rounds) for m in results) or 1

    groups = max(len(c) for c in cases.values())
    fig = Figure(
        figsize=(max(12, 1.5 + 2.7 * groups), 4.2 * len(panels) + 1.4), layout="constrained"
    )
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    handles: dict[str, Any] = {}
    for ax, op in zip(axes, panels, strict=True):
        keys = series[op]
        tops = []
        for s, key in enumerate(keys):
            label, colour = _SERIES[key]
            xs, heights, low, high, tagged = [], [], [], [], []
            for g, case in enumerate(cases[op]):
                m = by_key.get((case, *key))
                if m is None:
                    continue
                x = g + (slots[op][s] - max(slots[op]) / 2) * width
                lo, hi = m.mb_per_s_range
                xs.append(x)
                heights.append(m.mb_per_s)
                low.append(m.mb_per_s - lo)
                high.append(hi - m.mb_per_s)
                tops.append(hi)
                r = ratio.get((case, *key))
                if r is not None:
                    tagged.append((x, hi, r))
            bars = ax.bar(
                xs, heights, width * 0.92, color=colour, label=label,
                edgecolor="#333333" if key[1] in (*OUR_IMPLEMENTATIONS, GLANCE_STORE) else colour,
                linewidth=0.6,
                yerr=[low, high] if rounds > 1 else None,
                error_kw={"elinewidth": 1, "capsize": 2.5, "ecolor": "#222222"},
            )  # fmt: skip
            handles.setdefault(label, bars)
            for x, hi, r in tagged:
                ax.annotate(
                    f"{r:.0f}×" if r >= 10 else f"{r:.1f}×", (x, hi), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8.5,
                    fontweight="bold",
                    color="#17692b" if r >= 1.05 else "#b3261e" if r <= 0.95 else "#444444",
                )  # fmt: skip
        top = max(tops)
        shown = [m.mb_per_s_range[0] for m in results if (m.operation, m.implementation) in keys]
        bottom = min((v for v in shown if v > 0), default=top)
        if top > 10 * bottom:  # a linear axis would flatten the slower bars
            ax.set_yscale("log")
            ax.set_ylim(bottom / 1.6, top * 1.8)
            ax.yaxis.set_minor_formatter(NullFormatter())
            scale = ", log scale"
        else:
            ax.set_ylim(0, top * 1.14)
            scale = ""
        ax.yaxis.set_major_formatter(
            FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
        )
        ax.set_title(_PANELS[op], loc="left", fontsize=11, fontweight="bold")
        ax.set_ylabel(f"MB/s, higher is better{scale}")
        ax.set_xticks(range(len(cases[op])))
        ax.set_xticklabels([_case_label(case, results) for case in cases[op]], fontsize=10)
        ax.tick_params(axis="x", length=0)
        ax.set_xlim(-0.5, len(cases[op]) - 0.5)
        ax.grid(axis="y", color="#e6e6e6", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

    generated = {m.size for m in results if m.case in CASES}
    sizes = ", ".join(_size_text(s) for s in sorted(generated)) or "your"
    how = f"median of {rounds} rounds, error bars: slowest to fastest" if rounds > 1 else "1 round"
    fig.suptitle(
        "glance-store-ng bench: MB/s, higher is better;  ×: our speed ÷ glance_store's\n"
        f"{sizes} images · {store or 'the embedded file store'} · {how}\n"
        f"machine: {machine or machine_info.summary(native.IMPLEMENTATION)}",
        fontsize=11,
    )
    ncol = 3
    order = _by_rows(list(handles), ncol)
    fig.legend(
        [handles[label] for label in order], order, loc="outside lower center", ncol=ncol,
        fontsize=9, frameon=False,
    )  # fmt: skip
    fig.savefig(path, dpi=120)
    return fig


def _slots(keys: list[tuple[str, str]]) -> list[float]:
    """Where each bar of a group stands, in bar widths: side by side, the baselines set apart."""
    out, x, previous = [], 0.0, None
    for key in keys:
        ours = key[1] in (*OUR_IMPLEMENTATIONS, GLANCE_STORE)
        if previous is not None and previous != ours:
            x += 0.5
        out.append(x)
        x += 1
        previous = ours
    return out


def _by_rows(labels: list[str], ncol: int) -> list[str]:
    """``labels`` reordered so that a legend, which fills column by column, reads row by row."""
    rows = -(-len(labels) // ncol)
    grid = [labels[i : i + ncol] for i in range(0, len(labels), ncol)]
    return [grid[r][c] for c in range(ncol) for r in range(rows) if c < len(grid[r])]


def _case_label(case: str, results: list[Measurement]) -> str:
    """A group's label: the case, and for a file of the user's its size."""
    if case in CASES:
        return case
    size = next(m.size for m in results if m.case == case)
    return "\n".join([*textwrap.wrap(case, 24), f"({_size_text(size)})"])
