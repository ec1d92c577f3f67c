"""A real, unmodified OpenStack Glance 33 on 127.0.0.1 for the project's tests.

Glance comes from PyPI in a venv of its own, with this checkout's package installed
beside it (``ensure_glance`` in tools/backends/backends.py, through
:func:`glance_install`). :class:`GlanceServer` gives one glance-api its own folder:
a ``glance-api.conf`` written from a :class:`GlanceConfig` (``enabled_backends``, one
section per backend, the reserved staging and tasks stores, SQLite made by
``glance-manage db_sync``), a copy of Glance's paste ini with a ``trusted`` flavor
(the Keystone pipeline without ``authtoken``: requests that carry :data:`IDENTITY`
headers get an owner, which imports need), a policy file that opens every rule, and
gunicorn serving ``glance.wsgi.api:application``. No Keystone anywhere.

Tests talk to it through python-glanceclient (:meth:`GlanceServer.client`, which
always uploads chunked) and raw HTTP (:meth:`GlanceServer.upload` with a
Content-Length, ranged :meth:`GlanceServer.download`). A Glance that cannot be
installed or started FAILS the test with the end of its log, never skips it.

The fixtures (tests/glance/conftest.py): ``glance_venv`` (the paths),
``glance_servers`` (a :class:`GlanceServers`: ``start(name, config)``, all stopped at
the end of the session) and ``glance_file`` (a Glance with two builtin ``file``
backends, ``fast`` and ``slow``). A test that needs other backends::

    server = glance_servers.start("mine", GlanceConfig(backends={
        "fast": file_backend(tmp / "fast"),                      # glance_store's file
        "ours": Backend("gsng_file", {"filesystem_store_datadir": str(tmp / "ours")}),
    }))
    server.restart(GlanceConfig(...))   # same port, database and folders; new config
    stats = server.stop()               # stats.peak_rss: the worker's peak RSS, bytes

Call ``glance_install(ceph=True)`` before starting a Glance with an RBD backend when
Ceph was not running yet at the session's first :func:`glance_install`: it makes
Debian's rbd/rados bindings importable in the Glance venv.
"""

from __future__ import annotations

import configparser
import contextlib
import functools
import hashlib
import http.client
import http.server
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import real_backends

from glance_store_ng.units import MiB

REPO = Path(__file__).resolve().parents[2]

# Identity headers of an already-authenticated request: the `context` filter turns
# them into a request context with an owner (what Keystone's authtoken would do).
IDENTITY = {
    "X-Identity-Status": "Confirmed",
    "X-Tenant-Id": "gsn-project",
    "X-User-Id": "gsn-user",
    "X-Roles": "admin,member,reader",
}
IMPORT_METHODS = ("glance-direct", "web-download", "copy-image")
RESERVED_STORES = ("os_glance_staging_store", "os_glance_tasks_store")
START_TIMEOUT = float(os.environ.get("GSN_GLANCE_START_TIMEOUT", 120))
STOP_TIMEOUT = 20.0


class GlanceError(RuntimeError):
    """Glance could not be installed, configured or started; the message shows why."""


# --------------------------------------------------------------------------- install


@functools.cache
def _installed(ceph: bool | None) -> tuple[bool, Any]:
    """Install once per session and remember a failure too (no second long wait)."""
    backends = real_backends.backends_module()
    try:
        return True, backends.ensure_glance(REPO, ceph=ceph)
    except backends.BackendUnavailable as exc:
        return False, str(exc)


def glance_install(ceph: bool | None = None) -> dict[str, str]:
    """The paths of the Glance venv running this checkout (see ``ensure_glance``), or
    a test failure. ``ceph=True`` also makes the rbd/rados bindings importable there."""
    ok, value = _installed(ceph)
    if not ok:
        pytest.fail(f"could not install Glance:\n{value}", pytrace=False)
    return value


