"""Pure-Python hashing and zero detection.

Gives exactly the results of the C module (``glance_store_ng._native``); it is
used when that module is not built, or when ``GLANCE_STORE_NG_PURE_PYTHON=1``.
hashlib releases the GIL while it hashes large buffers, so even this path lets
two digests run on two cores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import xxhash

__all__ = ["ALGORITHMS", "new_digest", "zero_extents", "is_zero"]

_XXH: dict[str, Callable[[], object]] = {
    "xxh3_64": xxhash.xxh3_64,
    "xxh3_128": xxhash.xxh3_128,
}
# shake_* need a length for hexdigest(): they cannot serve as an image digest.
ALGORITHMS = frozenset(
    a for a in hashlib.algorithms_available if not a.startswith("shake")
) | frozenset(_XXH)

_ZEROS = bytes(1 << 20)


def new_digest(algorithm: str):
    """A hashlib-style object (``update``, ``hexdigest``) for ``algorithm``."""
    if algorithm in _XXH:
        return _XXH[algorithm]()
    return hashlib.new(algorithm)


def _searchable(buf) -> bytes | bytearray:
    """``buf`` as an object with ``startswith`` (copies only a foreign memoryview)."""
    if isinstance(buf, (bytes, bytearray)):
        return buf
    view = memoryview(buf)
    obj = view.obj
    if isinstance(obj, (bytes, bytearray)) and view.nbytes == len(obj) and view.contiguous:
        return obj
    return view.tobytes()


def is_zero(buf) -> bool:
    """True when every byte of ``buf`` is zero (an empty buffer is all zero)."""
    data = _searchable(buf)
    step = len(_ZEROS)
    return all(
        data.startswith(_ZEROS[: min(step, len(data) - i)], i) for i in range(0, len(data), step)
    )


def zero_extents(buf, block_size: int = 4096) -> list[tuple[int, int]]:
    """The all-zero regions of ``buf`` as sorted, merged ``(start, end)`` offsets.

    ``buf`` is scanned in ``block_size`` blocks from its start; a block counts
    when all its bytes are zero. The last block may be shorter than
    ``block_size``.
    """
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    data = _searchable(buf)
    size = len(data)
    block = _ZEROS[:block_size] if block_size <= len(_ZEROS) else bytes(block_size)
    extents: list[tuple[int, int]] = []
    start = -1
    for offset in range(0, size, block_size):
        end = min(offset + block_size, size)
        zero = (
            data.startswith(block, offset)
            if end - offset == block_size
            else data.startswith(block[: end - offset], offset)
        )
        if zero:
            if start < 0:
                start = offset
        elif start >= 0:
            extents.append((start, offset))
            start = -1
    if start >= 0:
        extents.append((start, size))
    return extents
