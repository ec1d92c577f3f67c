"""ImageReader, what ``Store.get`` returns; ResumingReader, the ranged reads that resume."""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from .errors import Retry, SizeMismatch, StoreError
from .retry import RetryPolicy, exhausted

__all__ = ["ImageReader", "OpenRange", "RangeStream", "ResumingReader"]


class ImageReader:
    """The bytes of an image (or of a range of it), as an iterable of ``bytes`` chunks.

    ``size`` is the number of bytes the iteration yields: a backend that gives
    fewer (or more) raises SizeMismatch, never a short image. Use it as a context
    manager, or call :meth:`close`, to release backend resources (an open file,
    a connection) when you stop before the end; reaching the end closes it too,
    and so does the garbage collector for a reader dropped unread.
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        size: int,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.size = size
        #: How messages name what is read (``Store.get`` sets the store and location).
        self.what = "the image"
        self._yielded = 0
        self._chunks = iter(chunks)
        self._finalizer = weakref.finalize(self, _release, self._chunks, close)

    @property
    def closed(self) -> bool:
        """True once the backend resources are released."""
        return not self._finalizer.alive

    def __iter__(self) -> Iterator[bytes]:
        try:
            for piece in self._chunks:
                self._yielded += len(piece)
                if self._yielded > self.size:
                    raise SizeMismatch(
                        f"{self.what}: the backend gave more than the {self.size} bytes it "
                        "announced; the image changed while it was read: read it again"
                    )
                yield piece
            if self._yielded != self.size:
                raise SizeMismatch(
                    f"{self.what}: the read ended after {self._yielded} of {self.size} bytes "
                    "(the image was truncated or changed while it was read)"
                )
        finally:
            self.close()

    def read(self) -> bytes:
        """All the remaining bytes at once (for small images and tests)."""
        return b"".join(self)

    def close(self) -> None:
        """Release backend resources; safe to call more than once."""
        self._finalizer()

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ImageReader(size={self.size}, closed={self.closed})"


def _release(chunks: Iterator[bytes], close: Callable[[], None] | None) -> None:
    """Stop the chunk generator, then release what the driver opened (runs once)."""
    close_chunks = getattr(chunks, "close", None)
    try:
        if close_chunks is not None:
            close_chunks()
    finally:
        if close is not None:
            close()


class RangeStream(Protocol):
    """What ``open_range`` returns: a body being received."""

    def read(self, amount: int) -> bytes:
        """Up to ``amount`` bytes; b"" at the end of the answer."""

    def close(self) -> None:
        """Release the connection (the answer may be unread)."""


#: ``open_range(start, end) -> (stream, etag)``: an answer with bytes ``start``..``end``
#: (end exclusive) of the object, and the object's ETag (None when the backend has none).
OpenRange = Callable[[int, int], tuple[RangeStream, "str | None"]]


class ResumingReader:
    """Bytes ``start``..``end`` of one object, read through ranged requests that resume.

    A stream that breaks (a reset, a timeout, an answer that ends early) is
    opened again from the first byte not yet received, with ``open_range``,
    while the driver's ``boundary`` says the failure is TEMPORARY and the
    ``policy`` allows another try: ``policy.attempts`` tries in a row without a
    byte received (a break after progress starts the count again), and at most
    ``max_requests`` requests for the whole read when it is given. The caller
    sees one uninterrupted stream. A resumed answer must carry the ETag of the
    first one: if the object was replaced meanwhile the read fails rather than
    splice two images (``open_range`` must also refuse an answer that is not the
    range asked for). When the tries are spent, the last error is raised marked
    EXHAUSTED, with ``exhausted_hint`` (the option that allows more).

    ``boundary(what)`` is the driver's error boundary: a context manager that
    turns its client's exceptions into :mod:`glance_store_ng.errors`; ``what``
    names the read in its messages, after the store's ``label``.
    """

    def __init__(
        self,
        open_range: OpenRange,
        start: int,
        end: int,
        *,
        chunk_size: int,
        policy: RetryPolicy,
        boundary: Callable[[str], AbstractContextManager[None]],
        what: str,
        label: str,
        first: tuple[RangeStream, str | None] | None = None,
        max_requests: int | None = None,
        exhausted_hint: str = "",
    ) -> None:
        self._open_range = open_range
        self.pos = start
        self.end = end
        self._chunk_size = chunk_size
        self._policy = policy
        self._boundary = boundary
        self._what = what
        self._label = label
        self._max_requests = max_requests
        self._exhausted_hint = exhausted_hint
        self._stream: RangeStream | None = None
        self.etag: str | None = None
        self.requests = 0
        if first is not None:
            self.requests = 1
            self._stream, self.etag = first

    def chunks(self) -> Iterator[bytes]:
        """The bytes, in chunks of at most ``chunk_size``."""
        failures, failing_since = 0, 0.0
        try:
            while self.pos < self.end:
                try:
                    piece = self._read()
                except StoreError as exc:
                    self.close()
                    if exc.retry is not Retry.TEMPORARY:
                        raise
                    failures += 1
                    if failures == 1:
                        failing_since = time.monotonic()
                    spent = failures >= self._policy.attempts or (
                        self._max_requests is not None and self.requests >= self._max_requests
                    )
                    if spent:
                        if self._exhausted_hint and self.requests > 1:
                            exc.message += f"; {self._exhausted_hint}"
                        seconds = time.monotonic() - failing_since
                        raise exhausted(exc, self.requests, seconds) from exc.__cause__
                    self._policy.wait(failures, f"{self._what} at byte {self.pos}", exc)
                    continue
                failures = 0
                self.pos += len(piece)
                yield piece
        finally:
            self.close()

    def _read(self) -> bytes:
        with self._boundary(self._what):
            if self._stream is None:
                self.requests += 1
                stream, etag = self._open_range(self.pos, self.end)
                if self.etag is None:
                    self.etag = etag
                elif etag is not None and etag != self.etag:
                    stream.close()
                    raise StoreError(
                        f"{self._label}: {self._what}: the object changed while it was being "
                        f"read (ETag {self.etag}, then {etag}); read it again"
                    )
                self._stream = stream
            piece = self._stream.read(min(self._chunk_size, self.end - self.pos))
            if not piece:
                raise ConnectionResetError(
                    f"the answer ended at byte {self.pos}, before byte {self.end}"
                )
            return piece

    def close(self) -> None:
        """Release the connection of the stream being read, if any."""
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
