"""The Swift driver: images as objects in OpenStack Swift, through python-swiftclient.

Modules by role: ``store`` (the Store: configuration, locations, add/get/delete),
``options``, ``account`` (credentials, tokens, pooled connections, the error
boundary), ``large_objects`` (Static Large Object uploads, SLO/DLO deletes),
``reader`` (ranged, resumed reads), ``locations`` (the URI forms), ``orphans``
(segments of adds that died).

The store class is imported on first use (``from glance_store_ng.drivers.swift import
SwiftStore``), so ``options`` is importable without the backend's client library.
"""

from typing import Any

__all__ = ["SwiftStore"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
