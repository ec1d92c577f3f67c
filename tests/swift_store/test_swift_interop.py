"""Interop with the real glance_store (5.7.0) Swift driver, on the same Swift server.

Both drivers use the same reference file, so locations are
``swift+config://ref1/<container>/<id>``. glance_store 5.7 authenticates
through Keystone v3 only; the Swift all-in-one runs tempauth (v1). So the
one thing replaced in glance_store is where its swiftclient connection comes
from (see :mod:`glance_store_ng.bench.reference`); its add, get and delete code runs
unchanged, against the real server.
"""

from __future__ import annotations

import hashlib
import io
import stat
from pathlib import Path

import pytest
from bench_testing import bench_beside_glance_store
from swift_testing import objects_under, swift_options

from glance_store_ng import open_store
from glance_store_ng.bench.reference import open_reference
from glance_store_ng.testing.conformance import new_id, random_bytes
from glance_store_ng.units import MiB


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
def options(refs, container):
    """Both drivers' options: 1 MiB large objects and segments."""
    return {
        "swift_store_config_file": refs,
        "default_swift_reference": "ref1",
        "swift_store_container": container,
        "swift_store_create_container_on_put": True,
        "swift_store_large_object_size": 1,
        "swift_store_large_object_chunk_size": 1,
    }


@pytest.fixture
def theirs(options):
    """glance_store's single-tenant Swift store: DLOs of 1 MiB segments above 1 MiB."""
    with open_reference("swift", options) as store:
        yield store


@pytest.fixture
def ours(options):
    store = open_store("swift", options)
    yield store
    store.close()


def test_image_glance_store_wrote_as_dlo_reads_through_ours(theirs, ours, admin, container):
    data = random_bytes(3 * MiB + 4321, seed=31)
    image_id = new_id()
    # Size 0 (unknown, as for a chunked upload): glance_store then always writes a DLO.
    # (With a declared size that is not a multiple of its chunk size, glance_store 5.7
    # declares a full Content-Length for the last segment and the PUT hangs.)
    uri, size, checksum, _ = theirs.add(image_id, io.BytesIO(data), 0)
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
    theirs, ours, admin, container, size
):
    data = random_bytes(size, seed=32)
    result = ours.add(new_id(), data)
    assert result.location.startswith("swift+config://ref1/")

    with theirs.get(result.location) as chunks:
        assert b"".join(chunks) == data
    assert theirs.get_size(result.location) == len(data)
    theirs.delete(result.location)
    assert objects_under(admin, container) == set()


def test_bench_measures_glance_store_beside_ours(swift_env, container, admin, tmp_path):
    """An operator's glance-api.conf with credentials inline (glance_store gets them in a
    reference file of its own, see glance_store_ng.bench.reference): bench runs both drivers
    and leaves nothing in the container."""
    options = swift_options(swift_env, container)
    bench_beside_glance_store(
        "[DEFAULT]\nenabled_backends = cold:swift\n[glance_store]\ndefault_backend = cold\n"
        "[cold]\n" + "".join(f"{name} = {value}\n" for name, value in options.items()),
        tmp_path,
    )
    assert objects_under(admin, container) == set()


def test_inline_credentials_reach_glance_store_in_a_private_file_removed_on_close(
    swift_env, container
):
    with open_reference("swift", swift_options(swift_env, container)) as theirs:
        refs = Path(theirs.conf.glance_store.swift_store_config_file)
        assert stat.S_IMODE(refs.stat().st_mode) == 0o600
        assert stat.S_IMODE(refs.parent.stat().st_mode) == 0o700
        added = theirs.add(new_id(), io.BytesIO(b"x" * 1000), 1000)
        assert swift_env["GSN_SWIFT_KEY"] not in added.location
        theirs.delete(added.location)
    assert not refs.parent.exists()
