"""The ingest pipeline: the caller's data in, checked and hashed chunks out.

Every driver's add reads its data through one :class:`Ingest`. It accepts a
binary file object, a bytes-like object, or an iterable of bytes-like chunks;
it computes md5 (Glance's ``checksum``) and the multihash in the same pass,
finds all-zero blocks when the driver can skip them, enforces the size cap and
the declared size, and hands the driver :class:`Chunk` values.

The work is spread over both cores: md5 and the multihash each run on a
thread of their own (:func:`native.HashPipe`: POSIX threads in the C module,
or Python threads over hashlib, which releases the GIL while it hashes), while
the caller's thread reads the source, scans for zeros and runs the driver's
writes. Chunks travel through a bounded ring of ``DEPTH``
reusable buffers, so memory stays at ``DEPTH x chunk_size`` whatever the image
size. The source is always read in the caller's thread (it may be a green
thread or hold thread-local state).

No chunk is copied on the way: a bytes-like source is sliced, a file object
is read into the ring's buffers with ``readinto``, ``bytes`` pieces are passed
on as they are; only other pieces of an iterable (bytearrays, views: the
caller may refill them) are copied into the ring. A chunk's ``data`` is valid only
until the driver asks for the next chunk; a driver that keeps data longer (an
upload in flight) copies it.

A check that fails (size cap, declared size, format inspection) raises *before*
the offending chunk reaches the driver, and a declared size that is too large
(or a verdict due only at the end: a VMDK footer) raises when the source ends,
before the driver's loop finishes: a driver that commits only after consuming
the whole stream never commits a bad image. The format inspection
(glance_store_ng.inspection) sees each chunk on the caller's thread, as a view:
it is decided within the first megabyte or so, after which it costs nothing.
"""

from __future__ import annotations

import collections
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import native
from .errors import ImageRejected, InvalidArgument, SizeLimitExceeded, SizeMismatch

__all__ = [
    "Chunk",
    "Ingest",
    "check_hash_algorithm",
    "complement",
    "DEFAULT_CHUNK_SIZE",
    "ZERO_BLOCK_SIZE",
]

DEFAULT_CHUNK_SIZE = 1 << 20
DEPTH = 4
ZERO_BLOCK_SIZE = 4096


@dataclass
class Chunk:
    """A piece of the image, in order.

    ``offset`` is where ``data`` starts in the image. ``zero_extents`` lists the
    all-zero ``(start, end)`` regions of ``data`` (relative to it, whole
    zero blocks) when the driver asked for zero detection, else it is empty.
    """

    offset: int
    data: memoryview
    zero_extents: list[tuple[int, int]]

    @property
    def end(self) -> int:
        """The image offset just past this chunk."""
        return self.offset + len(self.data)

    def data_extents(self) -> list[tuple[int, int]]:
        """The complement of ``zero_extents``: ``(start, end)`` regions holding data."""
        return complement(self.zero_extents, len(self.data))


