"""The S3 driver's one error boundary, and its retry policy.

:func:`s3_errors` translates botocore's exceptions into
:mod:`glance_store_ng.errors`; every call the driver makes to the server goes
through it. :class:`RetryPolicy` retries a call with exponential backoff and
full jitter, but only when the same request may succeed if sent again:
throttling, 5xx answers, connection resets, refused connections and timeouts.
A 4xx answer (a bad request, credentials, a missing key) is never retried.
When the retries are spent on a server that is down or failing, the error is
BackendUnavailable with ``retry`` TEMPORARY: the server may come back, and the
caller may try again later.

Messages name the bucket, the key and the access key id; they never hold the
secret key (it is masked even if a server were to echo it back).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

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
)

__all__ = ["RetriesExhausted", "RetryPolicy", "S3Context", "error_code", "is_retryable"]

LOG = logging.getLogger("glance_store_ng.drivers.s3")
T = TypeVar("T")

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
_DIGEST_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})


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
    return isinstance(exc, (ConnectionError, TimeoutError))


class RetriesExhausted(Exception):
    """A retryable failure that persisted through every attempt allowed."""

    def __init__(self, last: BaseException, attempts: int, seconds: float) -> None:
        super().__init__(str(last))
        self.last = last
        self.attempts = attempts
        self.seconds = seconds


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``attempts`` tries; before try n+1 sleep uniform(0, min(cap, base * 2**(n-1)))."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 20.0

    def delay(self, attempt: int) -> float:
        """The sleep before the next try, after ``attempt`` tries failed (full jitter)."""
        return random.uniform(0.0, min(self.cap, self.base * (2 ** (attempt - 1))))

    def call(self, fn: Callable[[], T], what: str = "request") -> T:
        """``fn()``, retried while it fails in a retryable way; RetriesExhausted at the end.

        Non-retryable exceptions propagate at once, unchanged.
        """
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                if attempt >= self.attempts:
                    raise RetriesExhausted(exc, attempt, time.monotonic() - started) from exc
                delay = self.delay(attempt)
                LOG.debug(
                    "%s failed (%s: %s); try %d of %d in %.2fs",
                    what,
                    type(exc).__name__,
                    _describe(exc),
                    attempt + 1,
                    self.attempts,
                    delay,
                )
                time.sleep(delay)


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

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Translate botocore's exceptions into the store's errors: the driver's one boundary.

        ``what`` says what was being done ("reading s3://host/bucket/id").
        StoreError and exceptions that are not botocore's (the caller's source,
        KeyboardInterrupt) pass through unchanged.
        """
        try:
            yield
        except StoreError:
            raise
        except RetriesExhausted as exc:
            raise self.translate(exc.last, what, exc) from None
        except (ClientError, BotoCoreError) as exc:
            raise self.translate(exc, what, None) from None

    def translate(
        self, exc: BaseException, what: str, exhausted: RetriesExhausted | None
    ) -> StoreError:
        """The StoreError for ``exc``, met while doing ``what``."""
        reason = self.scrub(f"{self.label}: {what}: {_describe(exc)}")
        if exhausted is not None and exhausted.attempts > 1:
            reason += f" (gave up after {exhausted.attempts} attempts in {exhausted.seconds:.1f}s)"
        if isinstance(exc, ClientError):
            code, status = error_code(exc)
            if code == "NoSuchBucket":
                return NotFound(
                    f"{reason}; bucket {self.bucket!r} does not exist at {self.endpoint}: create "
                    "it or set s3_store_create_bucket_on_put = true"
                )
            if code in _FULL_CODES or status == 507:
                return StorageFull(reason)
            if code in _DIGEST_CODES:
                return ChecksumMismatch(
                    f"{reason}; the data was damaged on its way to the server",
                    retry=Retry.TEMPORARY,
                )
            if code in _NOT_FOUND_CODES or status == 404:
                return NotFound(reason)
            if code in _DENIED_CODES or status in (401, 403):
                return PermissionDenied(
                    f"{reason}; check s3_store_access_key ({self.access_key!r}) and "
                    f"s3_store_secret_key, and that this key may use bucket {self.bucket!r}"
                )
            if is_retryable(exc):
                return BackendUnavailable(reason)
            return StoreError(reason)
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
