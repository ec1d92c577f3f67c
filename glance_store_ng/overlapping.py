"""One winner among overlapping adds of an image id, where the backend checks "must not
exist" only when a write starts.

Swift checks ``If-None-Match: *`` when a PUT starts (and S3 through Swift's
s3api does the same): two adds of one id whose final writes (the object, or the
manifest that makes the image) overlap both pass the check, both are told
201, and the backend keeps the newest. Such a driver makes exactly one of them
win with the mark each add already keeps (see :mod:`~glance_store_ng.heartbeat`)
and the add's token the image carries:

1. The mark says :data:`PUBLISHING` before the final write starts, and from
   then on is refreshed by a thread of the add every half
   :data:`~glance_store_ng.heartbeat.HEARTBEAT` until the add ends (a mark not
   refreshed for :data:`STALE` seconds belongs to a dead add).
2. Once the final write returned, the add lists the marks of its image id
   (:func:`settle`). If there are others, its own says :data:`PUBLISHED` and it
   waits until no other says :data:`PUBLISHING`.
3. It then reads the image's token: its own, it won; another add's, it lost
   (AlreadyExists) and removes only what is its own (segments), never the image.

Why one wins: a final write that overlapped ours started before ours ended, so
its mark said PUBLISHING before our listing, which lists it; we then wait for
it to end, and both read the same newest image. A final write that started
after our listing started after ours ended: the backend refuses it. An add that
saw no other mark may read the token without waiting: any other add whose write
overlapped its own lists its mark, and waits for it to say PUBLISHED or go.
The cost when no add overlaps: one listing and one HEAD per add.
This needs listings that show a mark once its PUT returned, as Swift's container
listings do unless a container server is failing or too slow (its update then
waits in an async pending), and reads of the newest copy: Swift's drivers ask for
it (``X-Newest``); the S3 API cannot, so through Swift's s3api with several
replicas a read may see an older copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import AlreadyExists, StoreError
from .heartbeat import HEARTBEAT, Heartbeat

__all__ = [
    "ADDING",
    "PUBLISHED",
    "PUBLISHING",
    "STALE",
    "OtherAdd",
    "StatedMark",
    "outcome",
    "settle",
]

LOG = logging.getLogger("glance_store_ng.overlapping")

#: The states an add's mark says.
ADDING, PUBLISHING, PUBLISHED = "adding", "publishing", "published"
#: Seconds after which a mark nobody refreshed belongs to a dead add.
STALE = 2 * HEARTBEAT
T = TypeVar("T")

#: Seconds between two listings while waiting: first, at most.
_FIRST_PAUSE, _LONGEST_PAUSE = 0.05, 1.0


@dataclass(frozen=True)
class OtherAdd:
    """The mark of another add of the same image id: its ``name``, what it says (``state``:
    one of the states above; anything else counts as ADDING) and its ``age`` in seconds by
    the backend's clock."""

    name: str
    state: str
    age: float

    @property
    def publishing(self) -> bool:
        """Its final write may still be running."""
        return self.state == PUBLISHING and self.age < STALE


class StatedMark:
    """What every driver's mark shares: its state, its heartbeat, saying and publishing.
    A subclass writes the mark (with its state) in :meth:`put`; ``where`` names the mark
    in the log."""

    def __init__(self, where: str, state: str = ADDING) -> None:
        self.where = where
        self.state = state
        self.heartbeat = Heartbeat(self.put)

    def put(self) -> None:
        """Write (or refresh) the mark, saying ``self.state``."""
        raise NotImplementedError

    def say(self, state: str) -> None:
        """Write the mark again, saying ``state``."""
        self.state = state
        self.put()

    def publish(self) -> None:
        """The add's final write starts: say PUBLISHING, and keep the mark fresh from a
        thread until the add ends (that write, or the wait after it, may send no chunk
        for long)."""
        self.say(PUBLISHING)
        self.heartbeat.start_thread(self.where)


def settle(
    others: Callable[[], list[OtherAdd]],
    published: Callable[[], None],
    owner: Callable[[], T],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``owner()`` (who wrote the image: step 3 above), asked once no other add's final
    write can still change the image (step 2).

    ``others()`` lists the marks of the other adds of the image; ``published()``
    makes this add's mark say PUBLISHED. ``what`` names the image in the log.
    """
    waiting = others()
    if not waiting:
        return owner()
    published()
    pause = _FIRST_PAUSE
    logged = False
    while True:
        busy = [other for other in waiting if other.publishing]
        if not busy:
            return owner()
        if not logged:
            LOG.info(
                "%s: another add of this image is writing it (%s); waiting for it to end",
                what,
                ", ".join(other.name for other in busy),
            )
            logged = True
        sleep(pause)
        pause = min(2 * pause, _LONGEST_PAUSE)
        waiting = others()


def outcome(owner: str | None, mine: str, what: str, image_id: str, at: str) -> StoreError | None:
    """What :func:`settle` found means for the add holding token ``mine``: None if the
    image is its own, else the error it fails with (``what`` names the store, ``at`` the
    image)."""
    if owner == mine:
        return None
    if owner is None:
        return StoreError(
            f"{what}: {at} was replaced by another add of the same id, then deleted, as this "
            "add ended; nothing of this add is stored"
        )
    return AlreadyExists(
        f"{what}: image {image_id} was added by another add at the same time (at {at}); "
        "this add's copy was replaced, nothing of it is kept"
    )
