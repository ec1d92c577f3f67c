"""gc of the image a killed add left behind: the shared killed-add tests
(:class:`~glance_store_ng.testing.OrphanTests`; the fixture's ``release_killed_add``
checks that the dead client's watch keeps gc away until it is dropped), and what only
RBD's removal refuses."""

from __future__ import annotations

import io
import os

import pytest
from rbd_testing import ADDING_MARK, RbdFixture, opened_ioctx, store_options

from glance_store_ng import errors, open_store
from glance_store_ng.store import Orphan
from glance_store_ng.testing import OrphanTests
from glance_store_ng.testing.conformance import new_id
from glance_store_ng.units import MiB


class TestRbdOrphans(OrphanTests, RbdFixture):
    pass


@pytest.fixture
def store(ceph_env, namespace):
    store = open_store("rbd", store_options(ceph_env, rbd_store_namespace=namespace))
    yield store
    store.close()


def image_metadata(cluster, store, name) -> dict:
    """The image's metadata, looked at behind the driver's back."""
    import rbd

    with (
        opened_ioctx(cluster, store.pool, store.namespace) as ioctx,
        rbd.Image(ioctx, name, read_only=True) as image,
    ):
        return dict(image.metadata_list())


def test_remove_orphan_refuses_complete_images_and_names_of_elsewhere(store, cluster):
    kept = store.add(new_id(), io.BytesIO(os.urandom(MiB)))
    name = kept.location.split("/")[-2]
    assert ADDING_MARK not in image_metadata(cluster, store, name)
    assert image_metadata(cluster, store, name) == {}  # a complete image has no mark
    spec = f"{store.pool}/{store.namespace}/{name}"
    with pytest.raises(errors.InUse, match="complete image"):
        store.remove_orphan(Orphan(spec, MiB, 7200))
    for name in (f"other-pool/{store.namespace}/x", f"{spec}@snap", f"{store.pool}/x"):
        with pytest.raises(errors.BadLocation):
            store.remove_orphan(Orphan(name, 0, 7200))
    assert store.get_size(kept.location) == MiB
    store.delete(kept.location)
