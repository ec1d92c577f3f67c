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
"""

from __future__ import annotations

import time
from typing import Any

from glance_store_ng.heartbeat import Heartbeat

from .cluster import rbd

__all__ = ["ADDING_KEY", "AddMark", "mark_time", "marked_images"]

ADDING_KEY = "glance_store_ng.adding"


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


def _allocated(image: Any) -> int:
    total = 0

    def count(offset: int, length: int, exists: bool) -> None:
        nonlocal total
        total += length if exists else 0

    image.diff_iterate(0, image.size(), None, count)
    return total
