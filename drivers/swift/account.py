"""Swift accounts: credentials, tokens shared and refreshed, pooled connections, one error boundary.

An :class:`Account` is one set of credentials (the store's own options, a
reference of ``swift_store_config_file``, or the ``user:key`` of a legacy
location). It authenticates once, shares the token among all threads, and
re-authenticates once when the server answers 401 (with Keystone v3, also
before the token expires: keystone.py). Its HTTP connections
(python-swiftclient's, each a keep-alive requests session) are pooled.
A :class:`UserAccount` is the requesting user's, in multi-tenant mode: their
token, never renewed (a 401 is PermissionDenied), its connections in the
store's :class:`ConnectionPools`.

The auth requests are made here rather than through swiftclient's
``get_auth``: swiftclient's debug log shows the first characters of
``X-Auth-Key``, and no part of a key may reach a log.

:func:`swift_errors` is the driver's one translation boundary: swiftclient,
requests and socket exceptions become :mod:`glance_store_ng.errors`, with
messages that name the object and never a credential.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import OrderedDict
from collections.abc import Container
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from swiftclient.client import HTTPConnection
from swiftclient.exceptions import ClientException

from glance_store_ng.errors import (
    BackendUnavailable,
    ChecksumMismatch,
    ConfigError,
    PermissionDenied,
    Retry,
    StorageFull,
    StoreError,
    error_for_status,
    translated,
)
from glance_store_ng.retry import RetryPolicy

from .keystone import KeystoneAuth

__all__ = [
    "Account",
    "ConnectionPools",
    "Credentials",
    "HTTPError",
    "UserAccount",
    "swift_errors",
]


class HTTPError(Exception):
    """A Swift answer outside 2xx: its status, reason and (short) body."""

    def __init__(self, status: int, reason: str, body: bytes = b"") -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def detail(self) -> str:
        text = self.body[:200].decode("utf-8", "replace").strip()
        if text.startswith("<html>"):  # Swift's error pages: keep the title only
            text = text.split("<h1>")[-1].split("</h1>")[0]
        return f"HTTP {self.status} {self.reason}" + (f": {text}" if text else "")


_CONNECTION_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
    OSError,
)


#: How to fix what each kind of error says, in this driver's terms.
_HINTS = {
    PermissionDenied: "check the Swift user, key and auth address",
    StorageFull: "the account or container quota is reached, or Swift is out of space",
}
#: The same, when acting as the requesting user (multi-tenant).
_USER_HINTS = {
    **_HINTS,
    PermissionDenied: "the requesting user's project may not reach it (another project's "
    "image not shared with it)",
}


def swift_errors(
    label: str, what: str, hints: dict[type[StoreError], str] = _HINTS
) -> AbstractContextManager[None]:
    """Translate the client's exceptions into the store's: the one boundary of this driver.

    ``what`` names the operation and the object (``reading glance/<id>``); no
    message carries a key or a token. ``hints`` say how to fix each kind of error.
    """
    return translated(lambda exc: _translate(exc, f"{label}: {what}", hints))


def _translate(
    exc: Exception, reason: str, hints: dict[type[StoreError], str]
) -> StoreError | None:
    if isinstance(exc, ClientException):  # from swiftclient helpers
        if exc.http_status is None:
            return StoreError(f"{reason}: {exc.msg}")
        exc = HTTPError(exc.http_status, exc.http_reason or "")
    if isinstance(exc, HTTPError):
        if exc.status == 422:
            return ChecksumMismatch(
                f"{reason}: {exc.detail}; the bytes Swift received differ from those sent "
                "(its ETag check)",
                retry=Retry.TEMPORARY,
            )
        return error_for_status(exc.status, f"{reason}: {exc.detail}", hints)
    if isinstance(exc, _CONNECTION_ERRORS):
        return BackendUnavailable(f"{reason}: Swift did not answer ({type(exc).__name__})")
    if isinstance(exc, requests.exceptions.RequestException):  # its message may hold a header
        return StoreError(f"{reason}: the request could not be sent ({type(exc).__name__})")
    return None


@dataclass(frozen=True)
class Credentials:
    """Who to authenticate as, and where. ``key`` never appears in a repr.

    Keystone v3 scopes the token to ``project_name`` (else the ``project:`` part of
    ``user``); a domain given neither by id nor by name is the ``default`` domain's id;
    given both ways, both are sent and Keystone goes by the name.
    ``origin`` names where these came from, for errors (the options, a reference).
    """

    auth_address: str
    user: str
    key: str = field(repr=False)
    auth_version: str = "3"
    project_domain_id: str | None = None
    user_domain_id: str | None = None
    project_name: str | None = None
    project_domain_name: str | None = None
    user_domain_name: str | None = None
    origin: str = "swift_store_user, swift_store_key and swift_store_*_domain_*"

    def identity(self) -> tuple[str | None, ...]:
        return (
            self.auth_address,
            self.user,
            self.key,
            self.auth_version,
            self.project_name,
            *(f"{name}={value}" for name, value in self.domains().items()),
        )

    def domains(self) -> dict[str, str]:
        """keystoneauth1's domain arguments: by id or by name, ``default`` if neither."""
        found = {}
        for kind in ("user", "project"):
            by_id = getattr(self, f"{kind}_domain_id")
            by_name = getattr(self, f"{kind}_domain_name")
            if by_id or not by_name:
                found[f"{kind}_domain_id"] = by_id or "default"
            if by_name:
                found[f"{kind}_domain_name"] = by_name
        return found

    def describe(self) -> str:
        """The user and project, with their domains (never the key)."""
        project, _, user = self.user.rpartition(":")
        d = self.domains()
        user_domain = d.get("user_domain_name") or d.get("user_domain_id")
        project_domain = d.get("project_domain_name") or d.get("project_domain_id")
        return (
            f"user {user!r} (domain {user_domain!r}) in project "
            f"{self.project_name or project!r} (domain {project_domain!r})"
        )


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach the servers (the same for every account of a store)."""

    cacert: str | None = None
    insecure: bool = False
    timeout: float = 60.0
    endpoint: str | None = None  # swift_store_endpoint: overrides the storage URL
    region: str | None = None
    endpoint_type: str = "publicURL"
    service_type: str = "object-store"


class Account:
    """One authenticated Swift account: a shared token and a pool of connections."""

    #: How its errors say to fix them.
    HINTS = _HINTS

    def __init__(
        self,
        credentials: Credentials,
        settings: ConnectionSettings,
        label: str,
        policy: RetryPolicy,
    ) -> None:
        self.credentials = credentials
        self._connect(settings, label, policy, queue.LifoQueue())
        version = credentials.auth_version
        if version not in ("1", "1.0", "3", "3.0"):
            raise ConfigError(f"{label}: swift auth version {version!r} is not supported")
        self._keystone = (
            KeystoneAuth(credentials, settings, label) if version.startswith("3") else None
        )

    def _connect(
        self,
        settings: ConnectionSettings,
        label: str,
        policy: RetryPolicy,
        pool: queue.LifoQueue[HTTPConnection],
        storage_url: str | None = None,
        token: str | None = None,
    ) -> None:
        """What every account has: how to reach Swift, its token, its connections."""
        self.settings = settings
        self.label = label
        self.policy = policy
        self._lock = threading.Lock()
        self._token = token
        self._storage_url = storage_url
        self._pool = pool

    def __repr__(self) -> str:
        c = self.credentials
        return f"Account(auth_address={c.auth_address!r}, user={c.user!r}, key='***')"

    # -- tokens ----------------------------------------------------------------------------

    def auth(self, stale_token: str | None = None) -> tuple[str, str]:
        """``(storage_url, token)``; a fresh token when ``stale_token`` is the current one
        (Swift refused it), or (Keystone) when the current one expires soon."""
        with self._lock:
            stale = stale_token is not None and stale_token == self._token
            if self._keystone is not None:
                url, token = self._keystone.auth(renew=stale)
            elif self._token is None or stale:
                with swift_errors(self.label, f"authenticating at {self.credentials.auth_address}"):
                    url, token = self._authenticate_v1()
            else:
                assert self._storage_url is not None
                return self._storage_url, self._token
            self._storage_url = (self.settings.endpoint or url).rstrip("/")
            self._token = token
            return self._storage_url, token

    @property
    def storage_url(self) -> str:
        return self.auth()[0]

    @property
    def known_storage_url(self) -> str | None:
        """The storage URL if authenticated already (no request made)."""
        return self._storage_url

    def cluster_info(self) -> dict[str, Any]:
        """The cluster's /info document (limits such as slo.max_manifest_segments)."""
        url = self.storage_url
        conn = self._new_connection(url)
        try:
            resp = conn.request("GET", "/info", "", {})
            if resp.status_code != 200:
                raise HTTPError(resp.status_code, resp.reason or "")
            return json.loads(resp.content)
        finally:
            conn.close()

    def _authenticate_v1(self) -> tuple[str, str]:
        c = self.credentials
        conn = self._new_connection(c.auth_address)
        try:
            headers = {"X-Auth-User": c.user, "X-Auth-Key": c.key}
            resp = conn.request("GET", conn.parsed_url.path or "/", "", headers)
            body = resp.content
            if not 200 <= resp.status_code < 300:
                raise HTTPError(resp.status_code, resp.reason or "", body)
            url = resp.headers.get("X-Storage-Url")
            token = resp.headers.get("X-Auth-Token") or resp.headers.get("X-Storage-Token")
            if not url or not token:
                raise StoreError(
                    f"{self.label}: {c.auth_address} answered without a storage URL and token; "
                    "is it a v1 auth address (swift_store_auth_version = 1)?"
                )
            return url, token
        finally:
            conn.close()

    # -- connections -----------------------------------------------------------------------

    def _new_connection(self, url: str) -> HTTPConnection:
        s = self.settings
        return HTTPConnection(url, cacert=s.cacert, insecure=s.insecure, timeout=s.timeout)

    def _acquire(self, url: str) -> HTTPConnection:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            return self._new_connection(url)
        if conn.url != url:
            conn.close()
            return self._new_connection(url)
        return conn

    def _release(self, conn: HTTPConnection) -> None:
        try:
            self._pool.put_nowait(conn)
        except queue.Full:  # a bounded pool (ConnectionPools') keeps enough already
            conn.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        allow: Container[int] = (),
        retry: bool | None = None,
        query: str = "",
        headers: dict[str, str] | None = None,
        data: Any = None,
        stream: bool = False,
    ) -> Any:
        """Send one request to ``path`` (``container`` or ``container/object``) and check it.

        Returns the requests Response with its body read, or with ``stream`` a
        :class:`StreamedResponse` that holds the connection until closed. A 401
        refreshes the token once and sends again. A status outside 2xx and
        ``allow`` raises the matching StoreError, whose message says ``what``
        was being done. ``retry`` (default: for GET and HEAD) sends the request
        again under the store's RetryPolicy while it fails in a way that may
        pass: only for requests that do the same thing when sent twice, with a
        body that can be sent again.
        """
        if retry is None:
            retry = method in ("GET", "HEAD")

        def once() -> Any:
            with swift_errors(self.label, what, self.HINTS):
                return self._send(method, path, allow, query, headers, data, stream)

        policy = self.policy if retry else RetryPolicy.none()
        return policy.call(once, f"{self.label}: {what}")

    def _send(
        self,
        method: str,
        path: str,
        allow: Container[int],
        query: str,
        headers: dict[str, str] | None,
        data: Any,
        stream: bool,
    ) -> Any:
        full = "/" + quote(path)
        if query:
            full += "?" + query
        stale = None
        for attempt in (0, 1):
            storage_url, token = self.auth(stale)
            conn = self._acquire(storage_url)
            keep = False
            try:
                sent = {**(headers or {}), "X-Auth-Token": token}
                resp = conn.request(method, conn.parsed_url.path + full, data, sent)
                if resp.status_code == 401 and attempt == 0:
                    resp.content  # noqa: B018 - drain, so the connection can be reused
                    keep = True
                    stale = token
                    continue
                ok = 200 <= resp.status_code < 300
                if not ok and resp.status_code not in allow:
                    body = resp.content if method != "HEAD" else b""
                    keep = True
                    raise HTTPError(resp.status_code, resp.reason or "", (body or b"")[:4096])
                if stream and ok:
                    keep = True
                    return StreamedResponse(resp, conn, self)
                resp.content  # noqa: B018 - read the body so the connection can be reused
                keep = True
                return resp
            finally:
                if not keep:
                    conn.close()
                elif not (stream and 200 <= resp.status_code < 300):
                    self._release(conn)
        raise AssertionError("unreachable")

    def close(self) -> None:
        _close_all(self._pool)


