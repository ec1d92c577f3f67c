"""Uploads in parts, for every backend that takes an object in pieces (S3 multipart, Swift SLO).

:class:`PartWriter` turns the ingest's chunks into parts: it copies them into
a small pool of reusable buffers (re-chunking to the part size), sends full
parts on a thread pool while the next one fills, and keeps memory at
``(concurrency + 1) x part size`` whatever the image size (plus the first
buffer when ``first_size`` makes it larger): a slow server makes the source
wait instead of buffering more. An image that fits in its first
buffer goes up in one request instead. On any failure (a part, the source,
the ingest's checks, Ctrl-C) it stops sending, waits for the parts in flight
and aborts the upload, so nothing is left behind.

The backend's side is a :class:`PartUpload`, one per add: ``write_once``
(the whole image in one request), or ``start``, ``send_part`` for each part
(from the pool's threads, retried by the store's RetryPolicy from the buffer
it still holds, never from the consumed source), ``commit`` with every part's
record in order, and ``abort`` after a failure.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from .errors import StoreError
from .pipeline import Chunk
from .retry import RetryPolicy

__all__ = ["BufferPool", "PartUpload", "PartWriter"]

LOG = logging.getLogger("glance_store_ng.part_writer")


class PartUpload(Protocol):
    """The backend's side of one upload in parts (see the module docstring)."""

    def write_once(self, data: memoryview) -> None:
        """Store the whole image, ``data``, in one request (it fits in one part)."""

    def start(self) -> None:
        """Begin an upload in parts (called once, before the first ``send_part``)."""

    def send_part(self, number: int, data: memoryview) -> Any:
        """Send part ``number`` (1-based); return what ``commit`` needs of it (an ETag...).

        Called from worker threads; raise StoreErrors (TEMPORARY ones are retried).
        """

    def commit(self, parts: list[Any]) -> None:
        """Join the parts, in order, into the image, and make it visible."""

    def abort(self) -> None:
        """Remove what was sent (after ``start``, on any failure); log what it cannot remove."""


class BufferPool:
    """At most ``limit`` reusable bytearrays; :meth:`get` waits for one to come back."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._made = 0
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()

    def get(self, size: int) -> bytearray:
        """A buffer of exactly ``size`` bytes, reused when one of that size is free."""
        if self._made < self.limit:
            self._made += 1
            return bytearray(size)
        buffer = self._free.get()
        return buffer if len(buffer) == size else bytearray(size)

    def put(self, buffer: bytearray) -> None:
        """Give ``buffer`` back (from any thread)."""
        self._free.put(buffer)


class PartWriter:
    """Writes an ingest's chunks through a :class:`PartUpload`; see the module docstring.

    ``part_size(n)`` is the size of part ``n`` (1-based). ``first_size`` sizes
    the first buffer instead (a declared size small enough for one request);
    ``one_shot_limit`` is the largest image sent with ``write_once`` (None: any
    that fits in the first buffer). ``label`` names the upload in messages.
    """

    def __init__(
        self,
        upload: PartUpload,
        *,
        part_size: Callable[[int], int],
        concurrency: int,
        policy: RetryPolicy,
        label: str,
        first_size: int | None = None,
        one_shot_limit: int | None = None,
    ) -> None:
        self.upload = upload
        self.part_size = part_size
        self.concurrency = concurrency
        self.policy = policy
        self.label = label
        self.first_size = first_size
        self.one_shot_limit = one_shot_limit
        self.buffers = BufferPool(concurrency + 1)
        self._parts: list[Future[Any]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._cancelled = threading.Event()
        self._error: BaseException | None = None

    def write(self, chunks: Iterable[Chunk]) -> None:
        """Consume ``chunks`` to the end and store them; on any failure abort and re-raise.

        Errors of the caller's source propagate unchanged.
        """
        try:
            self._write(chunks)
        except BaseException:
            if self._pool is not None:
                try:
                    self._stop()
                finally:  # even if a second Ctrl-C cut the wait short
                    self.upload.abort()
            raise
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _write(self, chunks: Iterable[Chunk]) -> None:
        number = 1
        buffer = self.buffers.get(self.first_size or self.part_size(1))
        filled = 0
        for chunk in chunks:
            data = chunk.data
            while data:
                if filled == len(buffer):  # full, and more is coming: not the last part
                    self._submit(number, buffer, filled)
                    number += 1
                    buffer = self.buffers.get(self.part_size(number))
                    self._raise_failure()
                    filled = 0
                count = min(len(buffer) - filled, len(data))
                buffer[filled : filled + count] = data[:count]
                filled += count
                data = data[count:]
        if self._pool is None and (self.one_shot_limit is None or filled <= self.one_shot_limit):
            with memoryview(buffer) as whole, whole[:filled] as view:
                self.upload.write_once(view)
            return
        self._submit(number, buffer, filled)
        wait(self._parts, return_when=FIRST_EXCEPTION)
        self._raise_failure()
        self.upload.commit([part.result() for part in self._parts])

    def _submit(self, number: int, buffer: bytearray, length: int) -> None:
        self._raise_failure()
        if self._pool is None:
            self.upload.start()
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="gsn-part")
        try:
            self._parts.append(self._pool.submit(self._send, number, buffer, length))
        except BaseException:
            self.buffers.put(buffer)
            raise

    def _send(self, number: int, buffer: bytearray, length: int) -> Any:
        try:
            if self._cancelled.is_set():
                raise StoreError(f"{self.label}: upload cancelled")
            with memoryview(buffer) as whole, whole[:length] as view:
                return self.policy.call(
                    lambda: self.upload.send_part(number, view),
                    f"{self.label}: part {number}",
                    cancelled=self._cancelled,
                )
        except BaseException as exc:
            if self._error is None:
                self._error = exc
            raise
        finally:
            self.buffers.put(buffer)

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _stop(self) -> None:
        """Send no more parts and wait for those in flight."""
        self._cancelled.set()
        for part in self._parts:
            part.cancel()
        assert self._pool is not None
        self._pool.shutdown(wait=True, cancel_futures=True)