@functools.cache
def policy_rules(python: str) -> tuple[str, ...]:
    """The names of the policy rules Glance registers that are not open by default
    (asked from its venv)."""
    code = (
        "import json; from glance import policies;"
        "print(json.dumps([r.name for r in policies.list_rules() if r.check_str]))"
    )
    res = subprocess.run(
        [python, "-W", "ignore", "-c", code], capture_output=True, text=True, cwd="/"
    )
    if res.returncode != 0:
        raise GlanceError(f"cannot list Glance's policy rules with {python}:\n{res.stderr}")
    return tuple(json.loads(res.stdout))


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Backend:
    """One entry of ``enabled_backends``: its store type and its section's options."""

    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


def file_backend(datadir: str | os.PathLike, type: str = "file", **options: Any) -> Backend:
    """A filesystem backend (glance_store's ``file`` unless ``type`` says otherwise)."""
    return Backend(type, {"filesystem_store_datadir": str(datadir), **options})


@dataclass(frozen=True)
class GlanceConfig:
    """What varies between the Glances of the tests.

    ``backends``: ``{name: Backend}`` for multi-store (``enabled_backends``), or None
    for a legacy single-store Glance whose ``[glance_store]`` options are then all in
    ``store_options`` (``stores``, ``default_store``, ``filesystem_store_datadir``...).
    ``default_backend``: the first backend unless given. ``extra``: more options, by
    section (``{"DEFAULT": {"debug": True}}``), written last so they win.
    """

    backends: Mapping[str, Backend] | None = None
    default_backend: str | None = None
    store_options: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _ini_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def render_conf(config: GlanceConfig, workdir: Path) -> str:
    """The glance-api.conf for ``config``; its paths all point into ``workdir``."""
    sections: dict[str, dict[str, Any]] = {
        "DEFAULT": {
            "use_stderr": True,
            "enabled_import_methods": f"[{', '.join(IMPORT_METHODS)}]",
        },
        "database": {"connection": f"sqlite:///{workdir / 'glance.sqlite'}"},
        "glance_store": dict(config.store_options),
        "paste_deploy": {"config_file": str(workdir / "glance-api-paste.ini"), "flavor": "trusted"},
        "oslo_policy": {
            "enforce_new_defaults": False,
            "enforce_scope": False,
            "policy_file": str(workdir / "policy.yaml"),
        },
        # Brackets required; an empty port list lets web-download use any local port.
        "import_filtering_opts": {"allowed_hosts": "[127.0.0.1]", "allowed_ports": "[]"},
    }
    if config.backends is None:
        sections["DEFAULT"]["node_staging_uri"] = f"file://{workdir / 'staging'}"
    else:
        names = list(config.backends)
        enabled = ", ".join(f"{name}:{b.type}" for name, b in config.backends.items())
        sections["DEFAULT"]["enabled_backends"] = enabled
        sections["glance_store"].setdefault("default_backend", config.default_backend or names[0])
        for name, backend in config.backends.items():
            sections[name] = dict(backend.options)
        for name in RESERVED_STORES:
            sections[name] = {"filesystem_store_datadir": str(workdir / name)}
    for section, options in config.extra.items():
        sections.setdefault(section, {}).update(options)
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_ini_value(value)}" for key, value in options.items())
        lines.append("")
    return "\n".join(lines)


def write_trusted_paste_ini(source: str | os.PathLike, target: Path) -> None:
    """Glance's paste ini plus a ``trusted`` flavor: its ``keystone`` pipeline without
    ``authtoken``, so the ``context`` filter reads the identity headers as they come."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str  # keep the case of keys
    if not ini.read(source):
        raise GlanceError(f"cannot read Glance's paste ini {source}")
    keystone = ini["composite:api"]["keystone"].split()
    ini["composite:api"]["trusted"] = " ".join(f for f in keystone if f != "authtoken")
    ini["composite:glance-api-trusted"] = dict(ini["composite:glance-api-keystone"])
    with open(target, "w") as f:
        ini.write(f)


def write_open_policy(python: str, target: Path) -> None:
    """A policy file that lets every request do everything (no Keystone roles here)."""
    target.write_text("".join(f'"{rule}": ""\n' for rule in policy_rules(python)))


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, lower-cased headers, body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@contextlib.contextmanager
def serve_bytes(data: bytes, path: str = "/image.raw") -> Iterator[str]:
    """A tiny HTTP server on 127.0.0.1 serving ``data`` at ``path`` (for web-download);
    yields its URL and stops on exit."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            if self.path != path:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------- processes


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids.extend(int(k) for k in (task / "children").read_text().split())
    return kids


