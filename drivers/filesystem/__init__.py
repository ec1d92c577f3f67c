"""The filesystem driver: images as files under one or more data directories.

Modules by role: ``store`` (the Store: configuration, locations, add/get/delete,
orphans), ``space`` (the data directories: which one an add goes to, the room it
reserves, the lock that keeps an image id unique across them). Options carry
glance_store's names and meanings; ``glance-store-ng drivers`` lists them.
"""

from .store import FilesystemStore

__all__ = ["FilesystemStore"]
