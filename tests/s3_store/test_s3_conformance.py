"""The conformance suite for the S3 driver, against Swift's s3api and against radosgw.

The ``s3_server`` fixture runs every test once per real server. The second
class sends every image that does not fit in one PUT as a multipart upload
(``s3_store_large_object_size = 0``, 5 MB parts) and reads 4 MiB chunks, so
that the suite's images (a few chunks long) take 2 or 3 parts.
"""

from __future__ import annotations

from s3_testing import S3Fixture

from glance_store_ng.testing import StoreConformance


class TestS3Conformance(StoreConformance, S3Fixture):
    pass


class TestS3MultipartConformance(StoreConformance, S3Fixture):
    store_options = {
        "s3_store_large_object_size": 0,
        "s3_store_large_object_chunk_size": 5,
        "s3_store_chunk_size": 4 << 20,
    }
