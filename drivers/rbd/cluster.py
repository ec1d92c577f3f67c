"""The RBD driver's link to Ceph: the client modules, one connection, one error boundary.

``rados`` and ``rbd`` are Debian's python3-rados / python3-rbd (there is no
PyPI package); a missing module is an ImportError that says so to whoever imports
this module directly; the registry shows the missing module with its own one hint.

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
from contextlib import AbstractContextManager
from typing import Any

from glance_store_ng.errors import (
    ConfigError,
    InUse,
    PermissionDenied,
    StorageFull,
    StoreError,
    error_for_errno,
    translated,
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

#: What Ceph's exception classes mean, as errnos (some carry none).
_CLASS_ERRNOS = (
    ((rbd.ImageNotFound, rados.ObjectNotFound), errno.ENOENT),
    ((rbd.ImageExists, rados.ObjectExists), errno.EEXIST),
    ((rbd.PermissionError, rados.PermissionError), errno.EACCES),
    ((rbd.ImageBusy, rbd.ImageHasSnapshots), errno.EBUSY),  # InUse: see _translate
    ((rbd.NoSpace, rbd.DiskQuotaExceeded), errno.ENOSPC),
    ((rados.TimedOut, rbd.Timeout, rados.ConnectionShutdown), errno.ETIMEDOUT),
)
_HINTS = {
    PermissionDenied: "check the caps of the Ceph user (option rbd_store_user)",
    StorageFull: "free space in the pool or raise its quota",
}


def ceph_errors(label: str, what: str) -> AbstractContextManager[None]:
    """Translate rados/rbd/OSError into the store's errors: the one boundary of the driver."""
    return translated(lambda exc: _translate(exc, f"{label}: {what}: {exc}"), keep_cause=True)


def _translate(exc: Exception, reason: str) -> StoreError | None:
    if not isinstance(exc, (rados.Error, rbd.Error, OSError)):
        return None
    code = getattr(exc, "errno", None)
    for classes, meaning in _CLASS_ERRNOS:
        if isinstance(exc, classes):
            code = meaning
    if isinstance(code, int) and abs(code) in (errno.EBUSY, errno.ENOTEMPTY):
        return InUse(reason)  # an image with snapshots, clones or watchers: left intact
    return error_for_errno(code, reason, _HINTS)


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
