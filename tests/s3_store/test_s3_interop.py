"""Interop with the real glance_store (5.7.0): each reads what the other wrote, byte for byte.

An existing Glance deployment's S3 images must stay readable when it moves to
glance_store_ng, and the other way round. Both drivers talk to the same real
server and bucket; small images go up as one PUT, larger ones as multipart
uploads (5 MB threshold and parts on both sides).
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from bench_testing import bench_beside_glance_store
from s3_testing import S3Server

from glance_store_ng import open_store
from glance_store_ng.bench.reference import open_reference
from glance_store_ng.testing.conformance import new_id, random_bytes
from glance_store_ng.units import MiB

SIZES = [0, 1000, 12 * MiB + 3]


def _options(server: S3Server, bucket: str) -> dict[str, Any]:
    """The options both drivers get: 5 MB multipart threshold and parts."""
    return server.options(bucket, s3_store_large_object_size=5, s3_store_large_object_chunk_size=5)


@pytest.fixture
def theirs(s3_server, bucket):
    """glance_store's own S3 driver on ``bucket``, with the options ours gets."""
    with open_reference("s3", _options(s3_server, bucket)) as store:
        yield store


@pytest.fixture
def ours(s3_server, bucket):
    store = open_store("s3", _options(s3_server, bucket))
    yield store
    store.close()


@pytest.mark.parametrize("size", SIZES)
def test_glance_store_writes_we_read(s3_server, bucket, theirs, ours, size):
    data = random_bytes(size, seed=size)
    location, stored_size, checksum, _ = theirs.add(new_id(), io.BytesIO(data), size)
    assert (stored_size, checksum) == (size, hashlib.md5(data).hexdigest())
    assert ours.owns(location)
    assert ours.get_size(location) == size
    with ours.get(location) as reader:
        assert b"".join(reader) == data
    if size > 10:
        with ours.get(location, 7, 3) as reader:
            assert b"".join(reader) == data[7:10]
    ours.delete(location)
    assert s3_server.listing(bucket) == set()  # segments and parts included


@pytest.mark.parametrize("size", SIZES)
def test_we_write_glance_store_reads(s3_server, bucket, theirs, ours, size):
    data = random_bytes(size, seed=size + 1)
    location = ours.add(new_id(), io.BytesIO(data), size or None).location
    assert theirs.get_size(location) == size
    with theirs.get(location) as chunks:
        assert b"".join(chunks) == data
    theirs.delete(location)
    assert s3_server.listing(bucket) == set()  # segments and parts included


def test_bench_measures_glance_store_beside_ours(s3_server, bucket, tmp_path):
    """bench runs both drivers on the configured bucket and leaves nothing in it."""
    options = _options(s3_server, bucket)
    bench_beside_glance_store(
        "[DEFAULT]\nenabled_backends = images:s3\n[glance_store]\ndefault_backend = images\n"
        "[images]\n" + "".join(f"{name} = {value}\n" for name, value in options.items()),
        tmp_path,
    )
    assert s3_server.listing(bucket) == set()  # segments and parts included
