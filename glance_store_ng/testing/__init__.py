"""The conformance suite every store driver passes, shipped for third-party drivers too.

Test mixins hold only tests; a fixture class you write supplies the store.
For a driver of your own::

    import pytest
    from glance_store_ng import open_store
    from glance_store_ng.testing import StoreConformance, StoreFixture

    class MyFixture(StoreFixture):
        @pytest.fixture
        def make_store(self, tmp_path):
            stores = []
            def make(**options):
                store = open_store("mydriver", {"my_endpoint": ..., **options})
                stores.append(store)
                return store
            yield make
            for store in stores:
                store.close()

        def backend_listing(self, store):
            return set(...)  # every object the backend holds for this store

        def damage(self, store, location, offset):
            ...  # change that byte of the stored image behind the driver's back (same size)

    class TestMyDriver(StoreConformance, MyFixture):
        pass

Run it with pytest. Tests that need a capability (``Capabilities.thin``...)
are gated on the store's capabilities. Use a random root (prefix, container,
directory) per run so runs never collide.

If your driver can leave orphans (it implements ``find_orphans`` and
``remove_orphan``), opt in to :class:`OrphanTests` as well: each test runs an
add in another Python process, kills it with SIGKILL once the backend holds
part of the image, and checks that ``find_orphans`` lists exactly what it left
(named and sized as your fixture expects, only once it is older than
``older_than``), that no reader sees the image, that ``remove_orphan`` and
``glance-store-ng gc`` remove all of it and nothing else, and that a running
add is left alone and a completed one leaves nothing. Your fixture class then
also says how to open the same store in that process and what an add leaves::

    from glance_store_ng.store import Orphan
    from glance_store_ng.testing import OrphanTests

    class MyFixture(StoreFixture):
        ...  # make_store, backend_listing as above

        #: small parts, so the first MiB sent are written
        orphan_options = {"my_part_size": 1}
        orphan_sent = 3 << 20  # the killed add's source gives 3 MiB, then stalls
        orphan_written = 2 << 20  # all the backend then holds of it (none in flight)

        def open_store_args(self, **options):
            # what open_store takes to open make_store(**options)'s store elsewhere (JSON);
            # make_store itself may then be ``yield from self.store_factory()``
            return "mydriver", {"my_endpoint": ..., **options}

        def orphan_of(self, store, image_id):
            # what an add of image_id left so far, seen with the backend's own client,
            # as find_orphans must name and size it; None if nothing or a complete image
            parts = ...
            return Orphan(f"my://{image_id}?upload=...", sum(...), 0.0) if parts else None

        def release_killed_add(self, store, orphan):
            ...  # optional: make the backend drop what the dead process still holds

        #: where your add is once its image is complete, before it returns: the test kills
        #: the add there, instead of that call ("before") or once it returned ("after")
        commit_kill_point = ("mypackage.store:MyMark.remove", "before")

    class TestMyDriverOrphans(OrphanTests, MyFixture):
        pass

``OrphanTests`` also runs the kill campaign (:mod:`.campaign`): adds killed at random
moments, then gc. ``StoreConformance`` races four clients adding one id: exactly one
must win (a backend that checks a name only when an upload starts, as Swift, can make
one win with :mod:`glance_store_ng.overlapping`; until then its fixture sets
``exclusive_adds = False``). A fixture whose store reads legacy location
forms lists them in ``location_forms(store, location)``: none may serve an image whose
add has not completed.
"""

from .conformance import StoreConformance, StoreFixture
from .orphans import OrphanTests

__all__ = ["OrphanTests", "StoreConformance", "StoreFixture"]
