"""Verify on read, and short reads, on the reader itself (the drivers' side is in the
conformance suite: VerifyTests)."""

from __future__ import annotations

import hashlib
import re

import pytest

from glance_store_ng import Expected, ImageReader, errors
from glance_store_ng.verify import verified

DATA = [b"a" * 1000, b"b" * 3000, b"c" * 24]
MD5 = hashlib.md5(b"".join(DATA)).hexdigest()


def test_a_reader_that_ends_early_or_late_raises_size_mismatch():
    short = ImageReader(iter(DATA[:2]), 4024)
    short.what = "store: loc"
    with pytest.raises(errors.SizeMismatch, match="store: loc: the read ended after 4000 of 4024"):
        short.read()
    with pytest.raises(errors.SizeMismatch, match="more than the 4000 bytes"):
        ImageReader(iter(DATA), 4000).read()
    assert ImageReader(iter(DATA), 4024).read() == b"".join(DATA)


def test_stopping_early_is_no_error():
    with ImageReader(iter(DATA), 4024) as reader:
        assert next(iter(reader)) == DATA[0]
    assert reader.closed


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_verified_reader_yields_the_bytes_then_checks_them(kind):
    pieces = [kind(p) for p in DATA]
    reader = verified(ImageReader(iter(pieces), 4024), Expected(checksum=MD5), "x")
    assert b"".join(bytes(p) for p in reader) == b"".join(DATA)
    seen = []
    wrong = Expected(checksum=hashlib.md5(b"other").hexdigest(), size=4024)
    with pytest.raises(errors.ChecksumMismatch, match=f"x: .*expected {wrong.checksum}"):
        for piece in verified(ImageReader(iter(pieces), 4024), wrong, "x"):
            seen.append(bytes(piece))
    assert b"".join(seen) == b"".join(DATA)


def test_verify_reads_a_short_backend_as_an_error_not_a_mismatch():
    reader = verified(ImageReader(iter(DATA[:2]), 4024), Expected(checksum=MD5), "x")
    with pytest.raises(errors.SizeMismatch, match="ended after 4000 of 4024"):
        reader.read()


def test_a_verified_reader_closed_early_releases_the_backend():
    released = []
    inner = ImageReader(iter(DATA), 4024, close=lambda: released.append(True))
    with verified(inner, Expected(checksum=MD5), "x") as reader:
        next(iter(reader))
    assert released == [True] and reader.closed


@pytest.mark.parametrize(
    "fields, message",
    [
        ({}, "give the checksum, the multihash or the size"),
        ({"checksum": "xyz"}, "checksum (md5) must be 32 hex digits"),
        ({"multihash": MD5, "hash_algo": "sha512"}, "multihash (sha512) must be 128 hex"),
        ({"multihash": MD5, "hash_algo": "nope"}, "unsupported hashing_algo 'nope'"),
        ({"size": -1}, "size must be a non-negative integer"),
    ],
)
def test_bad_expectations_say_what_is_wrong(fields, message):
    with pytest.raises(errors.InvalidArgument, match=re.escape(message)):
        Expected(**fields)


def test_expected_of_a_result_or_anything_else():
    assert Expected.of(Expected(size=1)) == Expected(size=1)
    with pytest.raises(errors.InvalidArgument, match="an Expected or an AddResult, not dict"):
        Expected.of({"checksum": MD5})
