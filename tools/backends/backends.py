"""Start the project's real test backends from Python (pytest fixtures), stdlib only.

    from backends import ensure_swift, ensure_ceph   # tools/backends on sys.path
    env = ensure_swift()   # {"GSN_SWIFT_AUTH_URL": ..., "GSN_S3_ENDPOINT": ..., ...}
    env = ensure_ceph()    # {"GSN_CEPH_CONF": ..., "GSN_RGW_ENDPOINT": ..., ...}

Each call runs the script beside this file (`swift start` / `ceph start`): it
installs what is missing, starts the servers unless they already run (then it only
probes them, well under a second) and waits until they really answer. The
returned dict is the script's env file (`<GSN_BACKENDS_DIR>/<name>/env.json`).
A server that cannot be started raises BackendUnavailable carrying the script's
output, which names the failing daemon and shows the end of its log. Tests should
turn that into a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SWIFT_SCRIPT = HERE / "swift"
CEPH_SCRIPT = HERE / "ceph"

# Installing packages on a cold machine takes about half a minute; leave room.
START_TIMEOUT = float(os.environ.get("GSN_BACKENDS_START_TIMEOUT", 1800))


class BackendUnavailable(RuntimeError):
    """A test backend could not be started or does not answer."""


def _python() -> str:
    return sys.executable or "python3"


def _run(script: Path, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    argv = [_python(), str(script), *args]
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout or b""
        out = out.decode() if isinstance(out, bytes) else out
        err = e.stderr or b""
        err = err.decode() if isinstance(err, bytes) else err
        raise BackendUnavailable(
            f"`{script} {' '.join(args)}` did not finish within {timeout:.0f}s:\n{out}{err}"
        ) from None


def _ensure(script: Path, start_args: list[str]) -> dict[str, str]:
    res = _run(script, ["start", *start_args], START_TIMEOUT)
    if res.returncode != 0:
        raise BackendUnavailable(
            f"`{' '.join([str(script), 'start', *start_args])}` failed (exit {res.returncode}):\n"
            f"{res.stdout}{res.stderr}".rstrip()
        )
    return env_of(script)


def env_of(script: Path) -> dict[str, str]:
    """The env of a running backend (its script's `env --format json`)."""
    res = _run(script, ["env", "--format", "json"], 60)
    if res.returncode != 0:
        raise BackendUnavailable(
            f"`{script} env` failed (exit {res.returncode}):\n{res.stdout}{res.stderr}".rstrip()
        )
    return json.loads(res.stdout)


def ensure_swift() -> dict[str, str]:
    """Swift all-in-one with s3api on 127.0.0.1, started if needed; its env dict
    (GSN_SWIFT_AUTH_URL/USER/KEY, GSN_S3_ENDPOINT/ACCESS_KEY/SECRET_KEY/REGION, ...)."""
    return _ensure(SWIFT_SCRIPT, [])


def ensure_ceph(rgw: bool | None = None, mgr: bool | None = None) -> dict[str, str]:
    """Single-node Ceph, started if needed; its env dict (GSN_CEPH_CONF/USER/KEYRING/
    POOL/PYTHONPATH, and GSN_RGW_ENDPOINT/ACCESS_KEY/SECRET_KEY/REGION with radosgw).

    `rgw`/`mgr` choose the daemons of a cluster that this call starts (default:
    radosgw on, ceph-mgr off, or GSN_CEPH_RGW / GSN_CEPH_MGR); a cluster that is
    already running is used as it is."""
    args = []
    if rgw is not None:
        args.append("--rgw" if rgw else "--no-rgw")
    if mgr is not None:
        args.append("--mgr" if mgr else "--no-mgr")
    return _ensure(CEPH_SCRIPT, args)


def stop_swift() -> None:
    _stop(SWIFT_SCRIPT)


def stop_ceph() -> None:
    _stop(CEPH_SCRIPT)


def _stop(script: Path) -> None:
    res = _run(script, ["stop"], 300)
    if res.returncode != 0:
        raise BackendUnavailable(
            f"`{script} stop` failed (exit {res.returncode}):\n{res.stdout}{res.stderr}".rstrip()
        )


def link_ceph_python(python: str | os.PathLike) -> None:
    """Make Debian's python3-rbd / python3-rados importable from `python`
    (`tools/backends/ceph link-python`)."""
    res = _run(CEPH_SCRIPT, ["link-python", str(python)], START_TIMEOUT)
    if res.returncode != 0:
        raise BackendUnavailable(
            f"`{CEPH_SCRIPT} link-python {python}` failed "
            f"(exit {res.returncode}):\n{res.stdout}{res.stderr}".rstrip()
        )


def server_cpu_seconds(run_dir: str | os.PathLike, names: tuple[str, ...]) -> float:
    """CPU seconds used so far by the named daemons of a running backend (and their children).

    ``run_dir`` is the backend's GSN_SWIFT_RUN_DIR / GSN_CEPH_RUN_DIR; ``names`` are the
    daemon names its `status` shows (``("proxy-server", "object-server")``, ``("osd.0",)``).
    Benchmarks use it to show what the servers cost when they share the client's cores.
    """
    with open(Path(run_dir) / "state.json") as f:
        pids = [proc["pid"] for proc in json.load(f)["procs"] if proc["name"] in names]
    if len(pids) != len(names):
        raise BackendUnavailable(f"not all of {', '.join(names)} run under {run_dir}")
    total = 0.0
    while pids:
        pid = pids.pop()
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            for task in Path(f"/proc/{pid}/task").iterdir():
                pids.extend(int(child) for child in (task / "children").read_text().split())
        except FileNotFoundError:  # exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
