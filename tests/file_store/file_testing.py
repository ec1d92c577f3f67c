"""What the filesystem driver's tests share: the conformance fixture, paths of locations."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from glance_store_ng import open_store
from glance_store_ng.store import Store
from glance_store_ng.testing import StoreFixture


def path_of(location: str) -> str:
    return location.removeprefix("file://")


class FilesystemFixture(StoreFixture):
    @pytest.fixture
    def make_store(self, tmp_path) -> Callable[..., Store]:
        def make(**options) -> Store:
            options.setdefault("filesystem_store_datadir", str(tmp_path / "images"))
            return open_store("file", options)

        return make

    def backend_listing(self, store: Store) -> set[str]:
        return {
            os.path.join(root, name)
            for datadir in store.datadirs
            for root, _, files in os.walk(datadir.path)
            for name in files
        }

    def allocated_bytes(self, store: Store, location: str) -> int:
        return os.stat(location.removeprefix("file://")).st_blocks * 512
