"""The errors glance_store_ng raises.

Every error is a :class:`StoreError`. Each says whether trying again may help
(:attr:`StoreError.retry`), and the common ones also inherit the matching
builtin, so ``except FileNotFoundError`` catches :class:`NotFound` without
importing this module.

Messages name the thing and the fix: the option, the location (secrets
masked), the limit that was hit.
"""

from __future__ import annotations

import enum

__all__ = [
    "AlreadyExists",
    "BackendUnavailable",
    "BadLocation",
    "ChecksumMismatch",
    "ConfigError",
    "DriverNotFound",
    "InUse",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Retry",
    "SizeLimitExceeded",
    "SizeMismatch",
    "StorageFull",
    "StoreError",
]


class Retry(enum.Enum):
    """Whether the same call may succeed if made again."""

    PERMANENT = "permanent"
    """Retrying cannot help: fix the request, the data or the configuration."""
    TEMPORARY = "temporary"
    """Retrying may help (the backend was busy, unreachable or timed out)."""
    EXHAUSTED = "exhausted"
    """It was temporary, but the retries allowed have all been spent."""


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
        """True when the same call may succeed if made again."""
        return self.retry is Retry.TEMPORARY

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
    """The data's length differs from the size the caller declared."""


class BadLocation(StoreError, ValueError):
    """A location URI that is malformed, hostile, or not held by this store."""


class InvalidArgument(StoreError, ValueError):
    """A bad argument: an image id, a hashing algorithm, a range."""


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
