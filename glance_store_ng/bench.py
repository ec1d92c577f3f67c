"""``glance-store-ng bench``: measure adds and gets against a store, beside baselines.

For each case (a random image; two with 75% of their 4 KiB blocks zero, in
runs as a disk image's free space is, or scattered one by one, the worst case
for a sparse file; optionally a file of yours)
it adds the image to the store and reads it back, each measurement in a fresh
child process so its peak RSS is its own, and reports MB/s, CPU seconds, peak
RSS growth and the storage allocated. In the same run it measures the bare
baselines (hashlib md5 alone, and md5 then sha512 on the same chunks, as
glance_store hashes; a plain read/write copy with fsync) and, where the
``glance_store`` package is importable, the same add and get through
glance_store's driver for the same backend with the same options (see
:mod:`.reference`), and prints our ratio to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from .config import configured_backends, open_store
from .errors import ConfigError, InvalidArgument
from .reference import DRIVERS as REFERENCE_DRIVERS
from .reference import glance_store_available, open_reference

__all__ = ["Measurement", "run_bench", "format_table"]

MiB = 1 << 20
BLOCK = 4096
OURS = "glance_store_ng"
NO_FSYNC = "glance_store_ng, no fsync"  # the embedded file store as glance_store writes: no fsync
GLANCE_STORE = "glance_store"


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
        return self.size / max(self.seconds, 1e-9) / 1e6


# -- images ---------------------------------------------------------------------------------


def make_image(
    path: str, size: int, zero_fraction: float, run_blocks: int = 1, seed: int = 1
) -> None:
    """Write ``size`` bytes where ``zero_fraction`` of the 4 KiB blocks are all zero.

    Zero and data blocks come in runs of 1 to ``2 * run_blocks - 1`` blocks
    (mean ``run_blocks``): 1 scatters single blocks (the worst case for a
    sparse file), larger runs resemble a real disk image's free space.
    """
    rng = random.Random(seed)
    blocks = -(-size // BLOCK)
    with open(path, "wb") as out:
        pending = bytearray()
        block = 0
        while block < blocks:
            count = min(rng.randint(1, 2 * run_blocks - 1), blocks - block)
            length = min(count * BLOCK, size - block * BLOCK)
            zero = rng.random() < zero_fraction
            pending += bytes(length) if zero else os.urandom(length)
            block += count
            if len(pending) >= 8 * MiB:
                out.write(pending)
                pending.clear()
        out.write(pending)


#: The generated cases: name -> (fraction of zero blocks, mean run length in blocks).
CASES = {
    "random": (0.0, 1),
    "75% zero, runs": (0.75, 64),
    "75% zero, scattered": (0.75, 1),
}


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``4096``: a size in bytes (binary units)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise InvalidArgument(f"size {text!r} is not a size such as 1G, 512M or 4096") from None


# -- the child process: one operation, its own peak RSS --------------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return usage.ru_utime + usage.ru_stime


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _timed(run: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    rss_before = _status_kib("VmRSS")
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    value = run()
    seconds = time.perf_counter() - started
    return value, {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu_before,
        "peak_rss_growth": max(0, _status_kib("VmHWM") - rss_before),
    }


def _open(spec: dict[str, Any]) -> Any:
    """The store ``spec`` measures: ours (a :class:`Store`) or glance_store's driver for the
    same backend with the same options (a :class:`ReferenceStore`, used alike)."""
    if spec.get("config"):
        backends, default = configured_backends(spec["config"])
        backend = backends[spec.get("backend") or default]
        driver, options = backend.driver, backend.options
        label = None if backend.legacy else backend.name
    else:
        driver, options, label = "file", {"filesystem_store_datadir": spec["datadir"]}, "bench"
    if spec["implementation"] == GLANCE_STORE:
        return open_reference(driver, options)
    if spec["implementation"] == NO_FSYNC:
        options = {**options, "filesystem_store_fsync": False}
    return open_store(driver, options, backend=label)


def _measured_driver(config: str | None, backend: str | None) -> str:
    """The driver of the backend measured (the embedded store is a file store); a
    ConfigError names an unknown backend before anything runs."""
    if not config:
        return "file"
    backends, default = configured_backends(config)
    name = backend or default
    if name not in backends:
        raise ConfigError(f"no backend {name!r}; enabled backends: {', '.join(backends)}")
    return backends[name].driver


def _allocated(location: str) -> int | None:
    if location.startswith("file://"):
        return os.stat(location[len("file://") :]).st_blocks * 512
    return None


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one operation described by ``spec``; return its figures (and a location for adds)."""
    op, impl, path = spec["operation"], spec["implementation"], spec.get("path")
    result: dict[str, Any] = {}
    if impl in (OURS, NO_FSYNC, GLANCE_STORE):
        with _open(spec) as store:
            if op == "add":
                with open(path, "rb") as source:
                    added, result = _timed(
                        lambda: store.add(str(uuid.uuid4()), source, os.path.getsize(path))
                    )
                os.sync()
                result.update(location=added.location, allocated=_allocated(added.location))
            elif op == "get":

                def read_all() -> None:
                    with store.get(spec["location"]) as chunks:
                        for _ in chunks:
                            pass

                _, result = _timed(read_all)
            elif op == "delete":
                store.delete(spec["location"])
    elif impl == "hashlib":
        import hashlib

        names = ["md5"] if op == "hash md5" else ["md5", "sha512"]

        def hash_sequentially() -> None:
            digests = [hashlib.new(name) for name in names]
            buffer = memoryview(bytearray(MiB))
            with open(path, "rb") as source:
                while count := source.readinto(buffer):
                    for digest in digests:
                        digest.update(buffer[:count])

        _, result = _timed(hash_sequentially)
    elif impl == "read/write":
        target = os.path.join(spec["datadir"], f"copy-{uuid.uuid4()}")

        def copy() -> None:
            buffer = memoryview(bytearray(MiB))
            with open(path, "rb") as source, open(target, "wb") as out:
                while count := source.readinto(buffer):
                    out.write(buffer[:count])
                out.flush()
                os.fsync(out.fileno())

        _, result = _timed(copy)
        os.unlink(target)
    else:
        raise InvalidArgument(f"unknown implementation {impl!r}")
    return result


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "glance_store_ng.bench", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"benchmark step {spec['implementation']} {spec['operation']} failed:\n{done.stderr}"
        )
    return json.loads(done.stdout)


