"""Add of random and 75%-zero images through our RBD driver beside glance_store's.

    flock /work/bench.lock .venv/bin/python benchmarks/bench_rbd.py --size 1G [--rounds 3]

Needs the test Ceph (tools/backends/ceph start) and glance_store 5.7.0 (the test
extra). Every add runs in a fresh child process (its own peak RSS), one after
the other, against the same cluster and pool, in the same run as the baseline
(hashlib md5 then sha512 over the same file). glance_store runs as deployed
(``rbd_thin_provisioning`` off, its default) and with it on; both with 8 MiB
chunks, as ours. Each image is deleted right after its add.

The cases are those of ``glance-store-ng bench``: random data, 75% zero 4 KiB
blocks in runs (a disk image's free space), and 75% zero blocks scattered one
by one (the worst case for a thin image: one extent per data block).

The test OSD runs on the same two cores as the client, so every row also shows
the CPU seconds the OSD spent on that add: a wall time here is bound by the sum.
One untimed add of the image size runs first: the first writes into a fresh
memstore OSD cost it about twice the CPU of later ones, which would penalize
whichever implementation happened to run first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from glance_store_ng.bench import CASES, make_image, parse_size, timed

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "backends"


def _ceph_env() -> dict[str, str]:
    sys.path.insert(0, str(TOOLS))
    import backends

    return backends.ensure_ceph()


def _osd_cpu_seconds(env: dict[str, str]) -> float:
    import backends  # on sys.path since _ceph_env()

    return backends.server_cpu_seconds(env["GSN_CEPH_RUN_DIR"], ("osd.0",))


def _run_child(spec: dict) -> dict:
    """One add in a fresh process; its figures plus the OSD's CPU seconds meanwhile."""
    osd_before = _osd_cpu_seconds(spec["env"])
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{spec['impl']} failed:\n{done.stderr}")
    out = json.loads(done.stdout.splitlines()[-1])
    out["osd_cpu_seconds"] = _osd_cpu_seconds(spec["env"]) - osd_before
    return out


def child(spec: dict) -> dict:
    env, path, impl = spec["env"], spec["path"], spec["impl"]
    size = os.path.getsize(path)
    image_id = str(uuid.uuid4())
    if impl == "hashlib md5+sha512":
        import hashlib

        def run():
            md5, sha = hashlib.md5(), hashlib.sha512()
            buffer = memoryview(bytearray(8 << 20))
            with open(path, "rb") as source:
                while count := source.readinto(buffer):
                    md5.update(buffer[:count])
                    sha.update(buffer[:count])

        _, out = timed(run)
        return out
    options = {
        "rbd_store_ceph_conf": env["GSN_CEPH_CONF"],
        "rbd_store_user": env["GSN_CEPH_USER"],
        "rbd_store_pool": env["GSN_CEPH_POOL"],
    }
    if impl.startswith("glance_store_ng"):
        from glance_store_ng import open_store

        store = open_store("rbd", {**options, "rbd_store_direct_writes": "librbd" not in impl})
        assert store.cluster.fsid  # connect first: connecting is not part of an add
        with open(path, "rb") as source:
            result, out = timed(lambda: store.add(image_id, source, size))
        store.delete(result.location)
        store.close()
        return out
    from glance_store_ng.bench.reference import open_reference

    # glance_store's default is thick; ours is thin. Both are measured.
    with open_reference("rbd", {**options, "rbd_thin_provisioning": "thin" in impl}) as theirs:
        with open(path, "rb") as source:
            added, out = timed(lambda: theirs.add(image_id, source, size))
        theirs.delete(added.location)
    return out


IMPLS = [
    "hashlib md5+sha512",
    "glance_store_ng",
    "glance_store_ng (librbd writes)",
    "glance_store",
    "glance_store (thin)",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    size = parse_size(args.size)
    env = _ceph_env()
    work = tempfile.mkdtemp(prefix="gsn-bench-rbd-")
    rows = []
    for case, (zeros, run_blocks) in CASES.items():
        path = os.path.join(work, "image")
        make_image(path, size, zeros, run_blocks)
        base = {"env": env, "path": path}
        if not rows:
            _run_child({**base, "impl": "glance_store_ng"})  # warm-up: grows the OSD's memory
        for _ in range(args.rounds):
            for impl in IMPLS:
                out = _run_child({**base, "impl": impl})
                rows.append((case, impl, out))
                print(case, impl, json.dumps(out), file=sys.stderr, flush=True)
        os.unlink(path)
    best: dict[tuple[str, str], dict] = {}
    for case, impl, out in rows:
        key = (case, impl)
        if key not in best or out["seconds"] < best[key]["seconds"]:
            best[key] = out
    print(
        "| case | implementation | s | MB/s | CPU s | OSD CPU s | peak RSS +MiB "
        "| vs glance_store | vs gs thin |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (case, impl), out in best.items():
        gs, gst = best[(case, "glance_store")], best[(case, "glance_store (thin)")]
        print(
            f"| {case} | {impl} | {out['seconds']:.2f} | {size / out['seconds'] / 1e6:.0f} | "
            f"{out['cpu_seconds']:.2f} | {out['osd_cpu_seconds']:.2f} | "
            f"{out['peak_rss_growth'] / (1 << 20):.0f} | "
            f"{gs['seconds'] / out['seconds']:.2f}x | {gst['seconds'] / out['seconds']:.2f}x |"
        )
    os.rmdir(work)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        main()
