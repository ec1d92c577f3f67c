"""gc of the image a killed add left behind: found, sized, removed; complete images untouched."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from rbd_testing import image_allocated, opened_ioctx, store_options

from glance_store_ng import errors, open_store
from glance_store_ng.store import Orphan
from glance_store_ng.testing.conformance import new_id

MiB = 1 << 20

# Adds an image of unknown size whose source sends 3 MiB and then hangs, as a client upload
# that stalls; the test kills this process mid-add.
_STALLED_ADD = """
import json, os, sys, time
from glance_store_ng import open_store
store = open_store("rbd", json.loads(sys.argv[1]))
def source():
    for _ in range(3):
        yield os.urandom(1 << 20)
    time.sleep(600)
store.add(sys.argv[2], source())
"""


@pytest.fixture
def options(ceph_env, namespace) -> dict:
    return store_options(ceph_env, rbd_store_namespace=namespace, rbd_store_chunk_size=1)


@pytest.fixture
def store(options):
    store = open_store("rbd", options)
    yield store
    store.close()


def image_state(cluster, store, name) -> tuple[dict, int]:
    """The image's metadata and allocated bytes, looked at behind the driver's back."""
    import rbd

    with (
        opened_ioctx(cluster, store.pool, store.namespace) as ioctx,
        rbd.Image(ioctx, name, read_only=True) as image,
    ):
        return dict(image.metadata_list()), image_allocated(image)


def images(cluster, store) -> list[str]:
    import rbd

    with opened_ioctx(cluster, store.pool, store.namespace) as ioctx:
        return rbd.RBD().list(ioctx)


def kill_mid_add(options: dict, image_id: str, cluster, store) -> None:
    """Run an add in another process; SIGKILL it once 2 MiB of its image are written."""
    import rbd

    child = subprocess.Popen(
        [sys.executable, "-c", _STALLED_ADD, json.dumps(options), image_id],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert child.poll() is None, "the add to be killed ended by itself"
            assert time.monotonic() < deadline, "the add to be killed wrote nothing"
            try:
                if image_state(cluster, store, image_id)[1] >= 2 * MiB:
                    break
            except rbd.ImageNotFound:
                pass
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)


def test_gc_removes_the_image_of_a_killed_add_and_nothing_else(options, store, cluster):
    kept = store.add(new_id(), io.BytesIO(os.urandom(3 * MiB)))
    kept_name = kept.location.split("/")[-2]
    assert image_state(cluster, store, kept_name)[0] == {}  # a complete image has no mark
    dead_id = new_id()
    kill_mid_add(options, dead_id, cluster, store)
    assert "glance_store_ng.adding" in image_state(cluster, store, dead_id)[0]

    assert store.find_orphans(older_than=3600) == []  # as young as a running add's
    orphans = store.find_orphans(older_than=0)
    assert [o.name for o in orphans] == [f"{store.pool}/{store.namespace}/{dead_id}"]
    # 2 MiB or 3: a write the killed process had sent may land after it died
    assert orphans[0].size in (2 * MiB, 3 * MiB) and 0 <= orphans[0].age < 600

    # The killed client's watch on the image lasts until Ceph times it out (30 s).
    with pytest.raises(errors.InUse, match="still open") as caught:
        store.remove_orphan(orphans[0])
    assert caught.value.retryable
    deadline = time.monotonic() + 90
    while True:
        try:
            store.remove_orphan(orphans[0])
            break
        except errors.InUse:
            assert time.monotonic() < deadline, "Ceph never dropped the killed client's watch"
            time.sleep(1)
    assert images(cluster, store) == [kept_name]
    assert store.find_orphans(older_than=0) == []
    with store.get(kept.location) as reader:
        assert sum(len(piece) for piece in reader) == 3 * MiB
    store.delete(kept.location)


def test_remove_orphan_refuses_complete_images_and_names_of_elsewhere(store, cluster):
    kept = store.add(new_id(), io.BytesIO(os.urandom(MiB)))
    spec = f"{store.pool}/{store.namespace}/{kept.location.split('/')[-2]}"
    with pytest.raises(errors.InUse, match="complete image"):
        store.remove_orphan(Orphan(spec, MiB, 7200))
    for name in (f"other-pool/{store.namespace}/x", f"{spec}@snap", f"{store.pool}/x"):
        with pytest.raises(errors.BadLocation):
            store.remove_orphan(Orphan(name, 0, 7200))
    assert store.get_size(kept.location) == MiB
    store.delete(kept.location)
