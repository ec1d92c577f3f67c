"""The RBD driver: images as Ceph RBD images, as glance_store keeps them.

Modules by role: ``store`` (the Store: configuration, locations, add/get/delete),
``options``, ``cluster`` (the connection and the error boundary), ``writers``
(librbd and direct object writes), ``reader``, ``orphans`` (images of adds that died).

The store class is imported on first use (``from glance_store_ng.drivers.rbd import
RbdStore``), so ``options`` is importable without the backend's client library.
"""

from typing import Any

__all__ = ["RbdLocation", "RbdStore"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
