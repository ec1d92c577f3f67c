"""The RBD driver: images as Ceph RBD images, as glance_store keeps them.

Modules by role: ``store`` (the Store: configuration, locations, add/get/delete),
``options``, ``cluster`` (the connection and the error boundary), ``writers``
(librbd and direct object writes), ``reader``, ``orphans`` (images of adds that died).

The store class is imported on first use (``from glance_store_ng.drivers.rbd import
RbdStore``), so ``options`` is importable without the backend's client library.
"""

from .. import exported_from_store

__all__ = ["RbdLocation", "RbdStore"]

__getattr__ = exported_from_store(__name__, __all__)
