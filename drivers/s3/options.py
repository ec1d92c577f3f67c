"""The s3 driver's options: glance_store's names and meanings, and ours.

``glance-store-ng drivers`` lists them with their help texts and defaults.
"""

from glance_store_ng.options import Option

__all__ = ["OPTIONS"]

OPTIONS = (
    Option(
        "s3_store_host",
        required=True,
        help="The S3 endpoint: https://host[:port] or host[:port] (then http).",
    ),
    Option("s3_store_access_key", required=True, help="The access key id."),
    Option("s3_store_secret_key", required=True, secret=True, help="The secret key."),
    Option("s3_store_bucket", required=True, help="The bucket images are stored in."),
    Option(
        "s3_store_create_bucket_on_put",
        "bool",
        default=False,
        help="Create the bucket on the first add when it does not exist.",
    ),
    Option(
        "s3_store_bucket_url_format",
        default="auto",
        choices=("auto", "path", "virtual"),
        help="Addressing: path (host/bucket/key), virtual (bucket.host/key) or auto.",
    ),
    Option("s3_store_region_name", default="", help="The region (default us-east-1)."),
    Option("s3_store_cacert", default="", help="CA bundle to verify https with."),
    Option(
        "s3_store_large_object_size",
        "int",
        default=100,
        min=0,
        help="Images of this size in MB and larger go up as multipart uploads.",
    ),
    Option(
        "s3_store_large_object_chunk_size",
        "int",
        default=10,
        min=5,
        max=5 * 1024,
        help="The part size of multipart uploads, in MB (at least 5).",
    ),
    Option(
        "s3_store_thread_pools",
        "int",
        default=10,
        min=1,
        max=256,
        help="Parts of one image sent at once (memory: this + 1 parts).",
    ),
    Option(
        "s3_store_part_checksum",
        default="auto",
        choices=("auto", "crc32c", "crc32", "sha256", "md5"),
        help="How the server checks every part: crc32c or crc32, an x-amz-checksum-* "
        "header (crc32c costs nearly nothing with the C module; the payload is not "
        "signed); sha256, the SHA-256 that SigV4 signs; md5, a Content-MD5 (not signed). "
        "crc32c needs the C module. auto (default): crc32c (crc32 without the C module) "
        "where the server checks it "
        "(the first add sends it a wrong one and expects a refusal: Swift's s3api does, "
        "radosgw before Reef does not), else sha256. A damaged part is refused and sent "
        "again.",
    ),
    Option(
        "s3_store_chunk_size",
        "int",
        default=1 << 20,
        min=4096,
        max=1 << 30,
        help="Bytes per read from the image source and from the server (default 1 MiB).",
    ),
    Option(
        "s3_store_max_attempts",
        "int",
        default=5,
        min=1,
        help="Tries of a request that failed in a way that may pass (throttling, 5xx, "
        "dropped connections, timeouts), and of a read resumed in a row without progress; "
        "1 disables retries.",
    ),
    Option(
        "s3_store_retry_backoff",
        "float",
        default=0.5,
        min=0,
        help="Seconds: the first retry waits up to this, doubling each time (with jitter).",
    ),
    Option(
        "s3_store_retry_max_backoff",
        "float",
        default=20.0,
        min=0,
        help="Seconds: the longest wait between two tries.",
    ),
    Option("s3_store_connect_timeout", "float", default=10.0, min=0.1, help="Seconds to connect."),
    Option(
        "s3_store_read_timeout",
        "float",
        default=60.0,
        min=0.1,
        help="Seconds to wait for the server's next bytes.",
    ),
    Option(
        "s3_store_enable_data_integrity_protection",
        "bool",
        default=False,
        help="As glance_store: let botocore add its own checksums (when_supported). "
        "Every body is checked by the server anyway (s3_store_part_checksum).",
    ),
    Option(
        "s3_store_request_checksum_calculation",
        default="when_required",
        choices=("when_required", "when_supported"),
        help="botocore's request_checksum_calculation, with data integrity protection on.",
    ),
    Option(
        "s3_store_response_checksum_validation",
        default="when_required",
        choices=("when_required", "when_supported"),
        help="botocore's response_checksum_validation, with data integrity protection on.",
    ),
)
