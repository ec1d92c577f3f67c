"""The S3 driver: images as objects in one bucket of an S3 server (AWS, radosgw, Swift s3api).

Modules by role: ``store`` (the Store: configuration, locations, add/get/delete),
``options``, ``errors`` (botocore's exceptions at the one boundary),
``multipart`` (multipart uploads over the core part writer), ``orphans``
(multipart uploads of adds that died).

The store class is imported on first use (``from glance_store_ng.drivers.s3 import
S3Store``), so ``options`` is importable without the backend's client library.
"""

from .. import exported_from_store

__all__ = ["S3Store"]

__getattr__ = exported_from_store(__name__, __all__)
