"""The conformance suite against the real Swift all-in-one, in the driver's main configurations."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from swift_testing import objects_under

from glance_store_ng.store import Store
from glance_store_ng.testing import StoreConformance, StoreFixture


class SwiftFixture(StoreFixture):
    #: Options every store of the class gets (a subclass changes them).
    extra_options: dict = {}

    @pytest.fixture
    def make_store(self, swift_store, admin) -> Callable[..., Store]:
        self._admin = admin

        def make(**options) -> Store:
            return swift_store(**{**self.extra_options, **options})

        return make

    def backend_listing(self, store: Store) -> set[str]:
        """Every object of the store's containers: images, manifests, segments."""
        return objects_under(self._admin, store.container)


class TestSwiftConformance(StoreConformance, SwiftFixture):
    """Default options: images of known size up to 5 GiB are streamed in one PUT; those of
    unknown size go up in one PUT up to one segment (32 MiB), else as an SLO."""


class TestSwiftLargeObjectConformance(StoreConformance, SwiftFixture):
    """Every image over 1 MiB is a Static Large Object of 1 MiB segments, sent 3 at a time."""

    extra_options = {
        "swift_store_large_object_size": 1,
        "swift_store_large_object_chunk_size": 1,
        "swift_store_upload_concurrency": 3,
    }


class TestSwiftSeededContainersConformance(StoreConformance, SwiftFixture):
    """Images spread over containers by the first 2 characters of their id."""

    extra_options = {"swift_store_multiple_containers_seed": 2}
