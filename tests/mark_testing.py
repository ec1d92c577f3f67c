"""Tests the drivers whose adds leave a mark object (S3, Swift) share."""

from __future__ import annotations

import pytest

from glance_store_ng import errors
from glance_store_ng.store import Orphan
from glance_store_ng.testing.conformance import new_id


class MarkRefreshTests:
    """Combine with OrphanTests and the driver's fixture."""

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
