"""The RBD driver: images as Ceph RBD images, as glance_store keeps them.

Modules by role: ``store`` (the Store: configuration, locations, add/get/delete),
``options``, ``cluster`` (the connection and the error boundary), ``writers``
(librbd and direct object writes), ``reader``, ``orphans`` (images of adds that died).
"""

from .store import RbdLocation, RbdStore

__all__ = ["RbdLocation", "RbdStore"]