# -- the parent: cases, runs, table ---------------------------------------------------------


def run_bench(
    *,
    size: int,
    files: list[str] = (),  # type: ignore[assignment]
    config: str | None = None,
    backend: str | None = None,
    workdir: str | None = None,
    compare: bool = True,
    baselines: bool = True,
    progress: Callable[[str], None] = lambda line: None,
) -> list[Measurement]:
    """Every case through every implementation; see the module docstring."""
    driver = _measured_driver(config, backend)
    impls = [OURS] + ([NO_FSYNC] if not config else [])
    if compare and glance_store_available():
        if driver in REFERENCE_DRIVERS:
            impls.append(GLANCE_STORE)
        else:
            progress("glance_store has no driver like this backend's: not compared")
    work = tempfile.mkdtemp(prefix="gsn-bench-", dir=workdir)
    try:
        datadir = os.path.join(work, "store")
        os.makedirs(datadir)
        cases: list[tuple[str, str]] = []
        for name, (zeros, run) in CASES.items():
            path = os.path.join(work, f"image-{len(cases)}")
            progress(f"generating the {name} image ({size / MiB:.0f} MiB)")
            make_image(path, size, zeros, run)
            cases.append((name, path))
        cases += [(os.path.basename(f), f) for f in files]
        base = {"datadir": datadir, "config": config, "backend": backend}
        results: list[Measurement] = []
        for name, path in cases:
            image_size = os.path.getsize(path)
            if baselines:
                for impl, op in (
                    ("hashlib", "hash md5"),
                    ("hashlib", "hash md5+sha512"),
                    ("read/write", "copy+fsync"),
                ):
                    progress(f"{name}: {op} ({impl})")
                    out = _run_child(
                        {**base, "operation": op, "implementation": impl, "path": path}
                    )
                    results.append(_measurement(name, op, impl, image_size, out))
            for impl in impls:
                progress(f"{name}: add ({impl})")
                added = _run_child(
                    {**base, "operation": "add", "implementation": impl, "path": path}
                )
                results.append(_measurement(name, "add", impl, image_size, added))
                progress(f"{name}: get ({impl})")
                spec = {**base, "implementation": impl, "location": added["location"]}
                try:
                    got = _run_child({**spec, "operation": "get"})
                    results.append(_measurement(name, "get", impl, image_size, got))
                finally:  # a configured backend must not keep benchmark images
                    _run_child({**spec, "operation": "delete"})
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measurement(case: str, op: str, impl: str, size: int, out: dict[str, Any]) -> Measurement:
    return Measurement(
        case=case,
        operation=op,
        implementation=impl,
        size=size,
        seconds=out["seconds"],
        cpu_seconds=out["cpu_seconds"],
        peak_rss_growth=out["peak_rss_growth"],
        allocated=out.get("allocated"),
    )


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


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
