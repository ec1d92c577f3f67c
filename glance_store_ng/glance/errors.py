"""Our errors as glance_store's, so Glance answers the HTTP status it means.

AlreadyExists is Duplicate (409), StorageFull and SizeLimitExceeded are
StorageFull (413), SizeMismatch is Invalid (400), NotFound is NotFound (404),
BadLocation is BadStoreUri, InUse is InUseByStore, PermissionDenied is
StorageWriteDenied, BackendUnavailable is RemoteServiceUnavailable; any other
StoreError is a BackendException. Exceptions that are not ours (the image
source's, Glance's own size limit) go through unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from glance_store import exceptions as gs

from glance_store_ng import errors

__all__ = ["glance_errors"]

_MAP: tuple[tuple[type[errors.StoreError], type[Exception]], ...] = (
    (errors.AlreadyExists, gs.Duplicate),
    (errors.StorageFull, gs.StorageFull),  # SizeLimitExceeded too
    (errors.SizeMismatch, gs.Invalid),
    (errors.NotFound, gs.NotFound),
    (errors.BadLocation, gs.BadStoreUri),
    (errors.InUse, gs.InUseByStore),
    (errors.PermissionDenied, gs.StorageWriteDenied),
    (errors.BackendUnavailable, gs.RemoteServiceUnavailable),
)


def glance_error(error: errors.StoreError) -> Exception:
    """The glance_store exception for ``error``, saying what it says."""
    for ours, theirs in _MAP:
        if isinstance(error, ours):
            return theirs(message=str(error))
    return gs.BackendException(str(error))


@contextlib.contextmanager
def glance_errors() -> Iterator[None]:
    """Raise our StoreErrors as glance_store's exceptions (the original chained)."""
    try:
        yield
    except errors.StoreError as exc:
        raise glance_error(exc) from exc
