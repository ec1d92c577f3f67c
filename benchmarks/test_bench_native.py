"""Throughput of the C module against the pure-Python paths (pytest-benchmark).

Run: ``pytest benchmarks`` (not part of the default ``tests`` run). Each case
handles one 64 MiB buffer; ``extra_info["GB/s"]`` holds the best round's
throughput (also in ``--benchmark-json`` output).
"""

from __future__ import annotations

import hashlib
import os

import pytest

from glance_store_ng import _fallback, native

SIZE = 64 << 20


def _native_only():
    if native.IMPLEMENTATION != "native":
        pytest.skip(f"native module not in use: {native.NATIVE_UNAVAILABLE_REASON}")


def _run(benchmark, fn, rounds=5):
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    benchmark.extra_info["GB/s"] = round(SIZE / benchmark.stats.stats.min / 1e9, 2)
    return result


@pytest.fixture(scope="module")
def zeros() -> bytearray:
    """64 MiB of zeros, touched so every page is really mapped."""
    buf = bytearray(b"\x01") * SIZE
    buf[:] = bytes(SIZE)
    return buf


@pytest.fixture(scope="module")
def random_data() -> bytes:
    """64 MiB of random bytes."""
    return os.urandom(SIZE)


# ---------------------------------------------------------------- zero scan


def test_zero_extents_native(benchmark, zeros):
    _native_only()
    assert _run(benchmark, lambda: native.zero_extents(zeros)) == [(0, SIZE)]


def test_is_zero_native(benchmark, zeros):
    _native_only()
    assert _run(benchmark, lambda: native.is_zero(zeros))


def test_zero_extents_fallback(benchmark, zeros):
    assert _run(benchmark, lambda: _fallback.zero_extents(zeros)) == [(0, SIZE)]


def test_is_zero_fallback(benchmark, zeros):
    assert _run(benchmark, lambda: _fallback.is_zero(zeros))


def test_not_any(benchmark, zeros):
    """What glance_store does today."""
    assert _run(benchmark, lambda: not any(zeros), rounds=2)


# ------------------------------------------------------------------ digests


def _digest(factory, data):
    digest = factory()
    digest.update(data)
    return digest.digest()


@pytest.mark.parametrize("algorithm", ["md5", "sha512"])
def test_digest_native(benchmark, random_data, algorithm):
    _native_only()
    _run(benchmark, lambda: _digest(lambda: native.new_digest(algorithm), random_data), rounds=3)


@pytest.mark.parametrize("algorithm", ["md5", "sha512"])
def test_digest_hashlib(benchmark, random_data, algorithm):
    _run(benchmark, lambda: _digest(lambda: hashlib.new(algorithm), random_data), rounds=3)


@pytest.mark.parametrize("algorithm", ["xxh3_64", "xxh3_128"])
def test_digest_xxh3_native(benchmark, random_data, algorithm):
    _native_only()
    _run(benchmark, lambda: _digest(lambda: native.new_digest(algorithm), random_data))


@pytest.mark.parametrize("algorithm", ["xxh3_64", "xxh3_128"])
def test_digest_xxh3_package(benchmark, random_data, algorithm):
    _run(benchmark, lambda: _digest(lambda: _fallback.new_digest(algorithm), random_data))
