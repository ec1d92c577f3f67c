"""Images of adds whose process died: marked while they are written, found by gc.

An add that fails removes its image itself. A process that dies mid-add
(killed, crashed, its machine lost) cannot: its image stays in the pool and no
location names it. So an add marks its image with the image-meta key
``glance_store_ng.adding`` as soon as it has created it, refreshes the mark's
value (a POSIX time) at least every
:data:`~glance_store_ng.heartbeat.HEARTBEAT` seconds while data
arrives, and removes the mark as its very last step, after protecting the
snapshot. A marked image is therefore one whose add never returned a location,
and one whose mark is older than the gc threshold made no progress for that
long. Reads refuse a marked image (NotFound), whatever the location's form: the
legacy ``rbd://IMAGE`` names no snapshot, so it would otherwise read an unfinished
image. The mark never outlives a successful add, so clones (which copy their
parent's image-meta) and glance_store see nothing of it.

An image cannot be created with its mark: for the moment between the two, an add
lists ``<image id>.<token>`` in the omap of the RADOS object :data:`CREATING` (its
value the time), from before it creates the image until the image carries its
mark. A key older than the gc threshold belongs to an add that died in that moment:
gc removes its image (unmarked, without snapshots) and the key. A read through the
legacy form (no snapshot) refuses an image listed there too.
"""

from __future__ import annotations

import time
from typing import Any

from glance_store_ng.heartbeat import Heartbeat

from .cluster import rados, rbd

__all__ = [
    "ADDING_KEY",
    "CREATING",
    "AddMark",
    "creating",
    "creating_key",
    "creations",
    "done_creating",
    "image_of_key",
    "is_being_created",
    "mark_time",
    "marked_images",
    "unmarked_creations",
]

ADDING_KEY = "glance_store_ng.adding"
#: The RADOS object (in the store's pool and namespace) listing the images being created.
CREATING = "glance_store_ng.creating"


class AddMark:
    """The mark of an add in progress on ``image`` (opened for writing)."""

    def __init__(self, image: Any) -> None:
        self.image = image
        self._set()
        self._heartbeat = Heartbeat(self._set)

    def _set(self) -> None:
        self.image.metadata_set(ADDING_KEY, f"{time.time():.3f}")

    def beat(self) -> None:
        """Refresh the mark if it is due (see the module)."""
        self._heartbeat.beat()

    def remove(self) -> None:
        """The add is complete: the image is an ordinary image from now on."""
        self.image.metadata_remove(ADDING_KEY)


def creating(ioctx: Any, key: str) -> None:
    """List ``key`` (``<image id>.<token>``) as an image being created: before it exists,
    until it is marked."""
    with rados.WriteOpCtx() as op:
        ioctx.set_omap(op, (key,), (f"{time.time():.3f}".encode(),))
        ioctx.operate_write_op(op, CREATING)


def done_creating(ioctx: Any, key: str) -> None:
    """The image of ``key`` is marked (or gone): no longer listed as being created."""
    with rados.WriteOpCtx() as op:
        ioctx.remove_omap_keys(op, (key,))
        ioctx.operate_write_op(op, CREATING)


def is_being_created(ioctx: Any, image_id: str) -> bool:
    """True while an add lists ``image_id`` as being created (before it is marked)."""
    with rados.ReadOpCtx() as op:
        pairs, _ = ioctx.get_omap_vals(op, "", f"{image_id}.", 1000)
        try:
            ioctx.operate_read_op(op, CREATING)
        except rados.ObjectNotFound:
            return False
        return any(image_of_key(key) == image_id for key, _ in pairs)


def creating_key(image_id: str, token: str) -> str:
    return f"{image_id}.{token}"


def image_of_key(key: str) -> str:
    """The image id of a :func:`creating_key`."""
    return key.rpartition(".")[0]


def creations(ioctx: Any) -> dict[str, float]:
    """The keys of images being created (:func:`creating_key`), and since when."""
    found: dict[str, float] = {}
    after = ""
    while True:
        with rados.ReadOpCtx() as op:
            pairs, _ = ioctx.get_omap_vals(op, after, "", 1000)
            try:
                ioctx.operate_read_op(op, CREATING)
            except rados.ObjectNotFound:
                return found
            page = [(key, float(value or b"0")) for key, value in pairs]
        found.update(page)
        if len(page) < 1000:
            return found
        after = page[-1][0]


def mark_time(image: Any) -> float | None:
    """The time of ``image``'s add mark, or None if it has none."""
    try:
        return float(image.metadata_get(ADDING_KEY))
    except KeyError:
        return None


def marked_images(ioctx: Any, older_than: float) -> list[tuple[str, float, int]]:
    """``(name, age in seconds, allocated bytes)`` of the images in ``ioctx`` whose add mark
    is at least ``older_than`` seconds old."""
    found = []
    now = time.time()
    for name in rbd.RBD().list(ioctx):
        try:
            with rbd.Image(ioctx, name, read_only=True) as image:
                marked = mark_time(image)
                if marked is None or max(0.0, now - marked) < older_than:
                    continue
                found.append((name, max(0.0, now - marked), _allocated(image)))
        except rbd.ImageNotFound:  # removed meanwhile
            continue
    return found


def unmarked_creations(ioctx: Any, older_than: float) -> list[tuple[str, float, int]]:
    """``(key, age in seconds, allocated bytes)`` of the adds that died between listing an
    image as being created and marking it (the key is at least ``older_than`` seconds
    old): their image has no mark and no snapshot, or does not exist or is half made
    (0 bytes); a key whose image is complete (another add of the id made it) is listed
    too, 0 bytes: only the key goes."""
    found = []
    now = time.time()
    for key, since in sorted(creations(ioctx).items()):
        age = max(0.0, now - since)
        if age < older_than:
            continue
        allocated = 0
        try:
            with rbd.Image(ioctx, image_of_key(key), read_only=True) as image:
                if mark_time(image) is not None:
                    continue  # marked: found as any marked image (its key goes after it)
                if not list(image.list_snaps()):  # else another add's complete image: key only
                    allocated = _allocated(image)
        except rbd.ImageNotFound:
            pass
        found.append((key, age, allocated))
    return found


def _allocated(image: Any) -> int:
    total = 0

    def count(offset: int, length: int, exists: bool) -> None:
        nonlocal total
        total += length if exists else 0

    image.diff_iterate(0, image.size(), None, count)
    return total
