"""The ingest pipeline and the filesystem store against hashlib (pytest-benchmark).

Run: ``pytest benchmarks``. ``extra_info["MB/s"]`` holds the best round's
throughput. For whole-store figures against glance_store, use
``glance-store-ng bench``.
"""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest

from glance_store_ng import open_store
from glance_store_ng.pipeline import Ingest

SIZE = 256 << 20
CHUNK = 1 << 20


@pytest.fixture(scope="module")
def image() -> bytes:
    return os.urandom(SIZE)


def _run(benchmark, fn):
    benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["MB/s"] = round(SIZE / benchmark.stats.stats.min / 1e6)


def test_hashlib_md5_then_sha512(benchmark, image):
    """The baseline: what glance_store does, md5 then sha512 on each chunk."""
    view = memoryview(image)

    def run():
        md5, sha = hashlib.md5(), hashlib.sha512()
        for start in range(0, SIZE, CHUNK):
            md5.update(view[start : start + CHUNK])
            sha.update(view[start : start + CHUNK])

    _run(benchmark, run)


def test_hashlib_md5_alone(benchmark, image):
    view = memoryview(image)
    _run(benchmark, lambda: hashlib.md5(view))


def test_ingest_md5_and_sha512(benchmark, image):
    """Our pipeline: md5 and sha512 on two threads, zero scan in the caller's."""

    def run():
        for _ in Ingest(image, chunk_size=CHUNK, zero_block_size=4096):
            pass

    _run(benchmark, run)


@pytest.mark.parametrize("fsync", [True, False])
def test_filesystem_add(benchmark, image, tmp_path, fsync):
    store = open_store(
        "file", {"filesystem_store_datadir": str(tmp_path), "filesystem_store_fsync": fsync}
    )
    _run(benchmark, lambda: store.add(str(uuid.uuid4()), image, SIZE))
