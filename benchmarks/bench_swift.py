"""Swift add and get: glance_store_ng beside glance_store's Swift driver and bare swiftclient.

    flock /work/bench.lock .venv/bin/python benchmarks/bench_swift.py --size 1G [--rss-size 2G]
        [--keystone]

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

``--keystone`` adds our driver through Keystone v3 (tools/backends/keystone and
the Swift all-in-one behind it, the same servers but authtoken and keystoneauth
in the proxy): single-tenant as the glance user, and multi-tenant with a demo
user's request context (its token taken before the timed call, as an image API
holds it), and bare swiftclient through Keystone as the glance user: the Keystone
Swift runs other proxy middleware, so "x swiftclient" of each mode (ours against
the bare client on the same Swift) is the comparison that isolates our cost. Each
of their processes first adds and deletes a 1-byte image (swiftclient: a HEAD), so
the token is asked for and validated by Swift before the timed operation, as in an
image service that runs; the "first" column shows what that cost. Their rows count
the tokens the timed operation asked Keystone for.
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
#: Through Keystone v3 (--keystone): ours, both modes, and bare swiftclient as their baseline.
KEYSTONE_IMPLEMENTATIONS = ("ng keystone v3", "ng multi-tenant", "swiftclient v3")


def _env(keystone: bool = False) -> dict[str, str]:
    sys.path.insert(0, str(HERE.parent / "tools" / "backends"))
    from backends import ensure_keystone_swift, ensure_swift

    return {**ensure_swift(), **(ensure_keystone_swift() if keystone else {})}


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


def _keystone_options(env, container):
    """Single-tenant through Keystone v3: the glance user, its domains by name."""
    user = f"{env['GSN_KEYSTONE_GLANCE_PROJECT']}:{env['GSN_KEYSTONE_GLANCE_USER']}"
    return {
        "swift_store_auth_address": env["GSN_KEYSTONE_AUTH_URL"],
        "swift_store_user": user,
        "swift_store_key": env["GSN_KEYSTONE_GLANCE_PASSWORD"],
        "swift_store_auth_version": "3",
        "swift_store_user_domain_name": env["GSN_KEYSTONE_GLANCE_USER_DOMAIN"],
        "swift_store_project_domain_name": env["GSN_KEYSTONE_GLANCE_PROJECT_DOMAIN"],
        "swift_store_region": env["GSN_KEYSTONE_REGION"],
        "swift_store_container": container,
        "swift_store_create_container_on_put": True,
    }


def _user_context(env):
    """The demo1 user's request context, as an image API holds it (a token asked for here)."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    from glance_store_ng import RequestContext

    auth = v3.Password(
        auth_url=env["GSN_KEYSTONE_AUTH_URL"],
        username=env["GSN_KEYSTONE_DEMO1_USER"],
        password=env["GSN_KEYSTONE_DEMO1_PASSWORD"],
        project_name=env["GSN_KEYSTONE_DEMO1_PROJECT"],
        user_domain_name=env["GSN_KEYSTONE_DEMO1_USER_DOMAIN"],
        project_domain_name=env["GSN_KEYSTONE_DEMO1_PROJECT_DOMAIN"],
    )
    access = auth.get_access(session.Session(auth=auth))
    return RequestContext(
        access.auth_token, access.project_id, access.user_id, access.service_catalog.catalog
    )


def _count_tokens() -> list:
    """A list that grows by one for each token this process asks Keystone for."""
    from keystoneauth1.identity import v3

    asked: list = []
    original = v3.Password.get_auth_ref

    def counted(self, *args, **kwargs):
        asked.append(1)
        return original(self, *args, **kwargs)

    v3.Password.get_auth_ref = counted
    return asked


def child(spec: dict) -> dict:
    """One operation in this process: its wall time, CPU time and peak RSS growth."""
    env, impl, op, path = spec["env"], spec["impl"], spec["op"], spec["path"]
    container, size = spec["container"], os.path.getsize(spec["path"])
    result: dict = {}
    close = None  # the store's, after the timed run
    tokens = None
    if impl in ("glance_store_ng", "glance_store", "ng keystone v3", "ng multi-tenant"):
        from glance_store_ng import open_store
        from glance_store_ng.bench.reference import open_reference

        if impl == "glance_store":
            store = open_reference("swift", _options(env, container))
        elif impl == "ng keystone v3":
            tokens = _count_tokens()
            store = open_store("swift", _keystone_options(env, container))
        elif impl == "ng multi-tenant":
            options = {
                "swift_store_multi_tenant": True,
                "swift_store_region": env["GSN_KEYSTONE_REGION"],
                "swift_store_container": container,
            }
            store = _AsUser(open_store("swift", options), _user_context(env))
            tokens = _count_tokens()  # the store's own: none (it uses the context's)
        else:
            store = open_store("swift", _options(env, container))
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
        keystone = impl == "swiftclient v3"
        conn = _keystone_swiftclient(env, "GLANCE") if keystone else _swiftclient(env)
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

    if impl in KEYSTONE_IMPLEMENTATIONS:  # a running image service has its token already
        started = time.perf_counter()
        if impl == "swiftclient v3":
            conn.head_account()
        else:
            store.delete(store.add(str(uuid.uuid4()), b"x", 1).location)
            del tokens[:]
        result["warmup_seconds"] = time.perf_counter() - started
    before_rss = _rss_kib()
    servers0 = _servers_cpu_seconds(env, impl)
    cpu0 = sum(os.times()[:2])
    started = time.perf_counter()
    try:
        run()
        result["seconds"] = time.perf_counter() - started
        result["cpu"] = sum(os.times()[:2]) - cpu0
        result["server_cpu"] = _servers_cpu_seconds(env, impl) - servers0
    finally:
        if close:
            close()
    result["rss_growth_mib"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_rss
    ) / 1024
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["tokens"] = None if tokens is None else len(tokens)
    return result


