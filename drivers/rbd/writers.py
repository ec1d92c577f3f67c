"""How an add puts bytes into a new RBD image, with a bounded number of writes in flight.

Two writers, one interface (``write(chunk_offset, data, extents)``, ``drain()``):

:class:`ObjectWriter` (the default) writes each chunk's data extents straight
into the image's data objects, one RADOS operation per object carrying every
extent of that object. A 75%-zero image of 4 KiB blocks thus costs one
operation per object instead of thousands of small librbd writes. It is used
only on an image this add has just created, before its snapshot, whose layout
is the plain format-2 one (``rbd_data.<id>.<object number, 16 hex digits>``:
features exactly ``layering``, no striping, no separate data pool), which
:func:`direct_writes_possible` checks; librbd keeps no state about data objects
for such an image (no object map, no cache, no exclusive lock).

:class:`ImageWriter` writes each extent through librbd (``aio_write``); it is
used when the option ``rbd_store_direct_writes`` is off or the image's layout
is another.

Both copy what they send (a chunk is valid only until the next one is asked
for) and keep at most ``depth`` operations in flight; ``drain`` waits for all
of them and raises the first error. Callers drain before anything else touches
the image (resize, snapshot, removal after a failure).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from .cluster import rados, rbd

__all__ = ["ImageWriter", "ObjectWriter", "direct_writes_possible"]

DEPTH = 4


def direct_writes_possible(ioctx: Any, image: Any, object_size: int) -> bool:
    """True when ``image`` has the plain layout ObjectWriter writes (see the module doc)."""
    return (
        image.features() == rbd.RBD_FEATURE_LAYERING
        and image.stripe_unit() == object_size
        and image.stripe_count() == 1
        and image.data_pool_id() == ioctx.get_pool_id()
    )


class _InFlight:
    """At most ``depth`` asynchronous operations at a time; the first failure is kept."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._slots = threading.Semaphore(depth)
        self._error = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Take a slot, waiting for one; raise (holding none) if an operation failed."""
        self._slots.acquire()
        if self._error:
            self._slots.release()
            raise OSError(self._error, os.strerror(self._error))

    def submit(self, start: Callable[[Callable[[Any], None]], None]) -> None:
        """Take a slot and call ``start(done)`` to launch one asynchronous operation.

        If ``start`` raises, the operation never began: its slot is given back.
        """
        self.acquire()
        try:
            start(self.done)
        except BaseException:
            self._slots.release()
            raise

    def done(self, completion: Any) -> None:
        """The completion callback (runs on a librados thread)."""
        result = completion.get_return_value()
        if result < 0:
            with self._lock:
                self._error = self._error or -result
        self._slots.release()

    def drain(self) -> None:
        """Wait for every operation in flight; raise the first error (an OSError)."""
        for _ in range(self.depth):
            self._slots.acquire()
        for _ in range(self.depth):
            self._slots.release()
        if self._error:
            code, self._error = self._error, 0
            raise OSError(code, os.strerror(code))


class ObjectWriter:
    """Writes data extents into the data objects of a fresh plain format-2 image."""

    def __init__(self, ioctx: Any, image: Any, object_size: int, depth: int = DEPTH) -> None:
        self.ioctx = ioctx
        self.prefix = image.stat()["block_name_prefix"]
        self.object_size = object_size
        self.inflight = _InFlight(depth)

    def write(self, offset: int, data: memoryview, extents: list[tuple[int, int]]) -> None:
        """Write ``data[start:end]`` at image offset ``offset + start`` for each extent."""
        size = self.object_size
        by_object: dict[int, list[tuple[int, int]]] = {}
        for start, end in extents:
            pos = offset + start
            stop = offset + end
            while pos < stop:
                number, inside = divmod(pos, size)
                piece_end = min(stop, (number + 1) * size)
                by_object.setdefault(number, []).append((inside, pos - offset, piece_end - offset))
                pos = piece_end
        for number, pieces in by_object.items():

            def start(done: Callable[[Any], None], number=number, pieces=pieces) -> None:
                with rados.WriteOpCtx() as op:
                    for inside, begin, end in pieces:
                        op.write(data[begin:end].tobytes(), inside)
                    self.ioctx.operate_aio_write_op(
                        op, f"{self.prefix}.{number:016x}", oncomplete=done
                    )

            self.inflight.submit(start)

    def drain(self) -> None:
        self.inflight.drain()


class ImageWriter:
    """Writes data extents through librbd's asynchronous writes."""

    def __init__(self, image: Any, depth: int = DEPTH * 8) -> None:
        self.image = image
        self.inflight = _InFlight(depth)

    def write(self, offset: int, data: memoryview, extents: list[tuple[int, int]]) -> None:
        for start, end in extents:
            piece = data[start:end].tobytes()
            self.inflight.submit(
                lambda done, p=piece, at=offset + start: self.image.aio_write(p, at, done)
            )

    def drain(self) -> None:
        self.inflight.drain()
        self.image.flush()
