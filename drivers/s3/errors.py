"""The S3 driver's one error boundary: botocore's exceptions into :mod:`glance_store_ng.errors`.

:meth:`S3Context.errors` wraps every call the driver makes to the server.
Throttling, 5xx answers, connection resets, refused connections and timeouts
become TEMPORARY errors, which the store's :class:`~glance_store_ng.retry.RetryPolicy`
tries again; a 4xx answer (a bad request, credentials, a missing key) is
PERMANENT. A body damaged on its way is ChecksumMismatch, TEMPORARY: the part
is sent again from its buffer.

Messages name the bucket, the key and the access key id; they never hold the
secret key (it is masked even if a server were to echo it back).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import urllib3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from glance_store_ng.errors import (
    BackendUnavailable,
    ChecksumMismatch,
    ConfigError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Retry,
    StorageFull,
    StoreError,
    error_for_status,
    translated,
)

__all__ = ["S3Context", "error_code", "is_retryable"]

#: Error codes that mean "slow down": retried whatever their HTTP status.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestThrottled",
        "ProvisionedThroughputExceededException",
    }
)
#: Timeouts the server reports as a 400 (the client was too slow): retried too.
TIMEOUT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException"})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404", "NoSuchUpload"})
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AllAccessDisabled",
        "AccountProblem",
        "403",
    }
)
_FULL_CODES = frozenset({"QuotaExceeded", "EntityTooLarge", "InsufficientStorage", "507"})
#: What servers answer a body that does not match its checksum (MinIO: the last one).
DIGEST_CODES = frozenset(
    {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch"}
)


def error_code(exc: ClientError) -> tuple[str, int]:
    """The S3 error code and HTTP status of a ClientError."""
    response = exc.response or {}
    code = str(response.get("Error", {}).get("Code", "") or "")
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def is_retryable(exc: BaseException) -> bool:
    """True when sending the same request again may succeed."""
    if isinstance(exc, ClientError):
        code, status = error_code(exc)
        return status >= 500 or status == 429 or code in THROTTLING_CODES | TIMEOUT_CODES
    if isinstance(exc, SSLError):  # a certificate problem does not go away
        return False
    if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError, urllib3.exceptions.HTTPError))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        code, status = error_code(exc)
        message = (exc.response or {}).get("Error", {}).get("Message") or ""
        return f"{code or status} {message}".strip()
    return str(exc)


@dataclass(frozen=True)
class S3Context:
    """What messages name: the store's label, the endpoint, the access key id (never the secret)."""

    label: str
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def scrub(self, text: str) -> str:
        """``text`` with the secret key masked, should a server or library echo it."""
        return text.replace(self.secret_key, "***") if self.secret_key else text

    def errors(self, what: str) -> AbstractContextManager[None]:
        """Translate botocore's exceptions into the store's errors: the driver's one boundary.

        ``what`` says what was being done ("reading s3://host/bucket/id").
        StoreError and exceptions that are not the client's (the caller's source,
        KeyboardInterrupt) pass through unchanged.
        """
        return translated(lambda exc: self.translate(exc, what))

    def translate(self, exc: BaseException, what: str) -> StoreError | None:
        """The StoreError for ``exc``, met while doing ``what``; None if it is not the client's."""
        if not isinstance(exc, (BotoCoreError, ClientError)) and not is_retryable(exc):
            return None
        reason = self.scrub(f"{self.label}: {what}: {_describe(exc)}")
        if isinstance(exc, ClientError):
            code, status = error_code(exc)
            if code == "NoSuchBucket":
                return NotFound(
                    f"{reason}; bucket {self.bucket!r} does not exist at {self.endpoint}: create "
                    "it or set s3_store_create_bucket_on_put = true"
                )
            if code in _FULL_CODES or status in (413, 507):
                return StorageFull(reason)
            if code in DIGEST_CODES:
                return ChecksumMismatch(
                    f"{reason}; the data was damaged on its way to the server",
                    retry=Retry.TEMPORARY,
                )
            if code in _NOT_FOUND_CODES:
                return NotFound(reason)
            if code in _DENIED_CODES:
                status = 403
            if is_retryable(exc):
                return BackendUnavailable(reason)
            return error_for_status(status, reason, self._hints)
        if isinstance(exc, SSLError):
            return BackendUnavailable(
                f"{reason}; check s3_store_host and s3_store_cacert", retry=Retry.PERMANENT
            )
        if isinstance(exc, EndpointConnectionError):
            return BackendUnavailable(
                f"{reason}; is the S3 server at {self.endpoint} running? (s3_store_host)",
            )
        if is_retryable(exc):
            return BackendUnavailable(
                f"{reason}; the S3 server at {self.endpoint} did not answer in time or dropped "
                "the connection",
            )
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return ConfigError(f"{reason}; set s3_store_access_key and s3_store_secret_key")
        if isinstance(exc, ParamValidationError):
            return InvalidArgument(reason)
        return StoreError(reason)

    @property
    def _hints(self) -> dict[type[StoreError], str]:
        return {
            PermissionDenied: f"check s3_store_access_key ({self.access_key!r}) and "
            f"s3_store_secret_key, and that this key may use bucket {self.bucket!r}"
        }
