"""The Swift driver: images as objects in OpenStack Swift, through python-swiftclient.

Modules by role: ``store`` (the Store: configuration, locations, add/get/delete),
``options``, ``account`` (credentials, tokens, pooled connections, the error
boundary), ``large_objects`` (Static Large Object uploads, SLO/DLO deletes),
``reader`` (ranged, resumed reads), ``locations`` (the URI forms), ``orphans``
(segments of adds that died).
"""

from .store import SwiftStore

__all__ = ["SwiftStore"]
