"""Fixtures of the S3 driver's tests (defined in s3_testing.py): real servers, buckets, a relay."""

from s3_testing import bucket, relay, s3_server  # noqa: F401
