"""Fixtures of the S3 driver's tests (defined in s3_servers.py): real servers, buckets, a relay."""

from s3_servers import bucket, relay, s3_server  # noqa: F401
