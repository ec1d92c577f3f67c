"""The four adapters Glance loads: ``gsng_file``, ``gsng_s3``, ``gsng_swift``, ``gsng_rbd``.

Each declares glance_store's options for its kind (glance_store's own Opt
objects) plus ours, and the schemes glance_store's driver writes, so a backend
switched from ``file`` to ``gsng_file`` (``s3``, ``swift``, ``rbd`` alike)
reads every image it held. Nothing here imports a backend's client library:
our store is opened in ``configure_add``.
"""

from __future__ import annotations

from typing import Any

from glance_store._drivers import filesystem as gs_filesystem
from glance_store._drivers import rbd as gs_rbd
from glance_store._drivers import s3 as gs_s3
from glance_store._drivers.swift import store as gs_swift
from oslo_config import cfg

from glance_store_ng.drivers.filesystem import FilesystemStore
from glance_store_ng.drivers.rbd.options import OPTIONS as RBD_OPTIONS
from glance_store_ng.drivers.s3.options import OPTIONS as S3_OPTIONS
from glance_store_ng.drivers.swift.options import OPTIONS as SWIFT_OPTIONS

from .options import adapter_options
from .store import GlanceAdapter

__all__ = ["FileAdapter", "RbdAdapter", "S3Adapter", "SwiftAdapter"]


class FileAdapter(GlanceAdapter):
    """``gsng_file``: our filesystem store (fsynced, sparse, no-overwrite adds)."""

    DRIVER, ENTRY, SCHEMES = "file", "gsng_file", ("file", "filesystem")
    OPTIONS = adapter_options(gs_filesystem.Store.OPTIONS, FilesystemStore.OPTIONS)


class S3Adapter(GlanceAdapter):
    """``gsng_s3``: our S3 store (parallel parts, server-checked digests, retries)."""

    DRIVER, ENTRY, SCHEMES = "s3", "gsng_s3", ("s3", "s3+http", "s3+https")
    OPTIONS = adapter_options(gs_s3.Store.OPTIONS, S3_OPTIONS)


#: glance_store's swift_store_auth_version allows only "3"; ours takes "1" (tempauth) too.
#: It is registered in the adapter's own backend group, which no builtin driver shares.
_SWIFT_AUTH_VERSION = cfg.StrOpt(
    "swift_store_auth_version",
    default="3",
    choices=["1", "3"],
    help="glance_store_ng: 1 for v1 auth (tempauth), 3 for Keystone v3.",
)


class SwiftAdapter(GlanceAdapter):
    """``gsng_swift``: our Swift store, single- or multi-tenant (streamed PUTs, SLOs, resumed
    reads)."""

    DRIVER, ENTRY = "swift", "gsng_swift"
    SCHEMES = ("swift", "swift+http", "swift+https", "swift+config")
    OPTIONS = [
        opt
        for opt in adapter_options(gs_swift.Store.OPTIONS, SWIFT_OPTIONS)
        if opt.name != _SWIFT_AUTH_VERSION.name
    ]

    def __init__(self, conf: Any, backend: str | None = None) -> None:
        super().__init__(conf, backend)
        if backend:
            conf.register_opt(_SWIFT_AUTH_VERSION, group=backend)

    def declared_options(self) -> list[Any]:
        return [*self.OPTIONS, _SWIFT_AUTH_VERSION]


class RbdAdapter(GlanceAdapter):
    """``gsng_rbd``: our RBD store (thin images, one RADOS write per object)."""

    DRIVER, ENTRY, SCHEMES = "rbd", "gsng_rbd", ("rbd",)
    OPTIONS = adapter_options(gs_rbd.Store.OPTIONS, RBD_OPTIONS)
