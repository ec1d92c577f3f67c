"""Hashing and zero detection for the ingest pipeline, and CRC-32C for S3's part checksums.

One interface, two implementations with identical results: the C module
``glance_store_ng._native`` (built by cffi when a compiler and the -dev
libraries are present) and the pure-Python fallback in ``_fallback``.
``IMPLEMENTATION`` says which one is active. (The fallback's CRC-32C is a byte
at a time: correct, but S3 uploads then prefer zlib's CRC32.)

The C module is used when it imports and was built from this package version;
a module left over from another version is refused with a ``RuntimeWarning``.
``GLANCE_STORE_NG_PURE_PYTHON=1`` forces the fallback. With the C module,
algorithms it does not implement still work through hashlib.

Buffers (bytes, bytearray, memoryview slices, mmap, arrays; read-only too) are
passed to C without a copy, and the GIL is released during each C call, so
digests and scans of different buffers run in parallel on several threads.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import warnings
from typing import Protocol

from . import _fallback
from ._version import __version__

__all__ = [
    "ALGORITHMS",
    "FALLBACK_ADVICE",
    "IMPLEMENTATION",
    "Digest",
    "HashPipe",
    "crc32c",
    "is_zero",
    "new_digest",
    "zero_extents",
]

# Set to 1 to use the pure-Python fallback even when the C module is built.
PURE_PYTHON_ENV = "GLANCE_STORE_NG_PURE_PYTHON"


class Digest(Protocol):
    """What :func:`new_digest` returns: the hashlib object interface."""

    name: str
    digest_size: int

    def update(self, data, /) -> None:
        """Feed a bytes-like object."""

    def digest(self) -> bytes:
        """The digest of the data fed so far; more may be fed afterwards."""

    def hexdigest(self) -> str:
        """:meth:`digest` as lowercase hex."""

    def copy(self) -> Digest:
        """An independent copy of the current state."""


def _load_native(expected_version: str):
    """``(module, reason)``: the C module, or ``None`` and why it is not used."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None, f"{PURE_PYTHON_ENV} is set"
    try:
        from . import _native
    except ImportError as exc:
        return None, f"glance_store_ng._native is not built ({exc})"
    try:
        built = _native.ffi.string(_native.lib.gsn_version()).decode()
    except AttributeError:  # a build older than the version stamp
        built = "unknown"
    if built != expected_version:
        reason = (
            f"glance_store_ng._native was built for version {built} but the package is "
            f"{expected_version}; using the pure-Python fallback. Rebuild it in the source tree "
            "with pip install -e . (or pip install .)"
        )
        warnings.warn(reason, RuntimeWarning, stacklevel=2)
        return None, reason
    return _native, None


_native, NATIVE_UNAVAILABLE_REASON = _load_native(__version__)
"""Why the C module is not used (``None`` when it is)."""

if _native is not None:
    _ffi, _lib = _native.ffi, _native.lib
    _ERRORS = {
        _lib.GSN_EINVAL: ValueError,
        _lib.GSN_ENOMEM: MemoryError,
        _lib.GSN_EUNSUPPORTED: ValueError,
        _lib.GSN_ECRYPTO: RuntimeError,
        _lib.GSN_ETHREAD: RuntimeError,
        _lib.GSN_ECLOSED: ValueError,
    }


def _check(code: int, what: str) -> None:
    """Raise the Python error for a C status code."""
    if code != _lib.GSN_OK:
        text = _ffi.string(_lib.gsn_strerror(code)).decode()
        raise _ERRORS.get(code, RuntimeError)(
            f"glance_store_ng._native: {what} failed: {text} (code {code})"
        )


class _NativeDigest:
    """A digest state in C; same interface and results as the hashlib object.

    A lock serialises calls on one object (the GIL is released inside them);
    the C state is freed when the object is collected.
    """

    __slots__ = ("_state", "_lock", "name", "digest_size")

    def __init__(self, state, name: str) -> None:
        self._state = _ffi.gc(state, _lib.gsn_digest_free)
        self._lock = threading.Lock()
        self.name = name
        self.digest_size = _lib.gsn_digest_size(state)

    def update(self, data, /) -> None:
        """Feed a bytes-like object (C-contiguous; read-only is fine)."""
        with _ffi.from_buffer("uint8_t[]", data) as buf, self._lock:
            code = _lib.gsn_digest_update(self._state, buf, len(buf))
        _check(code, f"{self.name} update")

    def digest(self) -> bytes:
        """The digest of the data fed so far; more may be fed afterwards."""
        out = _ffi.new("uint8_t[]", self.digest_size)
        with self._lock:
            code = _lib.gsn_digest_final(self._state, out, self.digest_size)
        _check(code, f"{self.name} digest")
        return _ffi.buffer(out)[:]

    def hexdigest(self) -> str:
        """:meth:`digest` as lowercase hex."""
        return self.digest().hex()

    def copy(self) -> _NativeDigest:
        """An independent copy of the current state."""
        out = _ffi.new("gsn_digest **")
        with self._lock:
            code = _lib.gsn_digest_copy(self._state, out)
        _check(code, f"{self.name} copy")
        return _NativeDigest(out[0], self.name)

    def __repr__(self) -> str:
        return f"<{self.name} native digest>"


