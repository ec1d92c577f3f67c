"""How an add shows it is alive: a mark it refreshes as its data flows.

A driver whose adds leave something in the backend before they complete (an
RBD image, an S3 or Swift mark object) lets ``gc`` tell a running add from a
dead one by the age of that mark: an add refreshes it at least every
:data:`HEARTBEAT` seconds while data arrives, so a mark older than gc's
threshold (an hour by default) belongs to an add that died (or made no
progress for that long).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["HEARTBEAT", "Heartbeat"]

#: Seconds between two refreshes of an add's mark, at most.
HEARTBEAT = 60.0

T = TypeVar("T")


class Heartbeat:
    """Calls ``refresh()`` from :meth:`beat` when the last call is ``every`` seconds old."""

    def __init__(self, refresh: Callable[[], None], every: float = HEARTBEAT) -> None:
        self._refresh = refresh
        self.every = every
        self._last = time.monotonic()

    def beat(self) -> None:
        """Refresh the mark if it is due."""
        now = time.monotonic()
        if now - self._last >= self.every:
            self._refresh()
            self._last = now

    def beating(self, chunks: Iterable[T]) -> Iterator[T]:
        """``chunks``, with a :meth:`beat` before each one (closed with it)."""
        iterator = iter(chunks)
        try:
            for chunk in iterator:
                self.beat()
                yield chunk
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
