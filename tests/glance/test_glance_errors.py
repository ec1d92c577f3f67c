"""Our errors reach Glance as glance_store's, so it answers the HTTP status they mean."""

from __future__ import annotations

import pytest
from glance_store import exceptions as gs

from glance_store_ng import errors
from glance_store_ng.glance.errors import glance_errors


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (errors.AlreadyExists("taken"), gs.Duplicate),  # 409
        (errors.StorageFull("full"), gs.StorageFull),  # 413
        (errors.SizeLimitExceeded("too big"), gs.StorageFull),  # 413
        (errors.SizeMismatch("short"), gs.Invalid),  # 400
        (errors.NotFound("gone"), gs.NotFound),  # 404
        (errors.BadLocation("not ours"), gs.BadStoreUri),
        (errors.InUse("clones"), gs.InUseByStore),
        (errors.PermissionDenied("no"), gs.StorageWriteDenied),
        (errors.BackendUnavailable("down"), gs.RemoteServiceUnavailable),
        (errors.ChecksumMismatch("bent"), gs.BackendException),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
)
def test_each_error_maps_to_glance_stores(ours, theirs):
    with pytest.raises(theirs) as caught, glance_errors():
        raise ours
    assert str(ours) in str(caught.value)
    assert caught.value.__cause__ is ours


def test_other_exceptions_pass_through():
    with pytest.raises(KeyError), glance_errors():
        raise KeyError("the source's own")