class _AsUser:
    """A multi-tenant store called with one user's context, as an image API serving them."""

    def __init__(self, store, context) -> None:
        self.store, self.context, self.close = store, context, store.close

    def add(self, *args, **kwargs):
        return self.store.add(*args, context=self.context, **kwargs)

    def get(self, *args, **kwargs):
        return self.store.get(*args, context=self.context, **kwargs)

    def delete(self, *args, **kwargs):
        return self.store.delete(*args, context=self.context, **kwargs)


SERVERS = ("proxy-server", "object-server")


def _servers_cpu_seconds(env: dict[str, str], impl: str) -> float:
    """The Swift's servers (and Keystone's, for our Keystone rows), CPU seconds so far."""
    sys.path.insert(0, str(HERE.parent / "tools" / "backends"))
    from backends import server_cpu_seconds

    if impl not in KEYSTONE_IMPLEMENTATIONS:
        return server_cpu_seconds(env["GSN_SWIFT_RUN_DIR"], SERVERS)
    keystone = server_cpu_seconds(env["GSN_KEYSTONE_RUN_DIR"], ("keystone",))
    return server_cpu_seconds(env["GSN_SWIFT_KS_RUN_DIR"], SERVERS) + keystone


def _run(spec: dict) -> dict:
    """One operation in a fresh process; its figures (the servers' CPU seconds during it too)."""
    out = subprocess.run(  # the spec on stdin: it holds the servers' credentials
        [sys.executable, __file__, "--child"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"{spec['impl']} {spec['op']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    parser.add_argument(
        "--keystone", action="store_true", help="also our driver through Keystone v3 (both modes)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one operation, its spec on stdin
        print(json.dumps(child(json.load(sys.stdin))))
        return
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

    def parse(text: str) -> int:
        return int(text[:-1]) * units[text[-1].upper()] if text[-1].isalpha() else int(text)

    env = _env(args.keystone)
    implementations = IMPLEMENTATIONS + (KEYSTONE_IMPLEMENTATIONS if args.keystone else ())
    container = f"gsn-bench-{secrets.token_hex(4)}"
    image = os.path.join(args.dir, f"{container}.img")
    size = parse(args.size)
    make_image(image, size)
    base = {"env": env, "container": container, "path": image}
    best: dict[tuple[str, str], dict] = {}
    try:
        for _ in range(args.rounds):
            for impl in implementations:
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
        if args.keystone:
            print(f"\n{'operation':<10}{'implementation':<18}{'MB/s':>8}{'server CPU s':>14}"
                  f"{'x swiftclient':>15}{'x ng tempauth':>15}"
                  f"{'tokens':>8}{'first s':>9}")  # fmt: skip
            for op in ("add", "get"):
                for impl in ("glance_store_ng", "swiftclient", *KEYSTONE_IMPLEMENTATIONS):
                    m = best[impl, op]
                    bare = "swiftclient v3" if impl in KEYSTONE_IMPLEMENTATIONS else "swiftclient"
                    to_bare = best[bare, op]["seconds"] / m["seconds"]
                    to_ours = best["glance_store_ng", op]["seconds"] / m["seconds"]
                    tokens = "-" if m.get("tokens") is None else str(m["tokens"])
                    first = m.get("warmup_seconds")
                    first_shown = "-" if first is None else f"{first:.2f}"
                    speed = size / m["seconds"] / 1e6
                    print(f"{op:<10}{impl:<18}{speed:>8.0f}{m['server_cpu']:>14.2f}"
                          f"{to_bare:>15.2f}{to_ours:>15.2f}"
                          f"{tokens:>8}{first_shown:>9}")  # fmt: skip
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
        if args.keystone:
            _remove_keystone_containers(env, container)
        conn = _swiftclient(env)
        for name in (container, f"{container}_segments"):
            try:
                for obj in conn.get_container(name, full_listing=True)[1]:
                    conn.delete_object(name, obj["name"])
                conn.delete_container(name)
            except Exception:
                pass


def _keystone_swiftclient(env, who: str):
    """A swiftclient connection through Keystone v3 as ``who`` (GLANCE, DEMO1)."""
    import swiftclient

    return swiftclient.Connection(
        env["GSN_KEYSTONE_AUTH_URL"],
        env[f"GSN_KEYSTONE_{who}_USER"],
        env[f"GSN_KEYSTONE_{who}_PASSWORD"],
        auth_version="3",
        os_options={
            "project_name": env[f"GSN_KEYSTONE_{who}_PROJECT"],
            "user_domain_name": env[f"GSN_KEYSTONE_{who}_USER_DOMAIN"],
            "project_domain_name": env[f"GSN_KEYSTONE_{who}_PROJECT_DOMAIN"],
            "region_name": env["GSN_KEYSTONE_REGION"],
        },
    )


def _remove_keystone_containers(env, container) -> None:
    """What the Keystone rows left (nothing unless a run failed): the glance user's
    containers and demo1's per-image ones."""
    for who in ("GLANCE", "DEMO1"):
        conn = _keystone_swiftclient(env, who)
        for listed in conn.get_account(prefix=container, full_listing=True)[1]:
            try:
                for obj in conn.get_container(listed["name"], full_listing=True)[1]:
                    conn.delete_object(listed["name"], obj["name"])
                conn.delete_container(listed["name"])
            except Exception:
                pass


if __name__ == "__main__":
    main()
