"""The conformance suite against the real Ceph, with each of the driver's two writers (and
with one read in flight, the default, and three)."""

from __future__ import annotations

from rbd_testing import RbdFixture

from glance_store_ng.testing import StoreConformance


class TestRbdConformance(StoreConformance, RbdFixture):
    """Direct object writes (the default)."""


class TestRbdLibrbdWritesConformance(StoreConformance, RbdFixture):
    """Writes through librbd (rbd_store_direct_writes off), 2 MiB objects, 3 reads in flight."""

    thin_block_size = 2 << 20
    store_defaults = {
        "rbd_store_chunk_size": 2,
        "rbd_store_direct_writes": False,
        "rbd_store_reads_in_flight": 3,
    }