def _native_algorithms() -> dict[str, str]:
    """The algorithms the C module can make here, each with the ``name`` to report.

    The name is the one the fallback's object reports (``XXH3_64`` for xxh3_64).
    """
    names = {}
    out = _ffi.new("gsn_digest **")
    for index in range(64):
        raw = _lib.gsn_algorithm_name(index)
        if raw == _ffi.NULL:
            break
        algorithm = _ffi.string(raw).decode()
        if _lib.gsn_digest_new(raw, out) != _lib.GSN_OK:
            continue  # not in this libcrypto, or refused by its policy
        _lib.gsn_digest_free(out[0])
        try:
            names[algorithm] = _fallback.new_digest(algorithm).name
        except ValueError:
            names[algorithm] = algorithm
    return names


def _native_new_digest(algorithm: str) -> Digest:
    """A digest object for ``algorithm`` (C when the C module has it, else hashlib)."""
    name = _NATIVE_NAMES.get(algorithm)
    if name is None:
        return _fallback.new_digest(algorithm)
    out = _ffi.new("gsn_digest **")
    _check(_lib.gsn_digest_new(algorithm.encode("ascii"), out), f"new_digest({algorithm!r})")
    return _NativeDigest(out[0], name)


def _native_is_zero(buf) -> bool:
    """True when every byte of ``buf`` is zero (an empty buffer is all zero)."""
    try:
        cbuf = _ffi.from_buffer("uint8_t[]", buf)
    except BufferError:  # not C-contiguous: the fallback copies it
        return _fallback.is_zero(buf)
    with cbuf:
        return bool(_lib.gsn_is_zero(cbuf, len(cbuf)))


