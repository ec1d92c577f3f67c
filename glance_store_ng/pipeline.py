"""The ingest pipeline: the caller's data in, checked and hashed chunks out.

Every driver's add reads its data through one :class:`Ingest`. It accepts a
binary file object, a bytes-like object, or an iterable of bytes-like chunks;
it computes md5 (Glance's ``checksum``) and the multihash in the same pass,
finds all-zero blocks when the driver can skip them, enforces the size cap and
the declared size, and hands the driver :class:`Chunk` values.

No chunk is copied on the way: a bytes-like source is sliced, a file object
is read into one reusable buffer with ``readinto``. So a chunk's ``data`` is
valid only until the driver asks for the next chunk; a driver that keeps data
longer (an upload in flight) copies it.

A check that fails (size cap, declared size) raises *before* the offending
chunk reaches the driver, and a declared size that is too large raises when
the source ends, before the driver's loop finishes: a driver that commits only
after consuming the whole stream never commits a bad image.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import native
from .errors import InvalidArgument, SizeLimitExceeded, SizeMismatch

__all__ = ["Chunk", "Ingest", "check_hash_algorithm", "DEFAULT_CHUNK_SIZE", "ZERO_BLOCK_SIZE"]

DEFAULT_CHUNK_SIZE = 1 << 20
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
        extents, pos = [], 0
        for start, end in self.zero_extents:
            if start > pos:
                extents.append((pos, start))
            pos = end
        if pos < len(self.data):
            extents.append((pos, len(self.data)))
        return extents


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


class Ingest:
    """An iterator of :class:`Chunk` over the caller's data, checking and hashing as it goes.

    After the driver has consumed it, ``size``, ``checksum`` and ``multihash``
    hold the results. ``zero_bytes`` counts the bytes found in all-zero blocks.
    """

    def __init__(
        self,
        data: Any,
        *,
        size: int | None = None,
        hashing_algo: str = "sha512",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        size_cap: int = 0,
        zero_block_size: int | None = None,
        label: str = "image",
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
        self.chunk_size = chunk_size
        self.zero_block_size = zero_block_size
        self.label = label
        if size_cap and self.declared_size and self.declared_size > size_cap:
            raise SizeLimitExceeded(
                f"{label}: declared size {self.declared_size} bytes is over the size cap of "
                f"{size_cap} bytes (option image_size_cap)"
            )
        self._source = self._open_source(data)
        self._md5 = native.new_digest("md5")
        self._multihash = native.new_digest(self.hash_algo)
        self.size = 0
        self.zero_bytes = 0
        self.finished = False

    # -- sources ---------------------------------------------------------------------------

    def _open_source(self, data: Any) -> Iterator[memoryview]:
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

    def _from_buffer(self, view: memoryview) -> Iterator[memoryview]:
        for start in range(0, len(view), self.chunk_size):
            yield view[start : start + self.chunk_size]

    def _from_readinto(self, fileobj: Any) -> Iterator[memoryview]:
        buffer = memoryview(bytearray(self.chunk_size))
        while True:
            filled = 0
            while filled < len(buffer):
                count = fileobj.readinto(buffer[filled:])
                if count is None:
                    raise InvalidArgument("image data is a non-blocking file with no data ready")
                if count == 0:
                    break
                filled += count
            if filled == 0:
                return
            yield buffer[:filled]
            if filled < len(buffer):
                return

    def _from_read(self, fileobj: Any) -> Iterator[memoryview]:
        while True:
            piece = fileobj.read(self.chunk_size)
            if not piece:
                return
            if isinstance(piece, str):
                raise InvalidArgument("image data must be binary: read() returned str, not bytes")
            yield _bytes_view(piece)

    def _from_iterable(self, chunks: Iterable[Any]) -> Iterator[memoryview]:
        for piece in chunks:
            if not _is_bytes_like(piece):
                raise InvalidArgument(
                    f"image data chunks must be bytes-like, not {type(piece).__name__}"
                )
            yield from self._from_buffer(_bytes_view(piece))

    # -- the pass --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Chunk]:
        return self._chunks()

    def _chunks(self) -> Iterator[Chunk]:
        for view in self._source:
            if not view:
                continue
            offset = self.size
            self._check_size(offset + len(view))
            self.size = offset + len(view)
            self._md5.update(view)
            self._multihash.update(view)
            zeros: list[tuple[int, int]] = []
            if self.zero_block_size:
                zeros = native.zero_extents(view, self.zero_block_size)
                self.zero_bytes += sum(end - start for start, end in zeros)
            yield Chunk(offset, view, zeros)
        if self.declared_size is not None and self.size != self.declared_size:
            raise SizeMismatch(
                f"{self.label}: the data ended after {self.size} bytes but its declared size is "
                f"{self.declared_size} bytes; nothing was stored"
            )
        self.finished = True

    def _check_size(self, total: int) -> None:
        if self.size_cap and total > self.size_cap:
            raise SizeLimitExceeded(
                f"{self.label}: the data is over the size cap of {self.size_cap} bytes "
                "(option image_size_cap); nothing was stored"
            )
        if self.declared_size is not None and total > self.declared_size:
            raise SizeMismatch(
                f"{self.label}: the data is longer than its declared size of "
                f"{self.declared_size} bytes; nothing was stored"
            )

    @property
    def checksum(self) -> str:
        """md5 of the data, in hex (Glance's ``checksum``)."""
        return self._md5.hexdigest()

    @property
    def multihash(self) -> str:
        """The ``hash_algo`` digest of the data, in hex (Glance's ``os_hash_value``)."""
        return self._multihash.hexdigest()
