"""Helpers of the RBD driver's tests: the fixture class, listings, allocation."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from glance_store_ng import errors
from glance_store_ng.locations import parse_location
from glance_store_ng.store import Orphan, Store
from glance_store_ng.testing import StoreFixture

# Objects RBD (and the driver: the list of images being created) keeps per pool or
# namespace for bookkeeping, not per image.
BOOKKEEPING = {
    "rbd_directory",
    "rbd_children",
    "rbd_info",
    "rbd_trash",
    "rbd_mirroring",
    "glance_store_ng.creating",
}
# The image-meta key an add sets on its image until it completes (drivers/rbd/orphans.py).
ADDING_MARK = "glance_store_ng.adding"


@contextlib.contextmanager
def opened_ioctx(cluster: Any, pool: str, namespace: str = "") -> Iterator[Any]:
    ioctx = cluster.open_ioctx(pool)
    try:
        ioctx.set_namespace(namespace)
        yield ioctx
    finally:
        ioctx.close()


def remove_images(ioctx: Any) -> list[str]:
    """Remove every image of ``ioctx``'s namespace (snapshots first); their names."""
    import rbd

    names = rbd.RBD().list(ioctx)
    for name in names:
        # half made (its add died inside create): nothing to open
        with contextlib.suppress(rbd.ImageNotFound), rbd.Image(ioctx, name) as image:
            for snap in list(image.list_snaps()):
                if image.is_protected_snap(snap["name"]):
                    image.unprotect_snap(snap["name"])
                image.remove_snap(snap["name"])
        rbd.RBD().remove(ioctx, name)
    return names


def store_options(ceph_env: dict[str, str], **options: Any) -> dict[str, Any]:
    return {
        "rbd_store_ceph_conf": ceph_env["GSN_CEPH_CONF"],
        "rbd_store_user": ceph_env["GSN_CEPH_USER"],
        "rbd_store_pool": ceph_env["GSN_CEPH_POOL"],
        **options,
    }


class RbdFixture(StoreFixture):
    """Stores in this run's namespace, 4 MiB objects (Ceph's default object size)."""

    # Ceph's memstore OSD reports a written object as allocated whole.
    thin_block_size = 4 << 20
    store_defaults: dict[str, Any] = {"rbd_store_chunk_size": 4}
    # Killed adds: 1 MiB objects, each written as it arrives (all 3 MiB sent).
    orphan_options = {"rbd_store_chunk_size": 1}

    @pytest.fixture
    def make_store(self, ceph_env, namespace, cluster) -> Iterator[Callable[..., Store]]:
        self.cluster, self.ceph_env, self.namespace = cluster, ceph_env, namespace
        yield from self.store_factory()

    def open_store_args(self, **options: Any) -> tuple[str, dict[str, Any]]:
        options = {"rbd_store_namespace": self.namespace, **self.store_defaults, **options}
        return "rbd", store_options(self.ceph_env, **options)

    def backend_listing(self, store: Store) -> set[str]:
        return listing(self.cluster, store.pool, store.namespace)

    def allocated_bytes(self, store: Store, location: str) -> int:
        return allocated_bytes(self.cluster, store, location)

    def damage(self, store: Store, location: str, offset: int) -> None:
        """Bit rot in RADOS: a byte of the image's data object rewritten with librados (no
        snapshot context, so the snapshot the location reads sees it too)."""
        import rbd

        name = location.split("/")[-2]
        with opened_ioctx(self.cluster, store.pool, store.namespace) as ioctx:
            with rbd.Image(ioctx, name, read_only=True) as image:
                info = image.stat()
            data_object = f"{info['block_name_prefix']}.{offset // info['obj_size']:016x}"
            within = offset % info["obj_size"]
            [byte] = ioctx.read(data_object, 1, within)
            ioctx.write(data_object, bytes([byte ^ 0x10]), within)

    def location_forms(self, store: Store, location: str) -> list[str]:
        """The location, and glance_store's legacy short form ``rbd://IMAGE``."""
        return [location, "rbd://" + location.split("/")[-2]]

    commit_kill_point = ("glance_store_ng.drivers.rbd.orphans:AddMark.remove", "before")

    def orphan_of(self, store: Store, image_id: str) -> Orphan | None:
        """The add's image, ``pool/namespace/<id>``, sized by its allocated bytes, while it
        carries the add's mark (image-meta ``glance_store_ng.adding``); a complete image
        has none."""
        import rbd

        try:
            with (
                opened_ioctx(self.cluster, store.pool, store.namespace) as ioctx,
                rbd.Image(ioctx, image_id, read_only=True) as image,
            ):
                if ADDING_MARK not in dict(image.metadata_list()):
                    return None
                return Orphan(
                    f"{store.pool}/{store.namespace}/{image_id}", image_allocated(image), 0.0
                )
        except rbd.ImageNotFound:
            return None

    def release_killed_add(self, store: Store, orphan: Orphan) -> None:
        """The killed client's watch on the image lasts until Ceph times it out (30 s), and
        keeps gc away: blocklist the dead client, as an operator would, and the OSD drops it."""
        import rbd

        with pytest.raises(errors.InUse, match="still open") as caught:
            store.remove_orphan(orphan)
        assert caught.value.retryable
        with opened_ioctx(self.cluster, store.pool, store.namespace) as ioctx:
            name = orphan.name.partition("?")[0].rpartition("/")[2]
            with rbd.Image(ioctx, name, read_only=True) as image:
                watchers = [w["addr"] for w in image.watchers_list()]
            for addr in watchers:
                command = {"prefix": "osd blocklist", "blocklistop": "add", "addr": addr}
                ret, _, message = self.cluster.mon_command(
                    json.dumps({**command, "expire": 600.0}), b""
                )
                assert ret == 0, f"ceph osd blocklist add {addr}: {message}"
            deadline = time.monotonic() + 90
            while True:
                with rbd.Image(ioctx, name, read_only=True) as image:
                    if not list(image.watchers_list()):
                        return
                assert time.monotonic() < deadline, "Ceph never dropped the killed client's watch"
                time.sleep(0.1)


def listing(cluster: Any, pool: str, namespace: str) -> set[str]:
    """Every RADOS object of the namespace but RBD's bookkeeping, and every image@snapshot."""
    import rbd

    with opened_ioctx(cluster, pool, namespace) as ioctx:
        found = {o.key for o in ioctx.list_objects() if o.key not in BOOKKEEPING}
        for name in rbd.RBD().list(ioctx):
            with rbd.Image(ioctx, name) as image:
                found |= {f"{name}@{snap['name']}" for snap in image.list_snaps()}
    return found


def allocated_bytes(cluster: Any, store: Store, location: str) -> int:
    """Bytes RBD reports allocated for the image's snapshot (diff_iterate from nothing)."""
    import rbd

    parsed = store._parse_location(parse_location(location))
    with (
        opened_ioctx(cluster, parsed.pool, parsed.namespace) as ioctx,
        rbd.Image(ioctx, parsed.image, snapshot=parsed.snapshot, read_only=True) as image,
    ):
        return image_allocated(image)


def image_allocated(image: Any) -> int:
    """Bytes RBD reports allocated in an open image (diff_iterate from nothing)."""
    total = 0

    def count(offset: int, length: int, exists: bool) -> None:
        nonlocal total
        total += length if exists else 0

    image.diff_iterate(0, image.size(), None, count)
    return total
