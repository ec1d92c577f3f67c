"""The errors glance_store_ng raises.

Every error is a :class:`StoreError`. Each says whether trying again may help
(:attr:`StoreError.retry`), and the common ones also inherit the matching
builtin, so ``except FileNotFoundError`` catches :class:`NotFound` without
importing this module.

Messages name the thing and the fix: the option, the location (secrets
masked), the limit that was hit.
"""

from __future__ import annotations

import contextlib
import enum
import errno
from collections.abc import Callable, Iterator, Mapping

__all__ = [
    "AlreadyExists",
    "BackendUnavailable",
    "BadLocation",
    "ChecksumMismatch",
    "ConfigError",
    "DriverNotFound",
    "ImageRejected",
    "InUse",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Retry",
    "SizeLimitExceeded",
    "SizeMismatch",
    "StorageFull",
    "StoreError",
    "error_for_errno",
    "error_for_status",
    "translated",
]


class Retry(enum.Enum):
    """Whether the same call may succeed if made again."""

    PERMANENT = "permanent"
    """Retrying cannot help: fix the request, the data or the configuration."""
    TEMPORARY = "temporary"
    """Retrying may help (the backend was busy, unreachable or timed out)."""
    EXHAUSTED = "exhausted"
    """It was temporary, but the store's retries have all been spent: a later call may
    succeed, an immediate one is unlikely to."""


class StoreError(Exception):
    """Base class of every glance_store_ng error.

    ``retry`` tells whether the same call may succeed later;
    ``retryable`` is its boolean short form.
    """

    default_retry = Retry.PERMANENT

    def __init__(self, message: str, *, retry: Retry | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry if retry is not None else self.default_retry

    @property
    def retryable(self) -> bool:
        """True when the same call may succeed if made again later: TEMPORARY, or
        EXHAUSTED (the store already retried it; wait before trying again)."""
        return self.retry is not Retry.PERMANENT

    def __str__(self) -> str:
        return self.message


class NotFound(StoreError, FileNotFoundError):
    """No image at this location."""


class AlreadyExists(StoreError, FileExistsError):
    """An image with this id is already stored; nothing was overwritten."""


class StorageFull(StoreError, OSError):
    """The backend has no room left for the image; what was written was removed."""


class SizeLimitExceeded(StorageFull):
    """The image is larger than the configured size cap (``image_size_cap``)."""


class SizeMismatch(StoreError, ValueError):
    """The data's length differs from the size declared for it: by the caller of an add, by
    the backend for a read (a short read), or by the image recorded (verify on read)."""


class BadLocation(StoreError, ValueError):
    """A location URI that is malformed, hostile, or not held by this store."""


class InvalidArgument(StoreError, ValueError):
    """A bad argument: an image id, a hashing algorithm, a range."""


class ImageRejected(InvalidArgument):
    """The image is not what it was declared to be, or failed a safety check of the format
    inspection (a backing file, a data file, extents outside the image...); nothing was
    stored."""


class ConfigError(StoreError, ValueError):
    """A configuration problem: an unknown, missing or malformed option."""


class DriverNotFound(ConfigError):
    """No installed store driver has this name, or it failed to load."""


class ChecksumMismatch(StoreError, ValueError):
    """The data read back does not match the checksum recorded for it."""


class BackendUnavailable(StoreError, ConnectionError):
    """The backend could not be reached or did not answer in time."""

    default_retry = Retry.TEMPORARY


class PermissionDenied(StoreError, PermissionError):
    """The backend refused the credentials or the operation."""


class InUse(StoreError):
    """The image is in use (for example an RBD snapshot with clones) and was left intact."""


# -- what every driver's error boundary shares ------------------------------------------------

#: The error an errno means, for the backends that report errnos (files, Ceph).
ERRNO_ERRORS: Mapping[int, type[StoreError]] = {
    errno.ENOENT: NotFound,
    errno.EEXIST: AlreadyExists,
    errno.EACCES: PermissionDenied,
    errno.EPERM: PermissionDenied,
    errno.EROFS: PermissionDenied,
    errno.ENOSPC: StorageFull,
    errno.EDQUOT: StorageFull,
    errno.EFBIG: StorageFull,
    errno.EIO: BackendUnavailable,
    errno.ESTALE: BackendUnavailable,
    errno.EAGAIN: BackendUnavailable,
    errno.ETIMEDOUT: BackendUnavailable,
    errno.ENOTCONN: BackendUnavailable,
    errno.ESHUTDOWN: BackendUnavailable,
    errno.ECONNREFUSED: BackendUnavailable,
    errno.ECONNRESET: BackendUnavailable,
    errno.EHOSTUNREACH: BackendUnavailable,
}

#: The error an HTTP status means, for the backends that answer in HTTP (S3, Swift).
#: Any other 5xx is BackendUnavailable too; any other status a plain StoreError.
HTTP_STATUS_ERRORS: Mapping[int, type[StoreError]] = {
    401: PermissionDenied,
    403: PermissionDenied,
    404: NotFound,
    408: BackendUnavailable,
    413: StorageFull,
    429: BackendUnavailable,
    499: BackendUnavailable,
    507: StorageFull,
}


def _error(
    kind: type[StoreError], reason: str, hints: Mapping[type[StoreError], str]
) -> StoreError:
    hint = hints.get(kind)
    return kind(f"{reason}; {hint}" if hint else reason)


def error_for_errno(
    code: int | None, reason: str, hints: Mapping[type[StoreError], str] | None = None
) -> StoreError:
    """The error for ``code`` (an errno, sign ignored), saying ``reason`` and the driver's hint
    for that kind of error (``hints``: error class -> how to fix it)."""
    kind = ERRNO_ERRORS.get(abs(code), StoreError) if isinstance(code, int) else StoreError
    return _error(kind, reason, hints or {})


def error_for_status(
    status: int, reason: str, hints: Mapping[type[StoreError], str] | None = None
) -> StoreError:
    """The error for an HTTP ``status``, saying ``reason`` and the driver's hint for its kind."""
    kind = HTTP_STATUS_ERRORS.get(status)
    if kind is None:
        kind = BackendUnavailable if status >= 500 else StoreError
    return _error(kind, reason, hints or {})


@contextlib.contextmanager
def translated(
    translate: Callable[[Exception], StoreError | None], *, keep_cause: bool = False
) -> Iterator[None]:
    """A driver's one error boundary: an exception ``translate`` maps becomes that StoreError.

    A StoreError, and what ``translate`` returns None for (the caller's own
    exceptions, KeyboardInterrupt), pass through unchanged. ``keep_cause``
    chains the original (``raise ... from exc``) so tracebacks keep it: only
    for causes that cannot hold a secret (OSError, rados), never for an HTTP
    client's, whose messages may echo credentials.
    """
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        error = translate(exc)
        if error is None:
            raise
        if keep_cause:
            raise error from exc
        raise error from None
