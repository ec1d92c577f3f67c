"""Reading an RBD image (through its snapshot) in order, optionally with reads ahead.

:func:`read_chunks` yields the bytes of ``[start, end)`` in chunks. The
image's allocated extents come first from ``diff_iterate``: a chunk that lies
wholly in a region RBD never allocated is served as zeros without a read.
Other chunks are read with librbd's asynchronous reads, ``depth`` of them in
flight, and yielded in order.
"""

from __future__ import annotations

import bisect
import collections
import errno
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["allocated_extents", "read_chunks"]

#: Reads in flight unless told otherwise: one, as glance_store. On the project's one-host
#: Ceph (client and OSD on 2 cores) more cost client CPU and speed: 1: 0.25 CPU-s per
#: 512 MiB read, 1.12x glance_store; 2: 0.35, 0.96x; 3: 0.40, 0.90x.
DEPTH = 1


def allocated_extents(image: Any, start: int, end: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` regions of ``[start, end)`` that RBD has allocated, merged."""
    extents: list[tuple[int, int]] = []

    def seen(offset: int, length: int, exists: bool) -> None:
        if not exists:
            return
        if extents and extents[-1][1] == offset:
            extents[-1] = (extents[-1][0], offset + length)
        else:
            extents.append((offset, offset + length))

    if end > start:
        image.diff_iterate(start, end - start, None, seen, include_parent=True)
    extents.sort()
    return extents


class _Pending:
    """One asynchronous read: set once librbd calls back."""

    __slots__ = ("event", "data", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.data: bytes = b""
        self.error = 0

    def done(self, completion: Any, data: bytes | None) -> None:
        result = completion.get_return_value()
        if result < 0:
            self.error = -result
        else:
            self.data = data or b""
        self.event.set()


def read_chunks(
    image: Any,
    start: int,
    end: int,
    step: int,
    depth: int = DEPTH,
    read_again: Callable[[int, int], bytes] | None = None,
) -> Iterator[bytes]:
    """Bytes ``start``..``end`` of ``image`` in chunks of ``step``; holes come from memory.

    A read that fails (or comes back short) is given to ``read_again(offset,
    count)``, which sends it again or raises; without it, it raises OSError.
    On close (or an error) the generator waits for the reads still in flight,
    so the caller may close the image afterwards.
    """
    extents = allocated_extents(image, start, end)
    starts = [s for s, _ in extents]
    zeros = bytes(min(step, max(end - start, 0)))

    def in_hole(offset: int, count: int) -> bool:
        i = bisect.bisect_right(starts, offset + count - 1) - 1  # last extent starting before end
        return i < 0 or extents[i][1] <= offset

    pieces = ((pos, min(step, end - pos)) for pos in range(start, end, step))
    queue: collections.deque[tuple[int, int, _Pending | None]] = collections.deque()
    try:
        while True:
            while len(queue) < depth:
                piece = next(pieces, None)
                if piece is None:
                    break
                offset, count = piece
                if in_hole(offset, count):
                    queue.append((offset, count, None))
                else:
                    pending = _Pending()
                    image.aio_read(offset, count, pending.done)
                    queue.append((offset, count, pending))
            if not queue:
                return
            offset, count, pending = queue.popleft()
            if pending is None:
                yield zeros if count == len(zeros) else zeros[:count]
                continue
            pending.event.wait()
            if not pending.error and len(pending.data) == count:
                yield pending.data
            elif read_again is not None:
                yield read_again(offset, count)
            elif pending.error:
                raise OSError(pending.error, f"reading {count} bytes failed")
            else:
                raise OSError(errno.EIO, f"short read: {len(pending.data)} of {count} bytes")
    finally:
        for _, _, pending in queue:
            if pending is not None:
                pending.event.wait()
