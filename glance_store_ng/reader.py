"""ImageReader: what ``Store.get`` returns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

__all__ = ["ImageReader"]


class ImageReader:
    """The bytes of an image (or of a range of it), as an iterable of ``bytes`` chunks.

    ``size`` is the number of bytes the iteration yields. Use it as a context
    manager, or call :meth:`close`, to release backend resources (an open file,
    a connection) when you stop before the end; reaching the end closes it too.
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        size: int,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.size = size
        self._chunks = iter(chunks)
        self._close = close
        self.closed = False

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
        if self.closed:
            return
        self.closed = True
        close_chunks = getattr(self._chunks, "close", None)
        if close_chunks is not None:
            close_chunks()
        if self._close is not None:
            self._close()

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ImageReader(size={self.size}, closed={self.closed})"
