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
import queue
import threading
from collections.abc import Callable, Iterator

import xxhash

__all__ = ["ALGORITHMS", "HashPipe", "new_digest", "zero_extents", "is_zero"]

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


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(buf, value: int = 0) -> int:
    """CRC-32C of ``buf``, continuing from ``value``: correct, but a byte at a time
    (some MB/s), so callers that have a choice use zlib's CRC32 with the fallback."""
    table = _CRC32C_TABLE
    crc = value ^ 0xFFFFFFFF
    view = memoryview(buf)
    for byte in view.cast("B") if view.c_contiguous else view.tobytes():
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class HashPipe:
    """Buffers fed, in order, to several digests, each on a thread of its own.

    ``submit(buffer)`` queues a buffer and returns its number; the caller keeps
    the buffer unchanged until ``wait(number)`` returns. At most ``capacity``
    buffers are in flight (``submit`` blocks). ``close()`` finishes the queued
    buffers (``close(abandon=True)``: drops them) and stops the threads; the
    digests can then be read. hashlib releases the GIL on large buffers, so
    the digests run in parallel.
    """

    def __init__(self, digests, capacity: int) -> None:
        if not digests or capacity <= 0:
            raise ValueError("a hash pipe needs at least one digest and a positive capacity")
        if len({id(d) for d in digests}) != len(digests):
            raise ValueError("a digest can be fed by a hash pipe only once")
        self._capacity = capacity
        self._cond = threading.Condition()
        self._closing = threading.Lock()  # held by close() throughout
        self._queues: list[queue.SimpleQueue] = []
        self._done = [0] * len(digests)
        self._submitted = 0
        self._abandon = False
        self._closed = False
        self._error: BaseException | None = None
        self._threads = []
        for index, digest in enumerate(digests):
            inbox: queue.SimpleQueue = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._work, args=(index, digest, inbox), daemon=True,
                name=f"glance_store_ng-hash-{index}",
            )  # fmt: skip
            self._queues.append(inbox)
            self._threads.append(thread)
            thread.start()

    def _work(self, index: int, digest, inbox: queue.SimpleQueue) -> None:
        while (buffer := inbox.get()) is not None:
            if not self._abandon and self._error is None:
                try:
                    digest.update(buffer)
                except BaseException as exc:  # reported by close()
                    self._error = exc
            with self._cond:
                self._done[index] += 1
                self._cond.notify_all()

    def submit(self, buffer) -> int:
        """Queue ``buffer`` for every digest; return its number (1, 2, ...)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._closed or self._submitted - min(self._done) < self._capacity
            )
            if self._closed:  # also when close() came while this waited for room
                raise ValueError("the hash pipe is closed")
            self._submitted += 1
            for inbox in self._queues:  # under the lock: never after close()'s None
                inbox.put(buffer)
            return self._submitted

    def wait(self, number: int) -> None:
        """Return once every digest has consumed buffer ``number`` and those before it.

        After ``close(abandon=True)`` it raises ValueError: buffers are free only
        once that close has returned.
        """
        with self._cond:
            self._cond.wait_for(lambda: min(self._done) >= number or self._abandon)
            if min(self._done) < number:
                raise ValueError("the hash pipe was abandoned")

    def close(self, abandon: bool = False) -> None:
        """Stop the threads (after the queued buffers unless ``abandon``); raise a digest error.

        Closing again, or from several threads at once, is harmless: the first
        call decides ``abandon``, the others return once it is done.
        """
        with self._closing:
            if self._closed:
                return
            with self._cond:
                self._closed = True
                self._abandon = abandon
                for inbox in self._queues:
                    inbox.put(None)
                self._cond.notify_all()
            for thread in self._threads:
                thread.join()
        if self._error is not None and not abandon:
            raise self._error
