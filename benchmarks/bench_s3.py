"""The S3 driver against bare boto3 and glance_store's S3 driver, on the local Swift s3api.

    flock /work/bench.lock .venv/bin/python benchmarks/bench_s3.py --size 1G --rss-size 2G

One random image (a file in the page cache) goes up and comes back through:

- ``boto3``: a default boto3 client's ``upload_fileobj`` / ``download_fileobj``
  (s3transfer: 8 MiB parts, 10 threads, CRC32 checksums), no hashing of ours;
- ``glance_store_ng``: ``Store.add`` (md5 + sha512 of the image, Content-MD5 on
  every part, 10 MB parts, 10 threads) and ``Store.get``;
- ``glance_store``: glance_store 5.7.0's S3 driver ``add`` (md5 + sha512) and ``get``,
  with the same options as ours (path-style addressing; see glance_store_ng.bench.reference).

Each operation runs in a fresh child process, so its peak RSS is its own;
``--rounds`` repeats each and keeps the fastest. The table gives MB/s, CPU
seconds, peak RSS growth and our ratio to each baseline, all from the same run.
``--rss-size`` also adds one image of that size through our driver alone and
reports its peak RSS growth.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from glance_store_ng.bench import make_image, parse_size, timed
from glance_store_ng.units import MiB

ROOT = Path(__file__).resolve().parents[1]
OURS, BOTO3, GLANCE_STORE = "glance_store_ng", "boto3", "glance_store"


class _Sink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def _boto3_client(env: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["GSN_S3_ENDPOINT"],
        aws_access_key_id=env["GSN_S3_ACCESS_KEY"],
        aws_secret_access_key=env["GSN_S3_SECRET_KEY"],
        region_name=env["GSN_S3_REGION"],
    )


def _options(env: dict[str, str], bucket: str) -> dict[str, Any]:
    """The options both drivers get, as a glance-api.conf section would hold them."""
    return {
        "s3_store_host": env["GSN_S3_ENDPOINT"],
        "s3_store_access_key": env["GSN_S3_ACCESS_KEY"],
        "s3_store_secret_key": env["GSN_S3_SECRET_KEY"],
        "s3_store_bucket": bucket,
        "s3_store_bucket_url_format": "path",
        "s3_store_region_name": env["GSN_S3_REGION"],
    }


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One operation in this process: add (returns where it went), get, or delete."""
    env, bucket, impl, op = spec["env"], spec["bucket"], spec["impl"], spec["op"]
    path, size = spec.get("path"), spec.get("size")
    out: dict[str, Any] = {}
    if impl == BOTO3:
        client = _boto3_client(env)
        if op == "add":
            key = str(uuid.uuid4())
            with open(path, "rb") as source:
                _, out = timed(lambda: client.upload_fileobj(source, bucket, key))
            out["location"] = key
        elif op == "get":
            _, out = timed(lambda: client.download_fileobj(bucket, spec["location"], _Sink()))
        else:
            client.delete_object(Bucket=bucket, Key=spec["location"])
    else:  # ours, or glance_store's driver with the same options: used alike
        from glance_store_ng import open_store
        from glance_store_ng.bench.reference import open_reference

        opener = open_store if impl == OURS else open_reference
        with opener("s3", _options(env, bucket)) as store:
            if op == "add":
                with open(path, "rb") as source:
                    added, out = timed(lambda: store.add(str(uuid.uuid4()), source, size))
                out["location"] = added.location
            elif op == "get":

                def read() -> None:
                    with store.get(spec["location"]) as chunks:
                        for _ in chunks:
                            pass

                _, out = timed(read)
            else:
                store.delete(spec["location"])
    return out


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec['impl']} {spec['op']} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--rss-size", default="", help="also add an image this large (ours)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-glance-store", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    sys.path.insert(0, str(ROOT / "tools" / "backends"))
    from backends import ensure_swift

    env = ensure_swift()
    size = parse_size(args.size)
    work = tempfile.mkdtemp(prefix="gsn-bench-s3-")
    client = _boto3_client(env)
    bucket = f"gsn-bench-{secrets.token_hex(6)}"
    client.create_bucket(Bucket=bucket)
    try:
        image = os.path.join(work, "image")
        make_image(image, size, 0.0)
        impls = [BOTO3, OURS] + ([] if args.no_glance_store else [GLANCE_STORE])
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for round_ in range(args.rounds):
            for impl in impls:
                base = {"env": env, "bucket": bucket, "impl": impl, "size": size}
                added = _run_child({**base, "op": "add", "path": image})
                got = _run_child({**base, "op": "get", "location": added["location"]})
                _run_child({**base, "op": "delete", "location": added["location"]})
                for op, figures in (("add", added), ("get", got)):
                    print(
                        f"round {round_ + 1} {impl:16} {op}: {size / figures['seconds'] / 1e6:7.0f}"
                        f" MB/s, {figures['cpu_seconds']:.1f} CPU s, peak RSS "
                        f"+{figures['peak_rss_growth'] / MiB:.0f} MiB",
                        file=sys.stderr,
                    )
                    kept = best.get((impl, op))
                    if kept is None or figures["seconds"] < kept["seconds"]:
                        best[(impl, op)] = figures
        print(_table(best, size, impls))
        if args.rss_size:
            big = parse_size(args.rss_size)
            big_image = os.path.join(work, "big")
            make_image(big_image, big, 0.0)
            os.unlink(image)
            base = {"env": env, "bucket": bucket, "impl": OURS, "size": big}
            added = _run_child({**base, "op": "add", "path": big_image})
            _run_child({**base, "op": "delete", "location": added["location"]})
            print(
                f"\nadd of a {big / MiB:.0f} MiB image ({OURS}): "
                f"{big / added['seconds'] / 1e6:.0f} MB/s, peak RSS growth "
                f"{added['peak_rss_growth'] / MiB:.0f} MiB"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        client.delete_bucket(Bucket=bucket)


def _table(best: dict[tuple[str, str], dict[str, Any]], size: int, impls: list[str]) -> str:
    rows = [("op", "implementation", "MB/s", "CPU s", "peak RSS +MiB", "ours vs this")]
    for op in ("add", "get"):
        ours = size / best[(OURS, op)]["seconds"]
        for impl in impls:
            figures = best[(impl, op)]
            speed = size / figures["seconds"]
            ratio = "" if impl == OURS else f"{ours / speed:.2f}x"
            rows.append(
                (
                    op, impl, f"{speed / 1e6:,.0f}", f"{figures['cpu_seconds']:.1f}",
                    f"{figures['peak_rss_growth'] / MiB:.0f}", ratio,
                )
            )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.rjust(w) if i >= 2 else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return f"image: {size / MiB:.0f} MiB of random bytes, Swift s3api on 127.0.0.1\n" + "\n".join(
        lines
    )


if __name__ == "__main__":
    main()
