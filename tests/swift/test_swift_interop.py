"""Interop with the real glance_store (5.7.0) Swift driver, on the same Swift server.

Both drivers use the same reference file, so locations are
``swift+config://ref1/<container>/<id>``. glance_store 5.7 authenticates
through Keystone v3 only; the Swift all-in-one runs tempauth (v1). So the
one thing replaced in glance_store is where its swiftclient connection comes
from (``get_manager`` / ``get_connection`` of the store instance return a v1
swiftclient connection); its add, get and delete code runs unchanged, against
the real server.
"""

from __future__ import annotations

import hashlib
import io

import pytest
import swiftclient
from swift_testing import objects_under

from glance_store_ng import open_store
from glance_store_ng.testing.conformance import new_id, random_bytes

MiB = 1 << 20


class _V1Manager:
    def __init__(self, connect) -> None:
        self._connect = connect

    def get_connection(self):
        return self._connect()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        pass


@pytest.fixture
def refs(swift_env, tmp_path):
    path = tmp_path / "glance-swift.conf"
    path.write_text(
        f"[ref1]\nauth_address = {swift_env['GSN_SWIFT_AUTH_URL']}\n"
        f"user = {swift_env['GSN_SWIFT_USER']}\nkey = {swift_env['GSN_SWIFT_KEY']}\n"
        "auth_version = 1\n"
    )
    return str(path)


@pytest.fixture
def glance_swift(swift_env, refs, container):
    """glance_store's single-tenant Swift store: DLOs of 1 MiB segments above 1 MiB."""
    import glance_store
    from glance_store import location as gs_location
    from glance_store._drivers.swift import store as gs_swift
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    glance_store.register_opts(conf)
    conf([], project="glance-store-ng-interop")
    for name, value in {
        "swift_store_config_file": refs,
        "default_swift_reference": "ref1",
        "swift_store_container": container,
        "swift_store_create_container_on_put": True,
        "swift_store_large_object_size": 1,
        "swift_store_large_object_chunk_size": 1,
    }.items():
        conf.set_override(name, value, "glance_store")
    store = gs_swift.SingleTenantStore(conf)
    store.configure()

    def connect(*args, **kwargs):
        return swiftclient.Connection(
            swift_env["GSN_SWIFT_AUTH_URL"],
            swift_env["GSN_SWIFT_USER"],
            swift_env["GSN_SWIFT_KEY"],
            auth_version="1",
        )

    store.get_connection = connect
    store.get_manager = lambda *args, **kwargs: _V1Manager(connect)

    def location(uri: str):
        return gs_location.Location("swift", gs_swift.StoreLocation, conf, uri=uri)

    return store, location


@pytest.fixture
def ours(refs, container):
    store = open_store(
        "swift",
        {
            "swift_store_config_file": refs,
            "default_swift_reference": "ref1",
            "swift_store_container": container,
            "swift_store_create_container_on_put": True,
            "swift_store_large_object_size": 1,
            "swift_store_large_object_chunk_size": 1,
        },
    )
    yield store
    store.close()


def test_image_glance_store_wrote_as_dlo_reads_through_ours(glance_swift, ours, admin, container):
    store, _ = glance_swift
    data = random_bytes(3 * MiB + 4321, seed=31)
    image_id = new_id()
    # Size 0 (unknown, as for a chunked upload): glance_store then always writes a DLO.
    # (With a declared size that is not a multiple of its chunk size, glance_store 5.7
    # declares a full Content-Length for the last segment and the PUT hangs.)
    uri, size, checksum, multihash, _ = store.add(image_id, io.BytesIO(data), 0, "sha512")
    assert uri == f"swift+config://ref1/{container}/{image_id}"
    assert admin.head_object(container, image_id)["x-object-manifest"]  # a DLO, as it writes

    assert ours.get_size(uri) == len(data) == size
    with ours.get(uri) as reader:
        assert hashlib.md5(b"".join(reader)).hexdigest() == checksum
    with ours.get(uri, MiB - 5, MiB + 10) as reader:
        assert b"".join(reader) == data[MiB - 5 : 2 * MiB + 5]
    ours.delete(uri)
    assert objects_under(admin, container) == set()


@pytest.mark.parametrize("size", [1000, 3 * MiB + 99], ids=["one PUT", "SLO"])
def test_image_ours_wrote_reads_and_deletes_through_glance_store(
    glance_swift, ours, admin, container, size
):
    store, location = glance_swift
    data = random_bytes(size, seed=32)
    result = ours.add(new_id(), data)
    assert result.location.startswith("swift+config://ref1/")

    chunks, got_size = store.get(location(result.location))
    assert got_size == len(data)
    assert b"".join(chunks) == data
    assert store.get_size(location(result.location)) == len(data)
    store.delete(location(result.location))
    assert objects_under(admin, container) == set()
