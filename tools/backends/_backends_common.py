"""Shared plumbing of the test-backend scripts in tools/backends (stdlib only).

The scripts `swift` and `ceph` beside this file import it. It knows how to:
find the cache/run folders, take a lock, install Debian packages, start a
daemon in its own session and remember exactly which process it started, stop
only those processes, wait for a server to answer while watching that its
daemons are still alive, sign an S3 request (AWS SigV4), and write the env
files that tests and users read.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

DEFAULT_TIMEOUT = 180.0


class BackendError(Exception):
    """A failure that the scripts report in one clear message (exit status 1)."""


# --------------------------------------------------------------------------- paths


def base_dir() -> Path:
    """Root of everything the scripts keep: venvs, run folders, logs."""
    value = os.environ.get("GSN_BACKENDS_DIR")
    if value:
        return Path(value).expanduser().resolve()
    return Path.home() / ".cache" / "glance_store_ng" / "backends"


def start_timeout() -> float:
    return float(os.environ.get("GSN_BACKENDS_TIMEOUT", DEFAULT_TIMEOUT))


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise BackendError(f"{name}={value!r} is not an integer") from None


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise BackendError(f"{name}={value!r}: expected 1/0, true/false, yes/no or on/off")


# --------------------------------------------------------------------------- output


class Reporter:
    def __init__(self, name: str, quiet: bool = False):
        self.name = name
        self.quiet = quiet
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            dt = time.monotonic() - self.t0
            print(f"[{self.name} {dt:6.1f}s] {msg}", file=sys.stderr, flush=True)


def tail(path: Path | str, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"    (cannot read {path}: {e.strerror})"
    chunk = data.splitlines()[-lines:]
    if not chunk:
        return f"    ({path} is empty)"
    return "\n".join("    " + line for line in chunk)


def log_hint(what: str, *logs: Path | str) -> str:
    parts = []
    for log in logs:
        parts.append(f"--- last lines of {log}:\n{tail(log)}")
    return f"{what}\n" + "\n".join(parts)


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def locked(path: Path, report: Reporter | None = None):
    """An exclusive flock: two `start`s (pytest-xdist workers...) never race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if report:
                report(f"waiting for the lock {path} (another start/stop is running)")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- processes