def _status_kib(pid: int, key: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/PID/status, in KiB (0 when gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log, indented, for failure messages."""
    try:
        text = path.read_bytes()[-64 * 1024 :].decode("utf-8", "replace")
    except OSError as exc:
        return f"    (cannot read {path}: {exc.strerror})"
    return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (empty)"


@dataclass(frozen=True)
class ServerStats:
    """What a stopped glance-api used: the peak RSS of its gunicorn worker(s), bytes."""

    peak_rss: int
    runtime: float


class GlanceServer:
    """One glance-api under gunicorn on 127.0.0.1, in its own folder ``workdir``.

    ``start()`` writes the configuration, makes the database, starts gunicorn and
    returns once Glance answers; ``restart(config)`` does it again with another
    configuration on the same port and database; ``stop()`` ends the process group and
    returns :class:`ServerStats`. The port is a socket this object holds and hands to
    gunicorn, so it stays the same across restarts.
    """

    def __init__(self, install: Mapping[str, str], workdir: Path, config: GlanceConfig):
        self.install = dict(install)
        self.workdir = Path(workdir)
        self.config = config
        self.conf_path = self.workdir / "etc" / "glance-api.conf"
        self.log_path = self.workdir / "glance-api.log"
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self._sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None
        self._started_at = 0.0

    def __repr__(self) -> str:
        return f"<GlanceServer {self.endpoint} {self.workdir}>"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> GlanceServer:
        """Write the configuration, make the database if new, start and wait."""
        if self._proc is not None:
            raise GlanceError(f"{self} already runs")
        self._write_config()
        self._make_database()
        self._spawn()
        self._wait_until_answering()
        return self

    def restart(self, config: GlanceConfig | None = None) -> ServerStats:
        """Stop, take ``config`` (same workdir, database and port), start again."""
        stats = self.stop()
        if config is not None:
            self.config = config
        self.start()
        return stats

    def stop(self) -> ServerStats:
        """SIGTERM gunicorn's process group, SIGKILL what is left; its stats."""
        if self._proc is None:
            return ServerStats(0, 0.0)
        stats = ServerStats(self.peak_rss(), time.monotonic() - self._started_at)
        proc, self._proc = self._proc, None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):  # workers left behind, if any
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return stats

    def close(self) -> ServerStats:
        """Stop and free the port for good."""
        stats = self.stop()
        self._sock.close()
        return stats

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (the processes that run Glance's code)."""
        return _children(self._proc.pid) if self._proc else []

    def peak_rss(self) -> int:
        """The largest peak RSS (VmHWM) of the workers so far, in bytes."""
        return max((_status_kib(p, "VmHWM") for p in self.worker_pids()), default=0) * 1024

    def reset_peak_rss(self) -> None:
        """Start measuring the peak RSS afresh (``echo 5 > /proc/PID/clear_refs``)."""
        for pid in self.worker_pids():
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    def log_tail(self, lines: int = 40) -> str:
        return f"--- last lines of {self.log_path}:\n{tail(self.log_path, lines)}"

    def _write_config(self) -> None:
        etc = self.conf_path.parent
        etc.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(render_conf(self.config, self.workdir))
        (self.workdir / "staging").mkdir(exist_ok=True)  # legacy mode's node_staging_uri
        write_trusted_paste_ini(self.install["paste_ini"], self.workdir / "glance-api-paste.ini")
        write_open_policy(self.install["python"], self.workdir / "policy.yaml")

    def _make_database(self) -> None:
        """An empty Glance database, unless there is one: a copy of the one that
        ``glance-manage db_sync`` made first in this Glance venv (2 s saved a server)."""
        db = self.workdir / "glance.sqlite"
        template = Path(self.install["base_venv"]) / "gsn-empty-glance.sqlite"
        if db.exists():
            return
        if template.exists():
            shutil.copyfile(template, db)
            return
        self._manage("db_sync")
        partial = template.with_name(f".{template.name}.{os.getpid()}")
        shutil.copyfile(db, partial)
        os.replace(partial, template)

    def _manage(self, *args: str) -> None:
        argv = [self.install["glance_manage"], "--config-file", str(self.conf_path), *args]
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
            log.flush()
            res = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self._cwd())
        if res.returncode != 0:
            raise GlanceError(f"glance-manage {' '.join(args)} failed\n{self.log_tail()}")

    def _cwd(self) -> Path:
        """An empty folder to run from: gunicorn puts its cwd on sys.path, where a
        folder named like a package would shadow it."""
        cwd = self.workdir / "cwd"
        cwd.mkdir(exist_ok=True)
        return cwd

    def _spawn(self) -> None:
        fd = self._sock.fileno()
        argv = [
            self.install["gunicorn"],
            "--bind", f"fd://{fd}",
            "--workers", "1",
            "--timeout", "300",
            "--graceful-timeout", "10",
            "--access-logfile", "-",
            "glance.wsgi.api:application",
        ]  # fmt: skip
        env = {**os.environ, "OS_GLANCE_CONFIG_DIR": str(self.conf_path.parent)}
        env.pop("PYTHONPATH", None)  # nothing of the test process's own path
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._cwd(),
                env=env,
                pass_fds=(fd,),
                start_new_session=True,
            )
        self._started_at = time.monotonic()

    def _wait_until_answering(self) -> None:
        """Until the worker has loaded Glance and lists images (database and policy
        work); any other answer, an exit or the timeout is a GlanceError."""
        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code, self._proc = self._proc.returncode, None
                raise GlanceError(f"glance-api exited (status {code}) at start\n{self.log_tail()}")
            try:
                answer = self.request("GET", "/v2/images?limit=1", timeout=5)
            except OSError as exc:  # refused, or no worker accepting yet
                last = str(exc)
                time.sleep(0.2)
                continue
            if answer.status == 200:
                return
            self.stop()
            raise GlanceError(
                f"glance-api answered GET /v2/images with {answer.status}: "
                f"{answer.body[:300]!r}\n{self.log_tail()}"
            )
        self.stop()
        raise GlanceError(
            f"glance-api did not answer within {START_TIMEOUT:.0f}s ({last})\n{self.log_tail()}"
        )

    # ------------------------------------------------------------------ clients

    def client(self, **identity: str) -> Any:
        """A python-glanceclient v2 Client with the identity headers (``identity``
        overrides some, e.g. ``**{"X-Tenant-Id": "other"}``)."""
        try:
            from glanceclient import Client
        except ImportError:
            Client = None
        if Client is None:
            pytest.fail(
                f"python-glanceclient is not installed in {sys.executable}: "
                "pip install -e '.[test]' (the `test` extra must list python-glanceclient)",
                pytrace=False,
            )
        return Client(endpoint=f"{self.endpoint}/v2", identity_headers={**IDENTITY, **identity})

    def request(
        self,
        method: str,
        path: str,
        body: bytes | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 300,
    ) -> Response:
        """One HTTP request with the identity headers; the whole answer."""
        conn = self._connect(method, path, body, headers, timeout)
        try:
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def request_json(self, method: str, path: str, doc: Any = None, expect: int = 200) -> Any:
        """A JSON request whose answer must have status ``expect``; the parsed answer."""
        body = None if doc is None else json.dumps(doc).encode()
        ctype = "application/openstack-images-v2.1-json-patch" if method == "PATCH" else None
        headers = {"Content-Type": ctype or "application/json"} if body is not None else {}
        answer = self.request(method, path, body, headers)
        self.expect(answer, expect, f"{method} {path}")
        return answer.json() if answer.body else None

    def expect(self, answer: Response, status: int, what: str) -> None:
        """Fail the test, with the log's tail, unless ``answer`` has ``status``."""
        if answer.status != status:
            pytest.fail(
                f"{what}: {answer.status} (expected {status}): {answer.body[:500]!r}\n"
                f"{self.log_tail()}",
                pytrace=False,
            )

    def _connect(
        self,
        method: str,
        path: str,
        body: bytes | BinaryIO | None,
        headers: Mapping[str, str] | None,
        timeout: float,
    ) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, blocksize=MiB)
        conn.request(method, path, body=body, headers={**IDENTITY, **(headers or {})})
        return conn

    # ------------------------------------------------------------------ images

    def create_image(self, name: str = "gsn-test", **props: Any) -> dict:
        """A new raw/bare image record (raw HTTP); its JSON."""
        doc = {"name": name, "disk_format": "raw", "container_format": "bare", **props}
        return self.request_json("POST", "/v2/images", doc, expect=201)

    def image(self, image_id: str) -> dict:
        return self.request_json("GET", f"/v2/images/{image_id}")

    def upload(
        self,
        image_id: str,
        data: bytes | BinaryIO,
        size: int | None = None,
        store: str | None = None,
    ) -> None:
        """PUT the image data with a Content-Length (glanceclient only sends chunked);
        ``data`` may be a file object of ``size`` bytes. ``store``: the backend."""
        if size is None:
            size = len(data)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if store:
            headers["X-Image-Meta-Store"] = store
        answer = self.request("PUT", f"/v2/images/{image_id}/file", data, headers)
        self.expect(answer, 204, f"upload of {image_id}")

    def download(self, image_id: str, offset: int = 0, length: int | None = None) -> bytes:
        """The image data, or ``length`` bytes of it from ``offset`` (a Range request)."""
        headers = self._range(offset, length)
        answer = self.request("GET", f"/v2/images/{image_id}/file", headers=headers)
        self.expect(answer, 206 if headers else 200, f"download of {image_id}")
        return answer.body

    def download_to(self, image_id: str, sink: Callable[[bytes], Any], chunk: int = MiB) -> int:
        """Stream the image data into ``sink`` (e.g. a hash's ``update``); bytes read."""
        conn = self._connect("GET", f"/v2/images/{image_id}/file", None, None, 300)
        try:
            resp = conn.getresponse()
            if resp.status != 200:
                self.expect(Response(resp.status, {}, resp.read()), 200, f"download of {image_id}")
            total = 0
            while block := resp.read(chunk):
                sink(block)
                total += len(block)
            return total
        finally:
            conn.close()

    @staticmethod
    def _range(offset: int, length: int | None) -> dict[str, str]:
        if not offset and length is None:
            return {}
        end = "" if length is None else str(offset + length - 1)
        return {"Range": f"bytes={offset}-{end}"}

    def wait_for_image(
        self, image_id: str, done: Callable[[dict], bool], what: str, timeout: float = 60
    ) -> dict:
        """Poll the image until ``done(image)``; fail with the image, its tasks and the
        log as soon as an import reports a failed store, or at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            image = self.image(image_id)
            if done(image):
                return image
            failed = image.get("os_glance_failed_import")
            if failed or time.monotonic() > deadline:
                why = f"import failed for {failed}" if failed else f"not within {timeout:.0f}s"
                tasks = self.request("GET", f"/v2/images/{image_id}/tasks").body[:2000]
                pytest.fail(
                    f"{what}: {why}\nimage: {json.dumps(image)}\ntasks: {tasks!r}\n"
                    f"{self.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.2)

    def wait_for_stores(self, image_id: str, stores: set[str], timeout: float = 60) -> dict:
        """Wait until the image is active in (at least) ``stores`` and its import tasks
        have ended: Glance lists a store as soon as the data is in it, then still saves
        the image and drops its import lock, and a delete in between may fail (500)."""
        return self.wait_for_image(
            image_id,
            lambda image: (
                image["status"] == "active"
                and stores <= set(filter(None, image.get("stores", "").split(",")))
                and not self.running_tasks(image_id)
            ),
            f"image {image_id} into {sorted(stores)}",
            timeout,
        )

    def running_tasks(self, image_id: str) -> list[dict]:
        """The image's import tasks that have not ended yet."""
        tasks = self.request_json("GET", f"/v2/images/{image_id}/tasks")["tasks"]
        return [task for task in tasks if task["status"] not in ("success", "failure")]


