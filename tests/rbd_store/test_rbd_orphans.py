"""gc of the image a killed add left behind: the shared killed-add tests
(:class:`~glance_store_ng.testing.OrphanTests`; the fixture's ``release_killed_add``
checks that the dead client's watch keeps gc away until it is dropped), and what only
RBD's removal refuses."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import pytest
from rbd_testing import ADDING_MARK, RbdFixture, opened_ioctx, store_options

from glance_store_ng import errors, open_store
from glance_store_ng._child import script_command
from glance_store_ng.store import Orphan
from glance_store_ng.testing import OrphanTests
from glance_store_ng.testing.conformance import new_id
from glance_store_ng.units import MiB

# An add killed once it created its image, before it marked it.
_KILLED_BEFORE_THE_MARK = """
import json, os, signal, sys
from glance_store_ng import open_store
from glance_store_ng.drivers.rbd import orphans

def die(self, image):
    os.kill(os.getpid(), signal.SIGKILL)

orphans.AddMark.__init__ = die
driver, options, image_id = json.loads(sys.argv[1])
open_store(driver, options).add(image_id, b"never marked" * 1000)
"""


class TestRbdOrphans(OrphanTests, RbdFixture):
    def test_add_killed_before_it_marked_its_image_is_found_then_removed(self, make_store):
        store = make_store()
        before = self.backend_listing(store)
        image_id = new_id()
        done = subprocess.run(
            script_command(
                _KILLED_BEFORE_THE_MARK, json.dumps([*self.open_store_args(), image_id])
            ),
            capture_output=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert store.find_orphans(older_than=3600) == []  # as young as a running add's
        [orphan] = store.find_orphans(older_than=0)
        assert orphan.name.startswith(f"{store.pool}/{store.namespace}/{image_id}?creating=")
        with pytest.raises(errors.NotFound):
            store.get(f"rbd://{image_id}")  # no snapshot, no data: never served
        with pytest.raises(errors.AlreadyExists):
            store.add(image_id, b"retry")
        self.release_killed_add(store, orphan)
        store.remove_orphan(orphan)
        store.remove_orphan(orphan)  # gone already: nothing to do
        assert store.find_orphans(older_than=0) == []
        assert self.backend_listing(store) == before
        result = store.add(image_id, b"retry")  # the id is free again
        assert store.get(result.location).read() == b"retry"
        store.delete(result.location)


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