class ConnectionPools:
    """Idle connections per storage URL, for the requesting users' accounts (multi-tenant):
    at most ``per_url`` each, for the ``urls`` URLs used last (older ones closed)."""

    def __init__(self, urls: int = 64, per_url: int = 8) -> None:
        self._pools: OrderedDict[str, queue.LifoQueue[HTTPConnection]] = OrderedDict()
        self._lock = threading.Lock()
        self._urls = urls
        self._per_url = per_url

    def pool(self, url: str) -> queue.LifoQueue[HTTPConnection]:
        with self._lock:
            pool = self._pools.pop(url, None) or queue.LifoQueue(self._per_url)
            self._pools[url] = pool  # the newest last
            evicted = []
            while len(self._pools) > self._urls:
                evicted.append(self._pools.popitem(last=False)[1])
        for old in evicted:
            _close_all(old)
        return pool

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            _close_all(pool)


def _close_all(pool: queue.LifoQueue[HTTPConnection]) -> None:
    while True:
        try:
            pool.get_nowait().close()
        except queue.Empty:
            return


class UserAccount(Account):
    """The requesting user's account (multi-tenant): the storage URL and token of the
    user's request context, used as given. The store holds no credentials to renew the
    token with: one Swift refuses is a PermissionDenied asking for a new one.

    Its connections go to and come from ``pool``, which the store keeps per storage URL."""

    HINTS = _USER_HINTS

    def __init__(
        self,
        storage_url: str,
        token: str,
        settings: ConnectionSettings,
        label: str,
        policy: RetryPolicy,
        pool: queue.LifoQueue[HTTPConnection],
    ) -> None:
        self.credentials = None  # type: ignore[assignment]
        self._connect(settings, label, policy, pool, storage_url.rstrip("/"), token)
        self._keystone = None

    def __repr__(self) -> str:
        return f"UserAccount(storage_url={self._storage_url!r}, token='***')"

    def auth(self, stale_token: str | None = None) -> tuple[str, str]:
        assert self._storage_url is not None and self._token is not None
        if stale_token is not None:
            raise PermissionDenied(
                f"{self.label}: Swift refused the token of the request's context (expired or "
                "revoked); the caller must authenticate again and pass the new token"
            )
        return self._storage_url, self._token

    def close(self) -> None:
        """Nothing: the pool is the store's."""


class StreamedResponse:
    """A response being read: it holds its connection until closed, then pools it when the
    body was read to its end (else the connection is closed: it is mid-answer)."""

    def __init__(self, resp: Any, conn: HTTPConnection, account: Account) -> None:
        self.resp = resp
        self.headers = resp.headers
        self.status_code = resp.status_code
        self._conn = conn
        self._account = account
        self._done = False
        length = resp.headers.get("Content-Length")
        self._remaining = int(length) if length is not None and length.isdigit() else None

    def read(self, amount: int) -> bytes:
        piece = self.resp.raw.read(amount)
        if self._remaining is not None:
            self._remaining -= len(piece)
        return piece

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        self.resp.close()
        if self._remaining == 0:
            self._account._release(self._conn)
        else:
            self._conn.close()
