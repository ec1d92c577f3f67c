"""gc of the segments a killed add left behind: the shared killed-add tests
(:class:`~glance_store_ng.testing.OrphanTests`), and what only Swift's removal refuses."""

from __future__ import annotations

import io
import os

import pytest
from mark_testing import MarkRefreshTests
from swift_testing import SwiftFixture, objects_under

from glance_store_ng import errors
from glance_store_ng.store import Orphan
from glance_store_ng.testing import OrphanTests
from glance_store_ng.testing.conformance import new_id
from glance_store_ng.units import MiB


class TestSwiftOrphans(MarkRefreshTests, OrphanTests, SwiftFixture):
    pass


def test_remove_orphan_refuses_a_live_upload_and_names_it_does_not_know(
    swift_store, admin, container
):
    store = swift_store(swift_store_large_object_size=1, swift_store_large_object_chunk_size=1)
    image_id = new_id()
    result = store.add(image_id, io.BytesIO(os.urandom(2 * MiB)))
    segment = next(iter(objects_under(admin, f"{container}_segments")))
    live = Orphan(segment[: segment.rindex("/") + 1], 2 * MiB, 7200)
    with pytest.raises(errors.InUse, match=image_id):
        store.remove_orphan(live)
    for name in (f"{container}/{image_id}", "elsewhere_segments/x/0123456789abcdef/"):
        with pytest.raises(errors.BadLocation):
            store.remove_orphan(Orphan(name, 0, 7200))
    assert store.get_size(result.location) == 2 * MiB