def complement(extents: list[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` regions of ``0..length`` that sorted ``extents`` leave out."""
    gaps, pos = [], 0
    for start, end in extents:
        if start > pos:
            gaps.append((pos, start))
        pos = end
    if pos < length:
        gaps.append((pos, length))
    return gaps


def check_hash_algorithm(name: str) -> str:
    """``name`` if it is a supported multihash algorithm, else InvalidArgument listing them."""
    if not isinstance(name, str) or name not in native.ALGORITHMS:
        supported = ", ".join(sorted(native.ALGORITHMS))
        raise InvalidArgument(f"unsupported hashing_algo {name!r}; use one of: {supported}")
    return name


def _bytes_view(data: Any) -> memoryview:
    view = memoryview(data)
    if not view.contiguous:
        raise InvalidArgument("image data must be a contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _is_bytes_like(data: Any) -> bool:
    if isinstance(data, (str, io.TextIOBase)):
        return False
    try:
        memoryview(data)
    except TypeError:
        return False
    return True


class _Slot:
    """One place in the ring: a reusable buffer (made on first use) and its last hash job."""

    __slots__ = ("buffer", "hashed")

    def __init__(self) -> None:
        self.buffer: memoryview | None = None
        self.hashed = 0  # the hash pipe's number for the last data this slot carried

    def buffer_of(self, size: int) -> memoryview:
        if self.buffer is None:
            self.buffer = memoryview(bytearray(size))
        return self.buffer


class Ingest:
    """An iterator of :class:`Chunk` over the caller's data, checking and hashing as it goes.

    After the driver has consumed it, ``size``, ``checksum`` and ``multihash``
    hold the results. ``zero_bytes`` counts the bytes of the all-zero blocks left
    unwritten: those found, less what the driver wrote anyway (:meth:`wrote_zeros`).
    """

    def __init__(
        self,
        data: Any,
        *,
        size: int | None = None,
        hashing_algo: str = "sha512",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        size_cap: int = 0,
        cap_source: str = "option image_size_cap",
        zero_block_size: int | None = None,
        label: str = "image",
        depth: int = DEPTH,
        md5: bool = True,
        inspection: Any = None,
        enforce: bool = True,
    ) -> None:
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise InvalidArgument(f"size must be a non-negative integer or None, not {size!r}")
        if isinstance(data, (str, io.TextIOBase)):
            raise InvalidArgument(
                "image data must be binary: open files in 'rb' mode and pass bytes, not str"
            )
        self.hash_algo = check_hash_algorithm(hashing_algo)
        self.declared_size = size or None  # Glance passes 0 for "unknown"
        self.size_cap = size_cap
        self.cap_source = cap_source
        self.chunk_size = chunk_size
        self.zero_block_size = zero_block_size
        self.label = label
        if size_cap and self.declared_size and self.declared_size > size_cap:
            raise SizeLimitExceeded(
                f"{label}: declared size {self.declared_size} bytes is over the size cap of "
                f"{size_cap} bytes ({cap_source})"
            )
        self._depth = depth
        self._ring: collections.deque[_Slot] = collections.deque(_Slot() for _ in range(depth))
        self._pipe: Any = None
        self._source = self._open_source(data)
        self._md5 = native.new_digest("md5") if md5 else None
        self._multihash = native.new_digest(self.hash_algo)
        self.size = 0
        self.zero_bytes = 0
        self.finished = False
        self._started = False
        self.inspection = inspection
        """The :class:`~glance_store_ng.inspection.Inspection` fed every chunk, if any."""
        self.enforce = enforce
        """Whether a rejected image fails the add (else the rejection is only recorded)."""
        self.verdict: Any = None
        """The inspection's Verdict once the data ended (None: no inspection, or rejected)."""
        self.rejection: str | None = None
        """Why the inspection rejected an image it was told not to enforce on."""

    def wrote_zeros(self, count: int) -> None:
        """The driver wrote ``count`` bytes of found zero blocks after all (a run too short
        to be worth a hole): they are not counted in ``zero_bytes``."""
        self.zero_bytes -= count

    # -- sources: each yields (view, slot), the slot taken from the ring -------------------

    def _open_source(self, data: Any) -> Iterator[tuple[memoryview, _Slot]]:
        if _is_bytes_like(data):
            return self._from_buffer(_bytes_view(data))
        if hasattr(data, "readinto"):
            return self._from_readinto(data)
        if hasattr(data, "read"):
            return self._from_read(data)
        if isinstance(data, Iterable):
            return self._from_iterable(data)
        raise InvalidArgument(
            f"image data must be a binary file object, a bytes-like object or an iterable of "
            f"bytes-like chunks, not {type(data).__name__}"
        )

    def _from_buffer(self, view: memoryview) -> Iterator[tuple[memoryview, _Slot]]:
        """Slices of a buffer the caller does not touch while add runs: no copies."""
        for start in range(0, len(view), self.chunk_size):
            yield view[start : start + self.chunk_size], self._take()

    def _copied(self, view: memoryview) -> Iterator[tuple[memoryview, _Slot]]:
        """A buffer the caller may refill: copied into the ring's buffers."""
        for start in range(0, len(view), self.chunk_size):
            piece = view[start : start + self.chunk_size]
            slot = self._take()
            buffer = slot.buffer_of(self.chunk_size)[: len(piece)]
            buffer[:] = piece
            yield buffer, slot

    def _from_readinto(self, fileobj: Any) -> Iterator[tuple[memoryview, _Slot]]:
        while True:
            slot = self._take()
            buffer = slot.buffer_of(self.chunk_size)
            filled = 0
            while filled < len(buffer):
                count = fileobj.readinto(buffer[filled:])
                if count is None:
                    raise InvalidArgument("image data is a non-blocking file with no data ready")
                if count == 0:
                    break
                filled += count
            if filled == 0:
                self._ring.append(slot)
                return
            yield buffer[:filled], slot
            if filled < len(buffer):
                return

    def _from_read(self, fileobj: Any) -> Iterator[tuple[memoryview, _Slot]]:
        while True:
            piece = fileobj.read(self.chunk_size)
            if not piece:
                return
            if isinstance(piece, str):
                raise InvalidArgument("image data must be binary: read() returned str, not bytes")
            yield from self._pieces(piece)

    def _from_iterable(self, chunks: Iterable[Any]) -> Iterator[tuple[memoryview, _Slot]]:
        for piece in chunks:
            if not _is_bytes_like(piece):
                raise InvalidArgument(
                    f"image data chunks must be bytes-like, not {type(piece).__name__}"
                )
            yield from self._pieces(piece)

    def _pieces(self, piece: Any) -> Iterator[tuple[memoryview, _Slot]]:
        view = _bytes_view(piece)
        # Only bytes cannot change under us: a read-only view may show a buffer the caller refills.
        immutable = isinstance(piece, bytes) or isinstance(view.obj, bytes)
        return self._from_buffer(view) if immutable else self._copied(view)

    # -- the pass --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Chunk]:
        if self._started:
            raise RuntimeError("an Ingest can be iterated only once")
        self._started = True
        return self._chunks()

    def _take(self) -> _Slot:
        """A free slot: the oldest one, once the hashing of what it carried is done."""
        slot = self._ring.popleft()
        if slot.hashed:
            self._pipe.wait(slot.hashed)
        return slot

    def _chunks(self) -> Iterator[Chunk]:
        digests = [self._md5, self._multihash] if self._md5 else [self._multihash]
        self._pipe = native.HashPipe(digests, self._depth)
        finished = False
        try:
            for view, slot in self._source:
                if not view:
                    self._ring.append(slot)
                    continue
                offset = self.size
                try:
                    self._check_size(offset + len(view))
                    self._inspect(view)
                except BaseException:
                    self._ring.append(slot)
                    raise
                self.size = offset + len(view)
                slot.hashed = self._pipe.submit(view)
                zeros: list[tuple[int, int]] = []
                if self.zero_block_size:
                    zeros = native.zero_extents(view, self.zero_block_size)
                    self.zero_bytes += sum(end - start for start, end in zeros)
                try:
                    yield Chunk(offset, view, zeros)
                finally:
                    self._ring.append(slot)  # the driver is done with it
            if self.declared_size is not None and self.size != self.declared_size:
                raise SizeMismatch(
                    f"{self.label}: the data ended after {self.size} bytes but its declared "
                    f"size is {self.declared_size} bytes; nothing was stored"
                )
            self._inspect(None)
            self._pipe.close()
            finished = True
        finally:
            if not finished:
                self._pipe.close(abandon=True)
        self.finished = True

    def _inspect(self, view: memoryview | None) -> None:
        """Feed the inspection (``None``: the data ended, the verdict is due); a rejection
        raises when enforced, else it is recorded and inspecting stops."""
        if self.inspection is None or self.rejection is not None:
            return
        try:
            if view is None:
                self.verdict = self.inspection.finish(self.size)
            else:
                self.inspection.feed(view)
        except ImageRejected as exc:
            if self.enforce:
                raise
            self.rejection = str(exc)

    def _check_size(self, total: int) -> None:
        if self.size_cap and total > self.size_cap:
            raise SizeLimitExceeded(
                f"{self.label}: the data is over the size cap of {self.size_cap} bytes "
                f"({self.cap_source}); nothing was stored"
            )
        if self.declared_size is not None and total > self.declared_size:
            raise SizeMismatch(
                f"{self.label}: the data is longer than its declared size of "
                f"{self.declared_size} bytes; nothing was stored"
            )

    @property
    def checksum(self) -> str | None:
        """md5 of the data, in hex (Glance's ``checksum``); valid once ``finished``.
        None when made with ``md5=False``."""
        return self._md5.hexdigest() if self._md5 else None

    @property
    def multihash(self) -> str:
        """The ``hash_algo`` digest in hex (Glance's ``os_hash_value``); valid once ``finished``."""
        return self._multihash.hexdigest()
