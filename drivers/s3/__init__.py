"""The S3 driver: images as objects in one bucket of an S3 server (AWS, radosgw, Swift s3api).

Modules by role: ``store`` (the Store: configuration, locations, add/get/delete),
``options``, ``errors`` (botocore's exceptions at the one boundary),
``multipart`` (multipart uploads over the core part writer), ``orphans``
(multipart uploads of adds that died).
"""

from .store import S3Store

__all__ = ["S3Store"]
