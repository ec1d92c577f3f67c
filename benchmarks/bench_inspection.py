"""What format inspection costs an add: inspection enforced beside off, in one run.

    .venv/bin/python benchmarks/bench_inspection.py --size 1G [--rounds 3] [--dir /dev/shm]

Two images of ``--size``: raw (random bytes) and qcow2 (the same bytes converted by
qemu-img, so about the same length). Each is added to a filesystem store without
fsync (the fastest store, where a cost shows most), alternately with
``image_inspection = enforce`` and ``off``, ``--rounds`` times, each add in a fresh
process (its CPU seconds are its own; the engine, which a running service imports once
at its first inspected add, is imported before the timed add). Prints the median MB/s
and CPU seconds of each, and the ratio of inspected to uninspected throughput. Whole
adds differ by more between rounds than inspection costs, so it also times the
inspection alone on each image (the file read in 1 MiB pieces, only the feed and
finish calls timed): its share of an add.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from glance_store_ng.units import MiB, parse_size


def child(spec: dict) -> dict:
    from glance_store_ng import open_store

    options = {
        "filesystem_store_datadir": spec["datadir"],
        "filesystem_store_fsync": False,
        "image_inspection": spec["inspection"],
    }
    if spec["inspection"] != "off":  # imported once per process, at the first add: not timed
        import oslo_utils.imageutils.format_inspector  # noqa: F401
    with open_store("file", options) as store, open(spec["path"], "rb") as f:
        cpu0 = sum(os.times()[:2])
        started = time.perf_counter()
        result = store.add(str(uuid.uuid4()), f, os.path.getsize(spec["path"]),
                           disk_format=spec["format"])  # fmt: skip
        seconds = time.perf_counter() - started
        cpu = sum(os.times()[:2]) - cpu0
        store.delete(result.location)
    return {"seconds": seconds, "cpu": cpu, "detected": result.metadata.get("disk_format_detected")}


def inspection_seconds(path: str, fmt: str) -> float:
    """The time an Inspection takes over the whole file, fed 1 MiB at a time."""
    from glance_store_ng.inspection import Inspection

    inspection = Inspection(fmt)
    buffer = bytearray(MiB)
    view = memoryview(buffer)
    spent = 0.0
    with open(path, "rb") as f:
        while count := f.readinto(buffer):
            started = time.perf_counter()
            inspection.feed(view[:count])
            spent += time.perf_counter() - started
    started = time.perf_counter()
    inspection.finish()
    return spent + time.perf_counter() - started


def run(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child"], input=json.dumps(spec), capture_output=True,
        text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"{spec}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default="/dev/shm")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.load(sys.stdin))))
        return
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        raw = os.path.join(work, "image.raw")
        with open(raw, "wb") as f:
            for _ in range(0, size, 8 * MiB):
                f.write(os.urandom(8 * MiB))
            f.truncate(size)
        qcow2 = os.path.join(work, "image.qcow2")
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", raw, qcow2], check=True)
        datadir = os.path.join(work, "store")
        figures: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.rounds):
            for fmt, path in (("raw", raw), ("qcow2", qcow2)):
                for inspection in ("enforce", "off"):
                    spec = {"path": path, "format": fmt, "inspection": inspection,
                            "datadir": datadir}  # fmt: skip
                    figures.setdefault((fmt, inspection), []).append(run(spec))
        print(f"image {size / MiB:.0f} MiB, median of {args.rounds}, filesystem store, no fsync")
        print(f"{'image':<8}{'inspection':<12}{'MB/s':>8}{'CPU s':>8}{'x off':>8}  detected")
        for fmt, path in (("raw", raw), ("qcow2", qcow2)):
            length = os.path.getsize(path)
            off = statistics.median(r["seconds"] for r in figures[fmt, "off"])
            for inspection in ("enforce", "off"):
                rows = figures[fmt, inspection]
                seconds = statistics.median(r["seconds"] for r in rows)
                cpu = statistics.median(r["cpu"] for r in rows)
                print(f"{fmt:<8}{inspection:<12}{length / seconds / 1e6:>8.0f}{cpu:>8.2f}"
                      f"{off / seconds:>8.3f}  {rows[0]['detected'] or '-'}")  # fmt: skip
        for fmt, path in (("raw", raw), ("qcow2", qcow2)):
            alone = statistics.median(inspection_seconds(path, fmt) for _ in range(args.rounds))
            off = statistics.median(r["seconds"] for r in figures[fmt, "off"])
            print(f"{fmt}: the inspection alone takes {alone * 1000:.1f} ms, "
                  f"{alone / off * 100:.2f} % of the uninspected add")  # fmt: skip


if __name__ == "__main__":
    main()
