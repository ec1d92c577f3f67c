"""Uploads and downloads through a real Glance 33's API: glance_store's drivers beside ours.

    flock /work/bench.lock .venv/bin/python benchmarks/bench_glance.py --size 1G

One Glance (tests/glance/glance_testing.py: Glance 33 from PyPI in its own venv,
gunicorn with one worker) holds a backend of glance_store's and one of ours for
each kind measured (``file``, ``s3`` on the test Swift's s3api, ``rbd`` on the
test Ceph), each with the same options and otherwise the drivers' defaults (as
deployed: ours fsyncs file images, glance_store does not). The same image (random
bytes, or another ``--case`` of ``glance-store-ng bench``) is uploaded with a known size (raw
HTTP, Content-Length) to each backend in turn, then downloaded in full and
deleted, one operation at a time, in the same run. Each row shows the wall time,
MB/s, the glance-api worker's CPU seconds and its peak RSS during the operation
(the worker's VmHWM, reset before each), and our ratio to glance_store's.

The servers under test share the two cores with Glance: the worker's CPU
seconds tell how much of a wall time was Glance's own.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests" / "glance"), str(HERE.parent / "tests")]

import real_backends  # noqa: E402
from glance_testing import Backend, GlanceConfig, GlanceServer, glance_install  # noqa: E402
from real_backends import backends_module  # noqa: E402

from glance_store_ng.bench import CASES, make_image, parse_size  # noqa: E402
from glance_store_ng.units import MiB  # noqa: E402

KINDS = ("file", "s3", "rbd")


def backend_options(kind: str, root: Path) -> dict[str, str]:
    """The same options for glance_store's backend and ours of ``kind``."""
    if kind == "file":
        return {"filesystem_store_datadir": str(root / secrets.token_hex(4))}
    if kind == "s3":
        swift = real_backends.swift_env()
        return {
            "s3_store_host": swift["GSN_S3_ENDPOINT"],
            "s3_store_access_key": swift["GSN_S3_ACCESS_KEY"],
            "s3_store_secret_key": swift["GSN_S3_SECRET_KEY"],
            "s3_store_bucket": f"gsn-bench-{secrets.token_hex(4)}",
            "s3_store_create_bucket_on_put": "true",
        }
    ceph = real_backends.ceph_env(rbd=True)
    return {
        "rbd_store_ceph_conf": ceph["GSN_CEPH_CONF"],
        "rbd_store_user": ceph["GSN_CEPH_USER"],
        "rbd_store_pool": ceph["GSN_CEPH_POOL"],
    }


def cpu_seconds(server: GlanceServer) -> float:
    """User + system CPU seconds of the gunicorn workers so far."""
    return backends_module().cpu_seconds(server.worker_pids())


def measured(server: GlanceServer, run) -> tuple[float, float, int]:
    """``run()``'s wall seconds, the worker's CPU seconds and its peak RSS meanwhile."""
    server.reset_peak_rss()
    cpu = cpu_seconds(server)
    started = time.monotonic()
    run()
    return time.monotonic() - started, cpu_seconds(server) - cpu, server.peak_rss()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="image size (default 1G)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="file,s3,rbd (default all)")
    parser.add_argument("--case", default="random", choices=sorted(CASES), help="the image")
    args = parser.parse_args()
    size = parse_size(args.size)
    kinds = [kind for kind in args.kinds.split(",") if kind]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(sorted(unknown))}; choose from {KINDS}")

    work = Path(tempfile.mkdtemp(prefix="gsn-bench-glance-"))
    image = work / "image.raw"
    make_image(str(image), size, *CASES[args.case])
    install = glance_install(ceph="rbd" in kinds)
    backends = {"default": Backend("file", {"filesystem_store_datadir": str(work / "default")})}
    for kind in kinds:
        options = backend_options(kind, work)
        backends[f"gs_{kind}"] = Backend(kind, options)
        backends[f"ng_{kind}"] = Backend(f"gsng_{kind}", dict(options))
    config = GlanceConfig(backends=backends, default_backend="default")
    server = GlanceServer(install, work / "glance", config).start()
    rows = []
    try:
        for kind in kinds:
            for impl in ("gs", "ng"):
                store = f"{impl}_{kind}"
                image_id = server.create_image(f"bench-{store}")["id"]

                def upload(image_id=image_id, store=store) -> None:
                    with open(image, "rb") as source:
                        server.upload(image_id, source, size=size, store=store)

                def download(image_id=image_id) -> None:
                    got = server.download_to(image_id, lambda block: None)
                    assert got == size, f"downloaded {got} of {size} bytes"

                up = measured(server, upload)
                down = measured(server, download)
                server.expect(server.request("DELETE", f"/v2/images/{image_id}"), 204, "delete")
                rows.append((kind, impl, up, down))
                print(f"  {store}: up {up[0]:.2f}s, down {down[0]:.2f}s", file=sys.stderr)
    finally:
        server.close()
    print(table(rows, size, args.case))


def table(rows, size: int, case: str) -> str:
    lines = [
        f"{size / MiB:.0f} MiB ({case}) through Glance 33's API: glance_store 5.7 and ours",
        "| driver | op | glance_store s | ours s | ours vs glance_store | MB/s ours | worker CPU s "
        "(gs / ours) | worker peak RSS MiB (gs / ours) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by = {(kind, impl): (up, down) for kind, impl, up, down in rows}
    for kind in dict.fromkeys(kind for kind, *_ in rows):
        for op, index in (("upload", 0), ("download", 1)):
            gs, ng = by[(kind, "gs")][index], by[(kind, "ng")][index]
            lines.append(
                f"| {kind} | {op} | {gs[0]:.2f} | {ng[0]:.2f} | {gs[0] / ng[0]:.2f}x | "
                f"{size / ng[0] / 1e6:.0f} | {gs[1]:.1f} / {ng[1]:.1f} | "
                f"{gs[2] / MiB:.0f} / {ng[2] / MiB:.0f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
