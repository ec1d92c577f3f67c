"""What the filesystem driver's tests share: the conformance fixture, paths of locations."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from glance_store_ng.store import Orphan, Store
from glance_store_ng.testing import StoreFixture


def path_of(location: str) -> str:
    return location.removeprefix("file://")


class FilesystemFixture(StoreFixture):
    @pytest.fixture
    def make_store(self, tmp_path) -> Iterator[Callable[..., Store]]:
        self.datadir = str(tmp_path / "images")
        yield from self.store_factory()

    def open_store_args(self, **options: Any) -> tuple[str, dict[str, Any]]:
        return "file", {"filesystem_store_datadir": self.datadir, **options}

    def backend_listing(self, store: Store) -> set[str]:
        """Every file in the data directories but the commit lock a store of several keeps."""
        return {
            os.path.join(root, name)
            for datadir in store.datadirs
            for root, _, files in os.walk(datadir.path)
            for name in files
            if name != ".glance-store-ng.lock"
        }

    def allocated_bytes(self, store: Store, location: str) -> int:
        return os.stat(location.removeprefix("file://")).st_blocks * 512

    def damage(self, store: Store, location: str, offset: int) -> None:
        """A flipped bit on the disk."""
        fd = os.open(path_of(location), os.O_RDWR)
        try:
            [byte] = os.pread(fd, 1, offset)
            os.pwrite(fd, bytes([byte ^ 0x10]), offset)
        finally:
            os.close(fd)

    commit_kill_point = ("os:link", "after")  # the link publishes the image

    def orphan_of(self, store: Store, image_id: str) -> Orphan | None:
        """The add's temporary file, ``.<image id>.<random>.partial`` beside the images."""
        found = [
            entry
            for datadir in store.datadirs
            for entry in os.scandir(datadir.path)
            if entry.name.startswith(f".{image_id}.") and entry.name.endswith(".partial")
        ]
        assert len(found) <= 1, f"more than one temporary file of {image_id}: {found}"
        return Orphan(found[0].path, found[0].stat().st_size, 0.0) if found else None


class TwoDirectoriesFixture(FilesystemFixture):
    """Stores of two data directories; each store opened prefers the other one than the
    last (as hosts configured differently), so concurrent adds go to both."""

    _opened = 0

    def open_store_args(self, **options: Any) -> tuple[str, dict[str, Any]]:
        first, second = f"{self.datadir}-a", f"{self.datadir}-b"
        if self._opened % 2:
            first, second = second, first
        self._opened += 1
        return "file", {"filesystem_store_datadirs": [f"{first}:2", f"{second}:1"], **options}
