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
from s3_servers import S3Server

from glance_store_ng import open_store
from glance_store_ng.testing.conformance import new_id, random_bytes

MiB = 1 << 20
SIZES = [0, 1000, 12 * MiB + 3]


def _glance_store(server: S3Server, bucket: str) -> tuple[Any, Any, Any]:
    """glance_store's own S3 driver on ``bucket``: (store, Location class, conf)."""
    try:
        import glance_store as gs
        from glance_store import location as gs_location
        from glance_store._drivers import s3 as gs_s3
        from oslo_config import cfg
    except ImportError as exc:  # the test extra installs it: a missing one is a failure
        pytest.fail(f"glance-store==5.7.0 is needed (pip install -e '.[test]'): {exc}")
    conf = cfg.ConfigOpts()
    gs.register_opts(conf)
    conf([], project="glance-store-ng-interop")
    for name, value in {
        "s3_store_host": server.endpoint,
        "s3_store_access_key": server.access_key,
        "s3_store_secret_key": server.secret_key,
        "s3_store_bucket": bucket,
        "s3_store_bucket_url_format": "path",
        "s3_store_region_name": server.region,
        "s3_store_large_object_size": 5,
        "s3_store_large_object_chunk_size": 5,
    }.items():
        conf.set_override(name, value, "glance_store")
    store = gs_s3.Store(conf)
    store.configure()

    def location(uri: str) -> Any:
        return gs_location.Location("s3", gs_s3.StoreLocation, conf, uri=uri)

    return store, location, conf


def _ours(server: S3Server, bucket: str) -> Any:
    return open_store(
        "s3",
        server.options(bucket, s3_store_large_object_size=5, s3_store_large_object_chunk_size=5),
    )


@pytest.mark.parametrize("size", SIZES)
def test_glance_store_writes_we_read(s3_server, bucket, size):
    theirs, _, _ = _glance_store(s3_server, bucket)
    ours = _ours(s3_server, bucket)
    data = random_bytes(size, seed=size)
    image_id = new_id()
    location, stored_size, checksum, *_ = theirs.add(image_id, io.BytesIO(data), size, "sha512")
    assert (stored_size, checksum) == (size, hashlib.md5(data).hexdigest())
    assert ours.owns(location)
    assert ours.get_size(location) == size
    with ours.get(location) as reader:
        assert b"".join(reader) == data
    if size > 10:
        with ours.get(location, 7, 3) as reader:
            assert b"".join(reader) == data[7:10]
    ours.delete(location)
    assert s3_server.listing(bucket, internals=False) == set()


@pytest.mark.parametrize("size", SIZES)
def test_we_write_glance_store_reads(s3_server, bucket, size):
    theirs, location_of, _ = _glance_store(s3_server, bucket)
    ours = _ours(s3_server, bucket)
    data = random_bytes(size, seed=size + 1)
    result = ours.add(new_id(), io.BytesIO(data), size or None)
    location = location_of(result.location)
    assert theirs.get_size(location) == size
    chunks, got_size = theirs.get(location)
    assert got_size == size
    assert b"".join(chunks) == data
    theirs.delete(location)
    assert s3_server.listing(bucket, internals=False) == set()
