"""Interop with the real glance_store 5.7.0 RBD driver, on the same cluster and pool.

glance_store knows no RADOS namespaces: both stores work in the pool's default
namespace here, each image under a fresh uuid, and each test deletes what it added.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rbd_testing import store_options

from glance_store_ng import open_store
from glance_store_ng.testing.conformance import mostly_zero, new_id

MiB = 1 << 20


@pytest.fixture
def theirs(ceph_env, tmp_path):
    """glance_store's RBD store, configured as a glance-api.conf would.

    glance_store creates images with the cluster's ``rbd default features``; this
    test cluster hangs creating images with exclusive-lock/object-map (it runs no
    ceph-mgr), so its ceph.conf copy asks for layering only, as our driver does.
    """
    import glance_store
    from glance_store import location as gs_location
    from glance_store._drivers import rbd as gs_rbd
    from oslo_config import cfg

    ceph_conf = tmp_path / "ceph.conf"
    text = Path(ceph_env["GSN_CEPH_CONF"]).read_text()
    ceph_conf.write_text(text + "\n[client]\nrbd default features = 1\n")
    conf = cfg.ConfigOpts()
    glance_store.register_opts(conf)
    conf([], project="glance-store-ng-interop")
    for name, value in {
        "rbd_store_pool": ceph_env["GSN_CEPH_POOL"],
        "rbd_store_user": ceph_env["GSN_CEPH_USER"],
        "rbd_store_ceph_conf": str(ceph_conf),
        "rbd_store_chunk_size": 4,
        "rados_connect_timeout": 30,
        "rbd_thin_provisioning": True,
    }.items():
        conf.set_override(name, value, "glance_store")
    store = gs_rbd.Store(conf)
    store.configure()

    def location(uri):
        return gs_location.Location("rbd", gs_rbd.StoreLocation, conf, uri=uri)

    store.location = location
    return store


@pytest.fixture
def ours(ceph_env):
    store = open_store("rbd", store_options(ceph_env))
    yield store
    store.close()


def test_glance_store_image_reads_through_ours(theirs, ours):
    data = mostly_zero(9 * MiB + 321, seed=31)
    uri, size, md5, _, _ = theirs.add(new_id(), io.BytesIO(data), len(data), "sha512")
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
        theirs.get_size(theirs.location(uri))


def test_our_image_reads_through_glance_store(theirs, ours):
    data = mostly_zero(9 * MiB + 321, seed=32)
    result = ours.add(new_id(), data)
    loc = theirs.location(result.location)
    try:
        assert theirs.get_size(loc) == len(data)
        chunks, size = theirs.get(loc)
        assert size == len(data)
        assert b"".join(chunks) == data
    finally:
        theirs.delete(loc)  # glance_store's delete undoes our snapshot and image
    with pytest.raises(FileNotFoundError):
        ours.get_size(result.location)