def _proc_start_time(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (guards against PID reuse)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is as good as dead
        return None
    return fields[19]


def spawn(name: str, argv: list[str], log: Path, cwd: Path, env: dict | None = None) -> dict:
    """Start a daemon in a new session (setsid), stdout+stderr to `log`.

    Returns the record that `alive` and `terminate` use later.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n==== {time.strftime('%F %T')} starting: {shlex.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(cwd),
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            raise BackendError(f"cannot start {name} ({argv[0]}): {e}") from None
    start = _proc_start_time(proc.pid)
    # Popen objects would reap the child at exit; we detach on purpose.
    proc.returncode = 0  # keeps Popen.__del__ from warning about a running child
    return {"name": name, "pid": proc.pid, "start": start, "argv": argv, "log": str(log)}


def alive(rec: dict) -> bool:
    start = _proc_start_time(rec["pid"])
    return start is not None and start == rec.get("start")


def _reap(pid: int) -> None:
    # The daemon may be our own child (started by this very process): reap it.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def terminate(recs: list[dict], timeout: float = 30.0, report: Reporter | None = None) -> None:
    """SIGTERM the recorded processes (only those: same PID *and* start time),
    wait for them to exit, SIGKILL what is left after `timeout`."""
    live = [r for r in recs if alive(r)]
    for rec in live:
        if report:
            report(f"stopping {rec['name']} (pid {rec['pid']})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        for rec in live:
            _reap(rec["pid"])
        live = [r for r in live if alive(r)]
        if live:
            time.sleep(0.1)
    for rec in live:
        if report:
            report(f"{rec['name']} (pid {rec['pid']}) ignored SIGTERM for {timeout:.0f}s: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while live and time.monotonic() < deadline:
        for rec in live:
            _reap(rec["pid"])
        live = [r for r in live if alive(r)]
        if live:
            time.sleep(0.1)
    if live:
        names = ", ".join(f"{r['name']} (pid {r['pid']})" for r in live)
        raise BackendError(f"could not stop {names}")


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run(
    argv: list[str],
    *,
    timeout: float = 120,
    check: bool = True,
    what: str = "",
    log: Path | None = None,
    input: str | None = None,
    env: dict | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run a command (in `cwd`, default the current folder); on failure raise
    BackendError with its output."""
    t0 = time.monotonic()
    try:
        res = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=env,
            cwd=cwd,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise BackendError(f"{what or argv[0]}: command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired as e:
        msg = f"{what or 'command'} timed out after {timeout:.0f}s: {shlex.join(argv)}"
        if log:
            msg = log_hint(msg, log)
        raise BackendError(msg) from e
    if log is not None:
        with open(log, "a") as f:
            f.write(
                f"{time.strftime('%T')} $ {shlex.join(argv)}\n{res.stdout}{res.stderr}"
                f"(exit {res.returncode}, {time.monotonic() - t0:.2f}s)\n"
            )
    if check and res.returncode != 0:
        out = (res.stdout + res.stderr).strip()
        out = "\n".join("    " + line for line in out.splitlines()[-30:])
        raise BackendError(
            f"{what or 'command'} failed (exit {res.returncode}): {shlex.join(argv)}\n{out}"
        )
    return res


# --------------------------------------------------------------------------- ports


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def check_ports_free(ports: dict[str, int]) -> None:
    seen: dict[int, str] = {}
    for var, port in ports.items():
        if not 0 < port < 65536:
            raise BackendError(f"{var}={port} is not a TCP port")
        if port in seen:
            raise BackendError(f"{var} and {seen[port]} are both {port}: give them different ports")
        seen[port] = var
        if port_in_use(port):
            raise BackendError(
                f"port {port} on 127.0.0.1 is already in use by another program "
                f"(not one this script started); free it or choose another port with {var}=..."
            )


def tcp_answers(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- HTTP


def http_request(
    method: str, url: str, headers: dict | None = None, body: bytes = b"", timeout: float = 10.0
) -> tuple[int, dict, bytes]:
    """One HTTP request; returns (status, lower-cased headers, body).
    Raises OSError (connection refused, timeout...)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    except http.client.HTTPException as e:
        raise OSError(f"bad HTTP answer from {url}: {e!r}") from e
    finally:
        conn.close()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def s3_signed_request(
    endpoint: str,
    access_key: str,
    secret_key: str,
    region: str,
    method: str = "GET",
    path: str = "/",
    body: bytes = b"",
    timeout: float = 10.0,
    headers: dict | None = None,
) -> tuple[int, dict, bytes]:
    """An AWS Signature V4 signed S3 request (path style, no query), stdlib only.

    `path` must already be URI-encoded (our probes use plain ASCII names); extra
    `headers` (Content-MD5...) are signed too.
    """
    extra = {k.lower(): str(v).strip() for k, v in (headers or {}).items()}
    u = urllib.parse.urlsplit(endpoint)
    host = u.netloc
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {**extra, "host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            path,
            "",
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed,
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(
        _hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), day), region), "s3"), "aws4_request"
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    del headers["host"]  # http.client sends it
    return http_request(method, endpoint.rstrip("/") + path, headers, body, timeout)


def s3_probe(endpoint: str, access_key: str, secret_key: str, region: str) -> None:
    """ListBuckets with a good signature must answer 200; with a wrong secret 403.

    The second half makes sure a real S3 server (one that checks signatures) is there.
    """
    status, _, data = s3_signed_request(endpoint, access_key, secret_key, region)
    if status != 200 or b"ListAllMyBucketsResult" not in data:
        raise BackendError(f"signed S3 ListBuckets at {endpoint} answered {status}: {data[:300]!r}")
    status, _, data = s3_signed_request(endpoint, access_key, secret_key + "x", region)
    if status != 403:
        raise BackendError(
            f"S3 at {endpoint} accepted a wrong secret key (answered {status}):"
            " it does not check signatures"
        )


# --------------------------------------------------------------------------- waiting


def wait_for(
    what: str,
    check,
    procs: list[dict],
    timeout: float,
    interval: float = 0.2,
    logs: list[Path] | None = None,
):
    """Call `check()` until it returns a true value (returned). While waiting, if
    one of `procs` dies, fail at once with its log; on timeout fail with the last
    error and the logs of `procs` (or `logs`)."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        for rec in procs:
            _reap(rec["pid"])
            if not alive(rec):
                logs_ = rec.get("logs") or [rec["log"]]
                raise BackendError(
                    log_hint(
                        f"{rec['name']} exited while waiting for {what}; see its log "
                        f"{' and '.join(logs_)}",
                        *logs_,
                    )
                )
        try:
            result = check()
            if result:
                return result
        except (OSError, BackendError, subprocess.SubprocessError) as e:
            last = str(e)
        if time.monotonic() > deadline:
            paths = (
                logs
                if logs is not None
                else [Path(p) for r in procs for p in (r.get("logs") or [r["log"]])]
            )
            raise BackendError(
                log_hint(
                    f"timed out after {timeout:.0f}s waiting for {what} (last error: {last}); "
                    f"logs: {', '.join(map(str, paths))}",
                    *paths,
                )
            )
        time.sleep(interval)


# --------------------------------------------------------------------------- files


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def load_json(path: Path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise BackendError(f"cannot read {path}: {e}") from None


def write_env_files(run_dir: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """`<run_dir>/env` (KEY=value lines a shell can `source`) and `<run_dir>/env.json`."""
    lines = [f"{k}={shlex.quote(str(v))}" for k, v in env.items()]
    sh = run_dir / "env"
    js = run_dir / "env.json"
    write_atomic(sh, "\n".join(lines) + "\n", 0o600)
    write_atomic(js, json.dumps(env, indent=2) + "\n", 0o600)
    return sh, js


def remove_env_files(run_dir: Path) -> None:
    for name in ("env", "env.json"):
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()


def print_env(env: dict, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(env, indent=2))
    elif fmt == "export":
        for k, v in env.items():
            print(f"export {k}={shlex.quote(str(v))}")
    else:
        for k, v in env.items():
            print(f"{k}={shlex.quote(str(v))}")


# --------------------------------------------------------------------------- apt


def dpkg_missing(packages: list[str]) -> list[str]:
    missing = []
    for pkg in packages:
        res = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True
        )
        if res.returncode != 0 or not res.stdout.endswith(" installed"):
            missing.append(pkg)
    return missing


def apt_install(packages: list[str], report: Reporter, log: Path) -> None:
    """Install the Debian packages that are missing (apt-get update first).

    Services that the packages would start are kept from starting through
    policy-rc.d (Debian's way), so nothing runs on the packages' default ports.
    """
    if not shutil.which("dpkg-query"):
        raise BackendError("this script needs a Debian/Ubuntu system (dpkg-query not found)")
    missing = dpkg_missing(packages)
    if not missing:
        return
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo"):
            prefix = ["sudo", "-n"]
        else:
            raise BackendError(
                f"Debian packages missing: {' '.join(missing)}; install them as root: "
                f"apt-get update && apt-get install -y --no-install-recommends {' '.join(missing)}"
            )
    report(f"installing Debian packages: {' '.join(missing)} (log: {log})")
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not prefix and not policy.exists():
        policy.write_text(
            "#!/bin/sh\n# glance_store_ng tools/backends: no service starts\nexit 101\n"
        )
        policy.chmod(0o755)
        made_policy = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run(prefix + ["apt-get", "update"], timeout=600, what="apt-get update", log=log, env=env)
        run(
            prefix + ["apt-get", "install", "-y", "--no-install-recommends"] + missing,
            timeout=1200,
            what="apt-get install",
            log=log,
            env=env,
        )
    finally:
        if made_policy:
            with contextlib.suppress(OSError):
                policy.unlink()
    still = dpkg_missing(missing)
    if still:
        raise BackendError(log_hint(f"packages still missing after apt-get install: {still}", log))


# --------------------------------------------------------------------------- xattrs


def user_xattrs_ok(folder: Path, size: int = 6096) -> bool:
    """Can a file in `folder` carry `size` bytes of user xattrs, split as Swift splits
    its metadata (254-byte values under user.swift.metadata, ...metadata1, ...)?

    ext4 keeps all of a file's xattrs in one 4 KiB block, so it fails at ~3.5 KB;
    tmpfs takes far more."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".gsn-xattr-probe-{os.getpid()}"
        probe.write_bytes(b"")
        try:
            for i in range(-(-size // 254)):
                os.setxattr(probe, f"user.gsn.probe{i or ''}", b"x" * 254)
            return os.getxattr(probe, "user.gsn.probe") == b"x" * 254
        finally:
            probe.unlink()
    except OSError:
        return False


def digest(text: str, n: int = 10) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]
