"""Interop with the real glance_store 5.7.0 RBD driver, on the same cluster and pool.

glance_store knows no RADOS namespaces: both stores work in the pool's default
namespace here, each image under a fresh uuid, and each test deletes what it added.
"""

from __future__ import annotations

import io

import pytest
from bench_testing import bench_beside_glance_store
from rbd_testing import opened_ioctx, store_options

from glance_store_ng import open_store
from glance_store_ng.bench.reference import open_reference
from glance_store_ng.testing.conformance import mostly_zero, new_id
from glance_store_ng.units import MiB


@pytest.fixture
def options(ceph_env):
    """Both drivers' options, as a glance-api.conf would give them."""
    return store_options(
        ceph_env, rbd_store_chunk_size=4, rados_connect_timeout=30, rbd_thin_provisioning=True
    )


@pytest.fixture
def theirs(options):
    """glance_store's RBD store (layering-only images, as ours: see
    glance_store_ng.bench.reference)."""
    with open_reference("rbd", options) as store:
        yield store


@pytest.fixture
def ours(options):
    store = open_store("rbd", options)
    yield store
    store.close()


def test_glance_store_image_reads_through_ours(theirs, ours):
    data = mostly_zero(9 * MiB + 321, seed=31)
    uri, size, _, _ = theirs.add(new_id(), io.BytesIO(data), len(data))
    try:
        assert ours.owns(uri)
        assert ours.get_size(uri) == size == len(data)
        with ours.get(uri) as reader:
            assert reader.read() == data
        with ours.get(uri, 4 * MiB - 3, 6) as reader:
            assert reader.read() == data[4 * MiB - 3 : 4 * MiB + 3]
    finally:
        ours.delete(uri)  # unprotects and removes glance_store's snapshot, then the image
    from glance_store import exceptions

    with pytest.raises(exceptions.NotFound):
        theirs.get_size(uri)


def test_our_image_reads_through_glance_store(theirs, ours):
    data = mostly_zero(9 * MiB + 321, seed=32)
    result = ours.add(new_id(), data)
    try:
        assert theirs.get_size(result.location) == len(data)
        with theirs.get(result.location) as chunks:
            assert b"".join(chunks) == data
    finally:
        theirs.delete(result.location)  # glance_store's delete undoes our snapshot and image
    with pytest.raises(FileNotFoundError):
        ours.get_size(result.location)


def test_bench_measures_glance_store_beside_ours(ceph_env, cluster, tmp_path):
    """A legacy glance-api.conf ([glance_store] default_store = rbd): bench runs both
    drivers and leaves no image in the pool."""
    import rbd

    def images() -> set[str]:
        with opened_ioctx(cluster, ceph_env["GSN_CEPH_POOL"]) as ioctx:
            return set(rbd.RBD().list(ioctx))

    before = images()
    bench_beside_glance_store(
        "[glance_store]\ndefault_store = rbd\n"
        + "".join(f"{name} = {value}\n" for name, value in store_options(ceph_env).items()),
        tmp_path,
    )
    assert images() == before
