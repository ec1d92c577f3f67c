"""Pure-Python hashing and zero detection.

Gives exactly the results of the C module (``glance_store_ng._native``); it is
used when that module is not built, or when ``GLANCE_STORE_NG_PURE_PYTHON=1``.
hashlib releases the GIL while it hashes large buffers, so even this path lets
two digests run on two cores.

Zero tests compare against a block of zeros with ``bytes.startswith`` (a
memcmp). Buffers that are not ``bytes``/``bytearray`` (mmap, slices, arrays)
are copied at most ``_STEP`` bytes at a time, never whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import xxhash

__all__ = ["ALGORITHMS", "new_digest", "zero_extents", "is_zero"]

_XXH: dict[str, Callable[[], object]] = {
    "xxh3_64": xxhash.xxh3_64,
    "xxh3_128": xxhash.xxh3_128,
}


def _usable(algorithm: str) -> bool:
    """Whether hashlib can make ``algorithm`` here (a FIPS policy may refuse md5)."""
    try:
        hashlib.new(algorithm)
    except ValueError:
        return False
    return True


# shake_* need a length for hexdigest(): they cannot serve as an image digest.
ALGORITHMS = frozenset(
    a for a in hashlib.algorithms_available if not a.startswith("shake") and _usable(a)
) | frozenset(_XXH)

_STEP = 1 << 20
_ZEROS = bytes(_STEP)

_Source = bytes | bytearray | memoryview


def new_digest(algorithm: str):
    """A hashlib-style object (``update``, ``hexdigest``) for ``algorithm``."""
    if algorithm in _XXH:
        return _XXH[algorithm]()
    return hashlib.new(algorithm)


def _source(buf) -> _Source:
    """``buf`` as bytes/bytearray when that costs no copy, else a flat byte view.

    A non-contiguous view is copied, in C order.
    """
    if isinstance(buf, (bytes, bytearray)):
        return buf
    view = memoryview(buf)
    if not view.c_contiguous:
        return view.tobytes()
    obj = view.obj
    if isinstance(obj, (bytes, bytearray)) and view.nbytes == len(obj):
        return obj
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


def _zero_range(data: _Source, start: int, end: int) -> bool:
    """True when ``data[start:end]`` is all zero (copies at most ``_STEP`` bytes at a time)."""
    for offset in range(start, end, _STEP):
        size = min(_STEP, end - offset)
        zeros = _ZEROS if size == _STEP else _ZEROS[:size]
        if isinstance(data, memoryview):
            if bytes(data[offset : offset + size]) != zeros:
                return False
        elif not data.startswith(zeros, offset):
            return False
    return True


def is_zero(buf) -> bool:
    """True when every byte of ``buf`` is zero (an empty buffer is all zero)."""
    data = _source(buf)
    return _zero_range(data, 0, len(data))


def _zero_blocks(data: _Source, block_size: int) -> Iterator[tuple[int, bool]]:
    """``(offset, all_zero)`` for each ``block_size`` block of ``data``."""
    size = len(data)
    if block_size > _STEP:
        for offset in range(0, size, block_size):
            yield offset, _zero_range(data, offset, min(offset + block_size, size))
        return
    block = _ZEROS[:block_size]
    if isinstance(data, (bytes, bytearray)):
        windows: Iterator[tuple[int, bytes | bytearray]] = iter([(0, data)])
    else:
        # Copies of whole blocks, so that block offsets stay relative to data[0].
        span = (_STEP // block_size) * block_size
        windows = ((base, bytes(data[base : base + span])) for base in range(0, size, span))
    for base, window in windows:
        length = len(window)
        for offset in range(0, length, block_size):
            end = min(offset + block_size, length)
            zeros = block if end - offset == block_size else block[: end - offset]
            yield base + offset, window.startswith(zeros, offset)


def zero_extents(buf, block_size: int = 4096) -> list[tuple[int, int]]:
    """The all-zero regions of ``buf`` as sorted, merged ``(start, end)`` offsets.

    ``buf`` is scanned in ``block_size`` blocks from its start; a block counts
    when all its bytes are zero. The last block may be shorter than
    ``block_size``.
    """
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    data = _source(buf)
    extents: list[tuple[int, int]] = []
    start = -1
    for offset, zero in _zero_blocks(data, block_size):
        if zero:
            if start < 0:
                start = offset
        elif start >= 0:
            extents.append((start, offset))
            start = -1
    if start >= 0:
        extents.append((start, len(data)))
    return extents
