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

    class TestMyDriver(StoreConformance, MyFixture):
        pass

Run it with pytest. Tests that need a capability (``Capabilities.thin``...)
are gated on the store's capabilities. Use a random root (prefix, container,
directory) per run so runs never collide.
"""

from .conformance import StoreConformance, StoreFixture

__all__ = ["StoreConformance", "StoreFixture"]