def _native_crc32c(buf, value: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``buf``, continuing from ``value`` (0 to start)."""
    try:
        cbuf = _ffi.from_buffer("uint8_t[]", buf)
    except BufferError:  # not C-contiguous
        return _native_crc32c(bytes(buf), value)
    with cbuf:
        return _lib.gsn_crc32c(value, cbuf, len(cbuf))


# Extents returned per C call; the scan resumes until the buffer ends.
_BATCH = 4096


def _native_zero_extents(buf, block_size: int = 4096) -> list[tuple[int, int]]:
    """The all-zero regions of ``buf`` as sorted, merged ``(start, end)`` offsets.

    ``buf`` is scanned in ``block_size`` blocks from its start; a block counts
    when all its bytes are zero. The last block may be shorter than
    ``block_size``.
    """
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    try:
        cbuf = _ffi.from_buffer("uint8_t[]", buf)
    except BufferError:  # not C-contiguous: the fallback copies it
        return _fallback.zero_extents(buf, block_size)
    with cbuf:
        size = len(cbuf)
        # A block past the end is the whole buffer: same result, and fits size_t.
        block_size = min(block_size, max(size, 1))
        blocks = -(-size // block_size)
        capacity = max(1, min(_BATCH, (blocks + 1) // 2))
        pairs = _ffi.new("size_t[]", 2 * capacity)
        count = _ffi.new("size_t *")
        resume = _ffi.new("size_t *")
        extents: list[tuple[int, int]] = []
        offset = 0
        while True:
            code = _lib.gsn_zero_extents(
                cbuf, size, block_size, offset, pairs, capacity, count, resume
            )
            _check(code, "zero_extents")
            flat = _ffi.unpack(pairs, 2 * count[0])
            extents.extend(zip(flat[::2], flat[1::2], strict=True))
            offset = resume[0]
            if offset >= size:
                return extents


class _NativeHashPipe:
    """The C hash pipe: one POSIX thread per digest, no GIL involved while hashing.

    Same interface as ``_fallback.HashPipe``. The digests are locked for the
    pipe's lifetime: only its threads touch them until :meth:`close`. The C
    pipe is freed when this object is collected; one dropped unclosed is closed
    (abandoning) first, so its digests are usable again.
    """

    def __init__(self, digests: list[_NativeDigest], capacity: int) -> None:
        if len({id(d) for d in digests}) != len(digests):
            raise ValueError("a digest can be fed by a hash pipe only once")
        self._digests = digests
        # Held by close() throughout, so a second close returns once the first is done.
        self._lock = threading.Lock()  # guards _closed and _held
        self._held: collections.deque = collections.deque()  # (number, buffer) in flight
        self._number = _ffi.new("uint64_t *")
        self._closed = True  # until the C pipe runs
        for digest in digests:
            digest._lock.acquire()
        try:
            states = _ffi.new("gsn_digest *[]", [d._state for d in digests])
            out = _ffi.new("gsn_hashpipe **")
            _check(_lib.gsn_hashpipe_new(states, len(digests), capacity, out), "new hash pipe")
        except BaseException:
            self._unlock()
            raise
        self._pipe = _ffi.gc(out[0], _lib.gsn_hashpipe_free)
        self._closed = False

    def submit(self, buffer) -> int:
        """Queue ``buffer`` (no copy) for every digest; return its number (1, 2, ...)."""
        cbuf = _ffi.from_buffer("uint8_t[]", buffer)
        code = _lib.gsn_hashpipe_submit(self._pipe, cbuf, len(cbuf), self._number)
        if code != _lib.GSN_OK:
            _ffi.release(cbuf)
            _check(code, "hash pipe submit")
        self._held.append((self._number[0], cbuf))
        return self._number[0]

    def wait(self, number: int) -> None:
        """Return once every digest has consumed buffer ``number`` and those before it."""
        _check(_lib.gsn_hashpipe_wait(self._pipe, number), "hash pipe wait")
        with self._lock:
            while self._held and self._held[0][0] <= number:
                _ffi.release(self._held.popleft()[1])

    def close(self, abandon: bool = False) -> None:
        """Stop the threads (after the queued buffers unless ``abandon``).

        Closing again, or from several threads at once, is harmless: the first
        call decides ``abandon``, the others return once it is done.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            code = _lib.gsn_hashpipe_close(self._pipe, int(abandon))
            while self._held:
                _ffi.release(self._held.popleft()[1])
            self._unlock()
        if not abandon:
            _check(code, "hash pipe close")

    def _unlock(self) -> None:
        for digest in self._digests:
            digest._lock.release()

    def __del__(self) -> None:
        # Join the threads while the buffers they read are still held.
        if not getattr(self, "_closed", True):
            self.close(abandon=True)


def HashPipe(digests: list[Digest], capacity: int):  # noqa: N802 - a class-like factory
    """Buffers fed, in order, to ``digests``, each on a thread of its own.

    ``submit(buffer) -> number``; keep the buffer unchanged until
    ``wait(number)`` returns; at most ``capacity`` buffers in flight;
    ``close()`` (or ``close(abandon=True)``) before reading the digests. In C
    when every digest is a C one, else on Python threads (hashlib releases the
    GIL while it hashes).
    """
    if _native is not None and all(isinstance(d, _NativeDigest) for d in digests):
        return _NativeHashPipe(digests, capacity)
    return _fallback.HashPipe(digests, capacity)


if _native is None:
    IMPLEMENTATION = "python"
    ALGORITHMS: frozenset[str] = _fallback.ALGORITHMS
    new_digest = _fallback.new_digest
    is_zero = _fallback.is_zero
    zero_extents = _fallback.zero_extents
    crc32c = _fallback.crc32c
else:
    IMPLEMENTATION = "native"
    _NATIVE_NAMES = _native_algorithms()
    ALGORITHMS = _fallback.ALGORITHMS | frozenset(_NATIVE_NAMES)
    new_digest = _native_new_digest
    is_zero = _native_is_zero
    zero_extents = _native_zero_extents
    crc32c = _native_crc32c

#: What the fallback costs and how to get the C module, for frontends to show once.
FALLBACK_ADVICE = (
    "hashing and zero detection run in pure Python ({reason}): adds spend more CPU and "
    "zero scans are several times slower; to build the C module: apt-get install gcc "
    "libssl-dev, then, from the clone, pip install --no-deps --force-reinstall . (or -e .)"
)

logging.getLogger("glance_store_ng").info(
    "hashing and zero detection: %s",
    IMPLEMENTATION
    if _native is not None
    else FALLBACK_ADVICE.format(reason=NATIVE_UNAVAILABLE_REASON),
)