# --------------------------------------------------------------------------- images

SIZE = 3 * MiB + 12345  # not a multiple of any chunk or part size


def payload(seed: int, size: int = SIZE) -> bytes:
    """Random bytes with an all-zero MiB in the middle (images have holes)."""
    data = bytearray(random.Random(seed).randbytes(size))
    data[MiB : 2 * MiB] = bytes(MiB)
    return bytes(data)


def assert_image(image: dict, data: bytes, stores: str | Iterable[str] | None) -> None:
    """The record of an active image holding ``data`` in ``stores`` ("a,b" or names)."""
    assert image["status"] == "active"
    assert image["size"] == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    if stores is not None:
        wanted = stores.split(",") if isinstance(stores, str) else list(stores)
        assert sorted(image["stores"].split(",")) == sorted(wanted)


# --------------------------------------------------------------------------- fixtures


class GlanceServers:
    """Starts GlanceServers for a session, each in a folder of its own, and stops them
    all at the end. A server that cannot start fails the test with its log."""

    def __init__(self, install: Mapping[str, str], tmp_factory: pytest.TempPathFactory):
        self.install = install
        self.tmp_factory = tmp_factory
        self.servers: dict[str, GlanceServer] = {}

    def start(self, name: str, config: GlanceConfig) -> GlanceServer:
        """A running Glance named ``name`` (unique in the session) with ``config``."""
        if name in self.servers:
            raise ValueError(f"a Glance named {name!r} was already started")
        server = GlanceServer(self.install, self.tmp_factory.mktemp(f"glance-{name}"), config)
        self.servers[name] = server
        try:
            return server.start()
        except GlanceError as exc:
            why = f"could not start Glance {name!r} ({server.workdir}):\n{exc}"
            pytest.fail(why, pytrace=False)

    def close(self) -> dict[str, ServerStats]:
        return {name: server.close() for name, server in self.servers.items()}


@pytest.fixture(scope="session")
def glance_venv() -> dict[str, str]:
    """The paths of the Glance venv that runs this checkout (see :func:`glance_install`)."""
    return glance_install()


@pytest.fixture(scope="session")
def glance_servers(
    glance_venv: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GlanceServers]:
    """Start Glances with ``glance_servers.start(name, GlanceConfig(...))``."""
    servers = GlanceServers(glance_venv, tmp_path_factory)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def glance_file(
    glance_servers: GlanceServers, tmp_path_factory: pytest.TempPathFactory
) -> GlanceServer:
    """A Glance with two of glance_store's own ``file`` backends, ``fast`` (default)
    and ``slow``."""
    data = tmp_path_factory.mktemp("glance-file-data")
    config = GlanceConfig(
        backends={"fast": file_backend(data / "fast"), "slow": file_backend(data / "slow")}
    )
    return glance_servers.start("file", config)


def datadir_of(server: GlanceServer, backend: str) -> Path:
    """The ``filesystem_store_datadir`` of a file backend of ``server``."""
    return Path(server.config.backends[backend].options["filesystem_store_datadir"])
