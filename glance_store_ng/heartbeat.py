"""How an add shows it is alive: a mark it refreshes as its data flows.

A driver whose adds leave something in the backend before they complete (an
RBD image, an S3 or Swift mark object) lets ``gc`` tell a running add from a
dead one by the age of that mark: an add refreshes it at least every
:data:`HEARTBEAT` seconds while data arrives, so a mark older than gc's
threshold (an hour by default) belongs to an add that died (or made no
progress for that long).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["HEARTBEAT", "Heartbeat"]

#: Seconds between two refreshes of an add's mark, at most.
HEARTBEAT = 60.0

T = TypeVar("T")

LOG = logging.getLogger("glance_store_ng.heartbeat")


class Heartbeat:
    """Calls ``refresh()`` from :meth:`beat` when the last call is ``every`` seconds old."""

    def __init__(self, refresh: Callable[[], None], every: float = HEARTBEAT) -> None:
        self._refresh = refresh
        self.every = every
        self._last = time.monotonic()
        self._stop: threading.Event | None = None

    def start_thread(self, what: str) -> None:
        """Also refresh from a thread of its own, every half ``every`` seconds, until
        :meth:`stop`: for a request that sends no chunk for long (an add's final write,
        its wait for overlapping adds; glance_store_ng.overlapping). ``what`` names the
        mark in the log when a refresh fails (the next one tries again)."""
        if self._stop is not None:
            return
        stop = self._stop = threading.Event()

        def run() -> None:
            while not stop.wait(self.every / 2):
                try:
                    self._refresh()
                except Exception as exc:
                    LOG.warning("could not refresh %s (trying again): %s", what, exc)

        threading.Thread(target=run, name="gsn-heartbeat", daemon=True).start()

    def stop(self) -> None:
        """Stop the thread :meth:`start_thread` started, if any."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None

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
