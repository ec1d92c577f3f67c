"""ImageReader: what ``Store.get`` returns."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator

__all__ = ["ImageReader"]


class ImageReader:
    """The bytes of an image (or of a range of it), as an iterable of ``bytes`` chunks.

    ``size`` is the number of bytes the iteration yields. Use it as a context
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
        self._chunks = iter(chunks)
        self._finalizer = weakref.finalize(self, _release, self._chunks, close)

    @property
    def closed(self) -> bool:
        """True once the backend resources are released."""
        return not self._finalizer.alive

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
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
