"""gc of the segments a killed add left behind: the shared killed-add tests
(:class:`~glance_store_ng.testing.OrphanTests`), and what only Swift's removal refuses."""

from __future__ import annotations

import io
import os

import pytest
from swift_testing import SwiftFixture, objects_under

from glance_store_ng import errors
from glance_store_ng.store import Orphan
from glance_store_ng.testing import OrphanTests
from glance_store_ng.testing.conformance import new_id
from glance_store_ng.units import MiB


class TestSwiftOrphans(OrphanTests, SwiftFixture):
    def test_an_add_alive_again_since_gc_listed_it_is_left_alone(self, make_store):
        """gc lists an add whose mark aged (here: as if an hour old), then the add's mark
        is refreshed (it wrote again): removing it is refused, nothing of it goes."""
        store = make_store(**self.orphan_options)
        image_id = new_id()
        with self._stalled_add(store, image_id) as add:
            [listed] = store.find_orphans(older_than=0)
            stale = Orphan(listed.name, listed.size, listed.age + 7200)  # listed an hour ago
            with pytest.raises(errors.InUse, match="wrote again"):
                store.remove_orphan(stale)
            done = add.finish()
        assert store.get_size(done["location"]) == 2 * self.orphan_sent
        store.delete(done["location"])


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
