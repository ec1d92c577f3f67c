"""The Swift driver: images as objects in OpenStack Swift, through python-swiftclient.

Modules by role: ``store`` (the Store: configuration, locations, add/get/delete),
``options``, ``account`` (credentials, tokens, pooled connections, the error
boundary), ``large_objects`` (Static Large Object uploads, SLO/DLO deletes),
``reader`` (ranged, resumed reads), ``locations`` (the URI forms), ``orphans``
(segments of adds that died).

The store class is imported on first use (``from glance_store_ng.drivers.swift import
SwiftStore``), so ``options`` is importable without the backend's client library.
"""

from .. import exported_from_store

__all__ = ["SwiftStore"]

__getattr__ = exported_from_store(__name__, __all__)
