"""The RBD driver's link to Ceph: the client modules, one connection, one error boundary.

``rados`` and ``rbd`` are Debian's python3-rados / python3-rbd (there is no
PyPI package); a missing module is an ImportError naming the package, which the
registry turns into "install Debian's python3-rbd".

:class:`Cluster` connects lazily on first use (connecting takes a monitor round
trip and cephx) and is shared by every operation of a store; ``close`` shuts it
down. :func:`ceph_errors` is the one place where rados, rbd and errno errors
become :mod:`glance_store_ng.errors`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from typing import Any

from glance_store_ng.errors import (
    AlreadyExists,
    BackendUnavailable,
    ConfigError,
    InUse,
    NotFound,
    PermissionDenied,
    StorageFull,
    StoreError,
)

try:
    import rados
    import rbd
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        f"the rbd driver needs Ceph's Python bindings ({exc}): apt-get install python3-rbd "
        "python3-rados, then make them importable from this Python (a venv: "
        "tools/backends/ceph link-python .venv/bin/python)",
        name=getattr(exc, "name", None) or "rbd",
    ) from exc

__all__ = ["Cluster", "ceph_errors", "rados", "rbd"]

_UNAVAILABLE = {
    errno.ETIMEDOUT,
    errno.ESHUTDOWN,
    errno.ENOTCONN,
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.EAGAIN,
    errno.EIO,
    errno.EHOSTUNREACH,
}


def _errno_of(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    return abs(code) if isinstance(code, int) else None


@contextlib.contextmanager
def ceph_errors(label: str, what: str) -> Iterator[None]:
    """Translate rados/rbd/OSError into the store's errors: the one boundary of the driver."""
    try:
        yield
    except StoreError:
        raise
    except (rados.Error, rbd.Error, OSError) as exc:
        code = _errno_of(exc)
        reason = f"{label}: {what}: {exc}"
        if isinstance(exc, (rbd.ImageNotFound, rados.ObjectNotFound)) or code == errno.ENOENT:
            raise NotFound(reason) from None
        if isinstance(exc, (rbd.ImageExists, rados.ObjectExists)) or code == errno.EEXIST:
            raise AlreadyExists(reason) from None
        if isinstance(exc, (rbd.PermissionError, rados.PermissionError)) or code in (
            errno.EACCES,
            errno.EPERM,
        ):
            raise PermissionDenied(
                f"{reason}; check the caps of the Ceph user (option rbd_store_user)"
            ) from None
        if isinstance(exc, (rbd.ImageBusy, rbd.ImageHasSnapshots)) or code in (
            errno.EBUSY,
            errno.ENOTEMPTY,
        ):
            raise InUse(reason) from None
        if isinstance(exc, (rbd.NoSpace, rbd.DiskQuotaExceeded)) or code in (
            errno.ENOSPC,
            errno.EDQUOT,
        ):
            raise StorageFull(f"{reason}; free space in the pool or raise its quota") from None
        if isinstance(exc, (rados.TimedOut, rbd.Timeout, rados.ConnectionShutdown)) or (
            code in _UNAVAILABLE
        ):
            raise BackendUnavailable(reason) from None
        raise StoreError(reason) from exc


class Cluster:
    """One connection to the Ceph cluster, opened on first use and shared by threads."""

    def __init__(self, label: str, conffile: str, user: str, connect_timeout: int) -> None:
        self.label = label
        self.conffile = conffile
        self.user = user
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._client: Any = None
        self._fsid = ""

    def _connect(self) -> Any:
        conf: dict[str, str] = {}
        if self.connect_timeout >= 0:  # glance_store's meaning: below 0, librados' defaults
            for name in ("client_mount_timeout", "rados_mon_op_timeout", "rados_osd_op_timeout"):
                conf[name] = str(self.connect_timeout)
        who = f"client.{self.user or 'admin'}"
        with ceph_errors(self.label, f"cannot read the Ceph configuration {self.conffile!r}"):
            if self.conffile and not os.path.isfile(self.conffile):
                raise ConfigError(
                    f"{self.label}: option rbd_store_ceph_conf: no file {self.conffile!r}"
                )
            client = rados.Rados(
                conffile=self.conffile or None, rados_id=self.user or None, conf=conf
            )
        try:
            with ceph_errors(
                self.label,
                f"cannot connect to the Ceph cluster as {who} (within rados_connect_timeout="
                f"{self.connect_timeout}s)",
            ):
                try:
                    client.connect()
                except rados.ObjectNotFound:
                    raise ConfigError(
                        f"{self.label}: no key for {who}: check option rbd_store_user and the "
                        f"keyring that {self.conffile or 'ceph.conf'} names"
                    ) from None
                self._fsid = client.get_fsid()
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    @property
    def client(self) -> Any:
        """The connected ``rados.Rados``; connects on first use."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    @property
    def fsid(self) -> str:
        """The cluster's fsid (as locations carry it)."""
        self.client  # noqa: B018 - connects if needed
        return self._fsid

    @contextlib.contextmanager
    def ioctx(self, pool: str, namespace: str) -> Iterator[Any]:
        """An I/O context on ``pool`` (and ``namespace``), closed afterwards."""
        with ceph_errors(self.label, f"cannot open pool {pool!r}"):
            try:
                ioctx = self.client.open_ioctx(pool)
            except rados.ObjectNotFound:
                raise ConfigError(
                    f"{self.label}: the Ceph cluster has no pool {pool!r} (option rbd_store_pool)"
                ) from None
        try:
            if namespace:
                ioctx.set_namespace(namespace)
            yield ioctx
        finally:
            ioctx.close()

    def close(self) -> None:
        """Shut the connection down; a later use connects again."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.shutdown()
