"""Verify on read: an image's bytes checked against the checksums recorded when it was added.

``Store.get(location, verify=Expected(...))`` (or ``verify=add_result``) returns a
reader that hashes the bytes as they stream, on the native hash pipe's threads
(no copy; the caller's loop does not wait for the hashing), and checks them at
the end of the stream: :class:`~glance_store_ng.errors.ChecksumMismatch` if a
digest differs, raised after the caller has seen the bytes (so a copy being
written must be discarded: ``glance-store-ng get -o`` leaves no file then). A
stored size that differs from the expected one raises
:class:`~glance_store_ng.errors.SizeMismatch` before any byte is read.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import native
from .errors import ChecksumMismatch, InvalidArgument, SizeMismatch
from .pipeline import check_hash_algorithm
from .reader import ImageReader

__all__ = ["Expected", "verified"]

_HEX = re.compile(r"[0-9a-f]+")
#: Chunks hashed while the caller already has the next ones.
_IN_FLIGHT = 4


@dataclass(frozen=True)
class Expected:
    """What an image must be: any of its md5 (Glance's ``checksum``), its multihash (Glance's
    ``os_hash_value``, with ``hash_algo``, Glance's ``os_hash_algo``) and its size."""

    checksum: str | None = None
    multihash: str | None = None
    hash_algo: str = "sha512"
    size: int | None = None

    def __post_init__(self) -> None:
        if self.checksum is None and self.multihash is None and self.size is None:
            raise InvalidArgument("verify: give the checksum, the multihash or the size to expect")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise InvalidArgument(f"verify: size must be a non-negative integer, not {self.size!r}")
        if self.checksum is not None:
            _check_hex("checksum (md5)", self.checksum, 32)
        if self.multihash is not None:
            algo = check_hash_algorithm(self.hash_algo)
            length = 2 * native.new_digest(algo).digest_size
            _check_hex(f"multihash ({algo})", self.multihash, length)

    @classmethod
    def of(cls, value: Any) -> Expected:
        """``value`` if it is an Expected, else one built from its ``checksum``,
        ``multihash``, ``hash_algo`` and ``size`` attributes (an ``AddResult``)."""
        if isinstance(value, Expected):
            return value
        try:
            return cls(
                checksum=value.checksum,
                multihash=value.multihash,
                hash_algo=value.hash_algo,
                size=value.size,
            )
        except AttributeError:
            raise InvalidArgument(
                f"verify takes an Expected or an AddResult, not {type(value).__name__}"
            ) from None


def _check_hex(what: str, value: object, length: int) -> None:
    if not isinstance(value, str) or len(value) != length or not _HEX.fullmatch(value.lower()):
        raise InvalidArgument(f"verify: the {what} must be {length} hex digits, not {value!r}")


def verified(reader: ImageReader, expected: Expected, label: str) -> ImageReader:
    """``reader``'s bytes, checked against ``expected`` (see the module docstring).

    ``reader`` must yield the whole image. ``label`` names the image in messages.
    """
    if expected.size is not None and reader.size != expected.size:
        reader.close()
        raise SizeMismatch(
            f"{label}: the stored image holds {reader.size} bytes, not the "
            f"{expected.size} expected; it is damaged or is not the image recorded"
        )
    checks: list[tuple[str, native.Digest, str]] = []
    if expected.checksum is not None:
        checks.append(("checksum (md5)", native.new_digest("md5"), expected.checksum.lower()))
    if expected.multihash is not None:
        what, algo = f"multihash ({expected.hash_algo})", expected.hash_algo
        checks.append((what, native.new_digest(algo), expected.multihash.lower()))
    if not checks:
        return reader
    return ImageReader(_hashed(reader, checks, label), reader.size, close=reader.close)


def _hashed(
    reader: ImageReader, checks: list[tuple[str, native.Digest, str]], label: str
) -> Iterator[bytes]:
    pipe = native.HashPipe([digest for _, digest, _ in checks], _IN_FLIGHT)
    in_flight: collections.deque[int] = collections.deque()
    closed = False
    try:
        for piece in reader:
            if not isinstance(piece, bytes):  # a buffer the driver may reuse: hash it now
                pipe.wait(pipe.submit(piece))
            else:
                in_flight.append(pipe.submit(piece))
                if len(in_flight) >= _IN_FLIGHT:
                    pipe.wait(in_flight.popleft())
            yield piece
        pipe.close()
        closed = True
    finally:
        if not closed:
            pipe.close(abandon=True)
    wrong = [
        f"{what} {digest.hexdigest()}, expected {hexdigest}"
        for what, digest, hexdigest in checks
        if digest.hexdigest() != hexdigest
    ]
    if wrong:
        raise ChecksumMismatch(
            f"{label}: the bytes read differ from the image recorded: {'; '.join(wrong)}. "
            "The stored copy is damaged or was replaced; discard what was read"
        )
