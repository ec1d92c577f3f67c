"""Adds of the filesystem driver killed mid-way: their temporary files are found and removed."""

from __future__ import annotations

from file_testing import FilesystemFixture

from glance_store_ng.testing import OrphanTests


class TestFilesystemOrphans(OrphanTests, FilesystemFixture):
    pass
