"""Swift add and get: glance_store_ng beside glance_store's Swift driver and bare swiftclient.

    flock /work/bench.lock .venv/bin/python benchmarks/bench_swift.py --size 1G [--rss-size 2G]

Every measurement runs in a fresh child process (its peak RSS is its own), on
the real Swift all-in-one (tools/backends), with the same random image file.
The Swift servers share the client's cores here, so each row also shows the
CPU seconds the proxy and object servers spent on it: on two cores a wall
time is bound by (client + server CPU) / 2.
glance_store runs with the same options as ours (its default large-object
size: one streamed PUT below 5 GiB); glance_store 5.7 speaks Keystone v3 only,
so its swiftclient connection is made with v1 auth here, the rest of its code
runs as shipped (see glance_store_ng.bench.reference). Bare swiftclient is one
``put_object`` of the file with its length, and one ``get_object`` read in
1 MiB pieces. Ratios are against the baselines measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

from glance_store_ng.units import MiB

HERE = Path(__file__).resolve().parent
IMPLEMENTATIONS = ("glance_store_ng", "glance_store", "swiftclient")


def _env() -> dict[str, str]:
    sys.path.insert(0, str(HERE.parent / "tools" / "backends"))
    from backends import ensure_swift

    return ensure_swift()


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _swiftclient(env):
    import swiftclient

    return swiftclient.Connection(
        env["GSN_SWIFT_AUTH_URL"], env["GSN_SWIFT_USER"], env["GSN_SWIFT_KEY"], auth_version="1"
    )


def _options(env, container):
    """The options both drivers get, as a glance-api.conf section would hold them."""
    return {
        "swift_store_auth_address": env["GSN_SWIFT_AUTH_URL"],
        "swift_store_user": env["GSN_SWIFT_USER"],
        "swift_store_key": env["GSN_SWIFT_KEY"],
        "swift_store_auth_version": "1",
        "swift_store_container": container,
        "swift_store_create_container_on_put": True,
    }


def child(spec: dict) -> dict:
    """One operation in this process: its wall time, CPU time and peak RSS growth."""
    env, impl, op, path = spec["env"], spec["impl"], spec["op"], spec["path"]
    container, size = spec["container"], os.path.getsize(spec["path"])
    result: dict = {}
    close = None  # the store's, after the timed run
    if impl in ("glance_store_ng", "glance_store"):  # used alike
        from glance_store_ng import open_store
        from glance_store_ng.bench.reference import open_reference

        opener = open_store if impl == "glance_store_ng" else open_reference
        store = opener("swift", _options(env, container))
        close = store.close  # glance_store's: its private reference file holds the key
        if op == "add":

            def run():
                with open(path, "rb") as f:
                    result["location"] = store.add(str(uuid.uuid4()), f, size).location

        elif op == "get":

            def run():
                with store.get(spec["location"]) as chunks:
                    for _ in chunks:
                        pass

        else:

            def run():
                store.delete(spec["location"])

    else:
        conn = _swiftclient(env)
        if op == "add":

            def run():
                name = str(uuid.uuid4())
                conn.put_container(container)
                with open(path, "rb") as f:
                    conn.put_object(container, name, f, content_length=size)
                result["location"] = name

        elif op == "get":

            def run():
                _, body = conn.get_object(container, spec["location"], resp_chunk_size=MiB)
                for _ in body:
                    pass

        else:

            def run():
                conn.delete_object(container, spec["location"])

    before_rss = _rss_kib()
    cpu0 = sum(os.times()[:2])
    started = time.perf_counter()
    try:
        run()
        result["seconds"] = time.perf_counter() - started
        result["cpu"] = sum(os.times()[:2]) - cpu0
    finally:
        if close:
            close()
    result["rss_growth_mib"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_rss
    ) / 1024
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


SERVERS = ("proxy-server", "object-server")


def _servers_cpu_seconds(env: dict[str, str]) -> float:
    from backends import server_cpu_seconds  # on sys.path since _env()

    return server_cpu_seconds(env["GSN_SWIFT_RUN_DIR"], SERVERS)


def _run(spec: dict) -> dict:
    """One operation in a fresh process; its figures plus the servers' CPU seconds meanwhile."""
    servers_before = _servers_cpu_seconds(spec["env"])
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["server_cpu"] = _servers_cpu_seconds(spec["env"]) - servers_before
    return result


def make_image(path: str, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(0, size, 8 * MiB):
            f.write(os.urandom(8 * MiB))
        f.truncate(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--rss-size", default="", help="also: peak RSS of our add of this size")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dir", default="/dev/shm")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

    def parse(text: str) -> int:
        return int(text[:-1]) * units[text[-1].upper()] if text[-1].isalpha() else int(text)

    env = _env()
    container = f"gsn-bench-{secrets.token_hex(4)}"
    image = os.path.join(args.dir, f"{container}.img")
    size = parse(args.size)
    make_image(image, size)
    base = {"env": env, "container": container, "path": image}
    best: dict[tuple[str, str], dict] = {}
    try:
        for _ in range(args.rounds):
            for impl in IMPLEMENTATIONS:
                added = _run({**base, "impl": impl, "op": "add"})
                got = _run({**base, "impl": impl, "op": "get", "location": added["location"]})
                _run({**base, "impl": impl, "op": "delete", "location": added["location"]})
                for op, figures in (("add", added), ("get", got)):
                    if (impl, op) not in best or figures["seconds"] < best[impl, op]["seconds"]:
                        best[impl, op] = figures
        print(f"image {size / MiB:.0f} MiB, best of {args.rounds}")
        print(
            f"{'operation':<10}{'implementation':<18}{'MB/s':>8}{'CPU s':>8}{'server CPU s':>14}"
            f"{'RSS+ MiB':>10}"
            f"{'x glance_store':>16}{'x swiftclient':>15}"
        )
        for op in ("add", "get"):
            for impl in IMPLEMENTATIONS:
                m = best[impl, op]
                speed = size / m["seconds"] / 1e6
                ratios = [
                    best[other, op]["seconds"] / m["seconds"]
                    for other in ("glance_store", "swiftclient")
                ]
                print(
                    f"{op:<10}{impl:<18}{speed:>8.0f}{m['cpu']:>8.2f}{m['server_cpu']:>14.2f}"
                    f"{m['rss_growth_mib']:>10.0f}"
                    f"{ratios[0]:>16.2f}{ratios[1]:>15.2f}"
                )
        if args.rss_size:
            big = os.path.join(args.dir, f"{container}-rss.img")
            make_image(big, parse(args.rss_size))
            try:
                spec = {**base, "path": big, "impl": "glance_store_ng"}
                added = _run({**spec, "op": "add"})
                _run({**spec, "op": "delete", "location": added["location"]})
                print(
                    f"our add of {parse(args.rss_size) / MiB:.0f} MiB: peak RSS "
                    f"{added['peak_rss_mib']:.0f} MiB (growth {added['rss_growth_mib']:.0f} MiB), "
                    f"{parse(args.rss_size) / added['seconds'] / 1e6:.0f} MB/s"
                )
            finally:
                os.unlink(big)
    finally:
        os.unlink(image)
        conn = _swiftclient(env)
        for name in (container, f"{container}_segments"):
            try:
                for obj in conn.get_container(name, full_listing=True)[1]:
                    conn.delete_object(name, obj["name"])
                conn.delete_container(name)
            except Exception:
                pass


if __name__ == "__main__":
    main()
