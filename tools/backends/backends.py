"""Start the project's real test backends from Python (pytest fixtures), stdlib only.

    from backends import ensure_swift, ensure_ceph   # tools/backends on sys.path
    env = ensure_swift()   # {"GSN_SWIFT_AUTH_URL": ..., "GSN_S3_ENDPOINT": ..., ...}
    env = ensure_ceph()    # {"GSN_CEPH_CONF": ..., "GSN_RGW_ENDPOINT": ..., ...}
    glance = ensure_glance(repo)   # {"python": ..., "gunicorn": ..., "paste_ini": ...}

Each call runs the script beside this file (`swift start` / `ceph start`): it
installs what is missing, starts the servers unless they already run (then it only
probes them, well under a second) and waits until they really answer. The
returned dict is the script's env file (`<GSN_BACKENDS_DIR>/<name>/env.json`).
A server that cannot be started raises BackendUnavailable carrying the script's
output, which names the failing daemon and shows the end of its log. Tests should
turn that into a failure, never a skip.

`ensure_glance(repo)` installs (once) OpenStack Glance 33 in a venv of its own and
this checkout's package into a small venv layered on it; it starts no server
(tests/glance/glance_testing.py does).

A test run (tools/test) takes a ``snapshot()`` of the running servers before its
tests and calls ``finish_run(snapshot)`` after them: it stops the servers that were
started meanwhile, unless a live process still uses them (``ensure_*`` notes each
caller as a user until it exits), and says what still runs and how to stop it.
The same from a shell: ``backends.py snapshot`` and ``backends.py finish-run SNAPSHOT``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def _load_common() -> ModuleType:
    """_backends_common.py beside this file, as module `_backends_common` (shared with
    the scripts and with tests that load it), without putting this folder on sys.path."""
    if "_backends_common" not in sys.modules:
        path = HERE / "_backends_common.py"
        spec = importlib.util.spec_from_file_location("_backends_common", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["_backends_common"] = module
        spec.loader.exec_module(module)
    return sys.modules["_backends_common"]


common = _load_common()
SWIFT_SCRIPT = HERE / "swift"
CEPH_SCRIPT = HERE / "ceph"
KEYSTONE_SCRIPT = HERE / "keystone"
#: A Swift that authenticates through Keystone (its own all-in-one, beside the tempauth one).
KEYSTONE_AUTH = ["--auth", "keystone"]

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


def _ensure(
    script: Path, start_args: list[str], name: str = "", env_args: list[str] | None = None
) -> dict[str, str]:
    # before `start`: a run ending meanwhile then leaves it running
    register_user(name or script.name)
    res = _run(script, ["start", *start_args], START_TIMEOUT)
    if res.returncode != 0:
        raise BackendUnavailable(
            f"`{' '.join([str(script), 'start', *start_args])}` failed (exit {res.returncode}):\n"
            f"{res.stdout}{res.stderr}".rstrip()
        )
    return env_of(script, env_args or [])


def env_of(script: Path, args: list[str] | None = None) -> dict[str, str]:
    """The env of a running backend (its script's `env --format json`)."""
    res = _run(script, ["env", "--format", "json", *(args or [])], 60)
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


def ensure_keystone_swift() -> dict[str, str]:
    """Keystone, and a Swift all-in-one that authenticates through it, started if needed:
    both envs in one dict (GSN_KEYSTONE_* and GSN_SWIFT_KS_*)."""
    keystone = _ensure(KEYSTONE_SCRIPT, [], "keystone")
    return {**keystone, **_ensure(SWIFT_SCRIPT, KEYSTONE_AUTH, "swift-keystone", KEYSTONE_AUTH)}


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
    return cpu_seconds(pids)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by processes ``pids`` and their children."""
    pids = list(pids)
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


# --------------------------------------------------------------------------- Glance

GLANCE_REQUIREMENTS = ("glance==33.0.0", "python-glanceclient", "gunicorn")
# Build requirements of this project, installed beside Glance so that the checkout
# installs without build isolation (seconds, no download).
GLANCE_BUILD_REQUIREMENTS = ("setuptools>=64", "wheel", "cffi>=1.15")
# Console scripts the checkout venv gets (it has none of the base venv's own).
GLANCE_SCRIPTS = {
    "gunicorn": "gunicorn.app.wsgiapp:run",
    "glance-manage": "glance.cmd.manage:main",
    "glance": "glanceclient.shell:main",
}
# Files whose change needs the checkout reinstalled (metadata, entry points, C module);
# Python sources need nothing: the install is editable.
_INSTALL_INPUTS = ("setup.cfg", "setup.py", "pyproject.toml", "native")
_SITE_QUERY = "import json, sysconfig; print(json.dumps(sysconfig.get_paths()))"


def ensure_glance(
    repo: str | os.PathLike, extras: tuple[str, ...] = ("s3", "swift"), ceph: bool | None = None
) -> dict[str, str]:
    """Glance 33.0.0 with this checkout's package installed beside it, ready to run.

    Two venvs under ``<GSN_BACKENDS_DIR>``: ``glance-venv/`` holds Glance,
    python-glanceclient and gunicorn (made once, ~1 min); ``glance-checkouts/<name>-<hash>/``
    is a venv per checkout that sees the first one's packages through a ``.pth`` file
    and holds ``pip install -e '<repo>[<extras>]'``. That install runs again only when
    ``setup.cfg``, ``setup.py``, ``pyproject.toml`` or ``native/`` changed (otherwise this
    call takes milliseconds), so Glance always runs the checkout under test, and two
    checkouts never swap each other's package under a running Glance.

    ``ceph``: make Debian's rbd/rados bindings importable there too (True), or only when
    the Ceph test cluster runs (None, the default).

    Returns the paths: ``python``, ``gunicorn``, ``glance_manage``, ``glance`` (the CLI)
    of the checkout venv, ``venv``, ``base_venv``, ``site_packages`` (of the base venv),
    ``paste_ini`` (Glance's installed ``glance-api-paste.ini``) and ``log`` (pip's
    output). Raises BackendUnavailable naming the log when something cannot be installed.
    """
    repo = Path(repo).resolve()
    root = common.base_dir()
    base, log = root / "glance-venv", root / "glance-install.log"
    venv = root / "glance-checkouts" / f"{repo.name}-{common.digest(str(repo), 8)}"
    report = common.Reporter("glance")
    try:
        with common.locked(root / ".glance.lock", report):
            site = _ensure_glance_base(base, log, report)
            _ensure_checkout_venv(venv, base, site, repo, extras, log, report)
    except common.BackendError as exc:
        raise BackendUnavailable(f"{exc}\n(install log: {log})") from None
    if ceph or (ceph is None and (root / "ceph" / "env.json").exists()):
        link_ceph_python(venv / "bin" / "python")
    paths = {name.replace("-", "_"): str(venv / "bin" / name) for name in GLANCE_SCRIPTS}
    return {
        **paths,
        "python": str(venv / "bin" / "python"),
        "venv": str(venv),
        "base_venv": str(base),
        "site_packages": site,
        "paste_ini": str(base / "etc" / "glance" / "glance-api-paste.ini"),
        "log": str(log),
    }


def _base_python() -> str:
    """The interpreter new venvs are made from (not a venv's own python)."""
    return getattr(sys, "_base_executable", None) or _python()


def _ensure_glance_base(base: Path, log: Path, report) -> str:
    """The venv with Glance and its tools, made unless its marker says it is complete;
    returns its site-packages folder."""
    marker = base / ".gsn-installed"
    wanted = "\n".join(GLANCE_REQUIREMENTS + GLANCE_BUILD_REQUIREMENTS) + "\n"
    python = base / "bin" / "python"
    if not (marker.exists() and marker.read_text() == wanted and python.exists()):
        report(f"creating {base} with {' '.join(GLANCE_REQUIREMENTS)} (log: {log})")
        shutil.rmtree(base, ignore_errors=True)
        base.parent.mkdir(parents=True, exist_ok=True)
        common.run([_base_python(), "-m", "venv", str(base)], what="python -m venv", log=log)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
        requirements = [*GLANCE_REQUIREMENTS, *GLANCE_BUILD_REQUIREMENTS]
        common.run(pip + requirements, timeout=1200, what="pip install Glance", log=log)
        probe = "import glance.common.wsgi_app, glanceclient.v2.client, gunicorn, cffi"
        common.run([str(python), "-c", probe], what="import Glance from its venv", log=log)
        marker.write_text(wanted)
    return json.loads(common.run([str(python), "-c", _SITE_QUERY]).stdout)["purelib"]


def _ensure_checkout_venv(
    venv: Path, base: Path, base_site: str, repo: Path, extras: tuple[str, ...], log: Path, report
) -> None:
    """The checkout's venv layered on the base venv, with the checkout installed editable."""
    marker = venv / ".gsn-installed"
    if marker.exists() and marker.read_text() == _install_stamp(repo, extras, base):
        return
    report(f"installing {repo} into {venv} (log: {log})")
    python = venv / "bin" / "python"
    if not python.exists():
        common.run([_base_python(), "-m", "venv", "--without-pip", str(venv)], log=log)
    site = json.loads(common.run([str(python), "-c", _SITE_QUERY]).stdout)["purelib"]
    # addsitedir (not a bare path line) also runs the base venv's own .pth files.
    common.write_atomic(
        Path(site) / "gsn_glance_base.pth", f"import site; site.addsitedir({base_site!r})\n"
    )
    for name, target in GLANCE_SCRIPTS.items():
        module, func = target.split(":")
        script = f"#!{python}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n"
        common.write_atomic(venv / "bin" / name, script, 0o755)
    spec = f"{repo}[{','.join(extras)}]" if extras else str(repo)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    common.run(
        pip + ["--no-build-isolation", "-e", spec],
        timeout=900,
        what=f"pip install -e {spec}",
        log=log,
    )
    # From the venv folder, so the checkout is imported through its install, not the cwd.
    probe = "import glance_store_ng, glance.common.wsgi_app; print(glance_store_ng.__file__)"
    where = common.run([str(python), "-c", probe], what="import the checkout", log=log, cwd=venv)
    if not Path(where.stdout.strip()).resolve().is_relative_to(repo):
        raise common.BackendError(
            f"{python} imports glance_store_ng from {where.stdout.strip()}, not from {repo}"
        )
    marker.write_text(_install_stamp(repo, extras, base))  # the C module is built now


def _install_stamp(repo: Path, extras: tuple[str, ...], base: Path) -> str:
    """A digest of what an editable install captures: the files named in
    _INSTALL_INPUTS, whether the C module was built, the extras, and the base venv
    (its path and its marker: the requirements it was made with)."""
    marker = (base / ".gsn-installed").read_text()
    h = hashlib.sha256(f"{repo}\n{extras}\n{base}\n{marker}".encode())
    for name in _INSTALL_INPUTS:
        top = repo / name
        files = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for path in files:
            if path.exists() and "__pycache__" not in path.parts:
                h.update(f"{path.relative_to(repo)}\n".encode() + path.read_bytes())
    for built in sorted((repo / "glance_store_ng").glob("_native*.so")):
        h.update(built.name.encode())
    return h.hexdigest() + "\n"


# --------------------------------------------------------------------------- a test run's servers

#: The servers a test run may start, in the order they are reported and stopped: each
#: one's script, the arguments that name it, and its run folder.
SERVERS = {
    "swift": (SWIFT_SCRIPT, []),
    "swift-keystone": (SWIFT_SCRIPT, KEYSTONE_AUTH),
    "keystone": (KEYSTONE_SCRIPT, []),
    "ceph": (CEPH_SCRIPT, []),
}


def _users_dir() -> Path:
    return Path(common.base_dir()) / "users"


def _users_lock() -> Path:
    return Path(common.base_dir()) / ".users.lock"


def register_user(name: str, pid: int | None = None) -> None:
    """Note process ``pid`` (default: this one) as a user of server ``name`` until it exits.

    ``ensure_swift``/``ensure_ceph`` call it, so a test run that ends does not stop a
    server that another live process (pytest, a benchmark) is using.
    """
    pid = pid or os.getpid()
    start = common._proc_start_time(pid)
    if start is None:
        return
    with common.locked(_users_lock()):
        users(name)  # forget the dead ones
        folder = _users_dir() / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / str(pid)).write_text(start)


def users(name: str) -> list[int]:
    """The live processes noted as users of server ``name`` (the dead ones are forgotten)."""
    live = []
    folder = _users_dir() / name
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            rec = {"pid": int(entry.name), "start": entry.read_text()}
        except (ValueError, OSError):
            continue
        if common.alive(rec):
            live.append(rec["pid"])
        else:
            entry.unlink(missing_ok=True)
    return live


def instance(name: str) -> list[list] | None:
    """The running instance of server ``name``: its recorded processes as
    ``[name, pid, start time]`` (what tells one instance from the next), or None
    when it is stopped or none of its processes lives."""
    state = common.load_json(Path(common.base_dir()) / name / "state.json")
    if not state or not any(common.alive(rec) for rec in state.get("procs", [])):
        return None
    return [[rec["name"], rec["pid"], rec.get("start")] for rec in state["procs"]]


def snapshot() -> dict[str, list[list] | None]:
    """The instances running now, by server name (for :func:`finish_run`)."""
    return {name: instance(name) for name in SERVERS}


def _rss_mib(procs: list[list]) -> float:
    return sum(common.rss_kib(pid) or 0 for _, pid, _ in procs) / 1024


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes() or Path(f"/proc/{pid}/comm").read_bytes()
    except OSError:
        return "?"
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def finish_run(before: dict[str, list[list] | None], keep: bool = False) -> tuple[list[str], bool]:
    """After a test run: stop what it started, say what still runs and how to stop it.

    ``before`` is the :func:`snapshot` taken before the run. A server that ran before it
    stays (even if the run restarted it). One started since is stopped, unless ``keep`` or a
    live process still uses it (then the last test run that ends stops it: see the
    ``.left`` marker). Returns the lines to print and whether every stop succeeded.
    """
    lines: list[str] = []
    still: list[tuple[str, list[list], str]] = []
    ok = True
    for name, (script, args) in SERVERS.items():
        left_marker = _users_dir() / f"{name}.left"
        with common.locked(_users_lock()):
            now = instance(name)
            left = common.load_json(left_marker) if left_marker.exists() else None
            if now is None or left != now:
                left_marker.unlink(missing_ok=True)
            if now is None:
                continue
            # Started by this run, or by an earlier run that left it for users now gone.
            if before.get(name) is None:
                by = "started by this run"
            elif left == now:
                by = "started by an earlier test run for its users, now gone"
            else:
                still.append((name, now, "it was running before this run"))
                continue
            if keep:
                left_marker.unlink(missing_ok=True)
                still.append((name, now, f"{by}, kept as asked"))
                continue
            others = users(name)
            if others:
                common.write_atomic(left_marker, json.dumps(now))
                who = ", ".join(f"pid {pid} ({_command(pid)})" for pid in others)
                still.append((name, now, f"{by}, still used by {who}"))
                continue
            try:
                res = _run(script, ["stop", *args], 300)
            except BackendUnavailable as exc:  # did not finish in time
                res = subprocess.CompletedProcess([], 1, "", str(exc))
            if res.returncode == 0:
                left_marker.unlink(missing_ok=True)
                lines.append(f"stopped {name}: {by} (--keep-servers keeps it)")
            else:
                ok = False
                out = f"{res.stdout}{res.stderr}".strip()
                lines.append(f"could not stop {name} (exit {res.returncode}): {out}")
                still.append((name, now, f"{by}, could not be stopped"))
    for name, procs, why in still:
        lines.append(
            f"still running: {name} ({len(procs)} process{'es' if len(procs) > 1 else ''},"
            f" {_rss_mib(procs):.0f} MiB RSS;"
            f" {why}); stop it with: tools/backends/{SERVERS[name][0].name} stop"
            + "".join(f" {arg}" for arg in SERVERS[name][1])
        )
    if not lines:
        lines.append("no test server is running")
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    """``snapshot`` (JSON of the running servers) and ``finish-run SNAPSHOT [--keep]``."""
    ap = argparse.ArgumentParser(prog="tools/backends/backends.py", description=main.__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("snapshot", help="print the running servers' instances as JSON")
    fin = sub.add_parser("finish-run", help="stop what a run started; say what still runs")
    fin.add_argument("snapshot", help="what `snapshot` printed before the run")
    fin.add_argument("--keep", action="store_true", help="stop nothing, only say what runs")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "snapshot":
            print(json.dumps(snapshot()))
            return 0
        lines, ok = finish_run(json.loads(args.snapshot), keep=args.keep)
    except common.BackendError as exc:
        print(f"backends.py {args.cmd}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
