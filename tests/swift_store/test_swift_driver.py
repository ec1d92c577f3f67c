"""What is particular to Swift: large objects, DLOs, locations, credentials, errors."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import threading
from urllib.parse import urlsplit

import pytest
import swiftclient
from swift_testing import objects_under, swift_options

from glance_store_ng import errors, open_store
from glance_store_ng.pipeline import Ingest
from glance_store_ng.testing.conformance import failing_source, new_id, random_bytes
from glance_store_ng.units import MiB


def read_all(store, location, offset=0, length=None) -> bytes:
    with store.get(location, offset, length) as reader:
        return b"".join(reader)


def sha256_of(store, location) -> str:
    digest = hashlib.sha256()
    with store.get(location) as reader:
        for chunk in reader:
            digest.update(chunk)
    return digest.hexdigest()


# -- large objects ---------------------------------------------------------------------------


def test_150mib_image_is_an_slo_and_delete_leaves_no_segment(swift_store, admin, container):
    store = swift_store(swift_store_large_object_size=32)
    data = os.urandom(150 * MiB)
    image_id = new_id()
    result = store.add(image_id, io.BytesIO(data), len(data))
    assert result.checksum == hashlib.md5(data).hexdigest()
    head = admin.head_object(container, image_id)
    assert head["x-static-large-object"] == "True"
    assert int(head["content-length"]) == len(data)
    _, segments = admin.get_container(f"{container}_segments", full_listing=True)
    assert len(segments) == 5  # 4 x 32 MiB + 22 MiB
    assert sorted(s["bytes"] for s in segments) == [22 * MiB] + [32 * MiB] * 4
    assert sha256_of(store, result.location) == hashlib.sha256(data).hexdigest()
    boundary = 32 * MiB
    assert (
        read_all(store, result.location, boundary - 10, 20) == data[boundary - 10 : boundary + 10]
    )
    assert store.get_size(result.location) == len(data)

    store.delete(result.location)
    assert objects_under(admin, container) == set()
    with pytest.raises(errors.NotFound):
        store.get_size(result.location)


def test_source_failing_at_60_percent_leaves_no_manifest_and_no_segment(
    swift_store, admin, container
):
    store = swift_store(swift_store_large_object_size=32)
    data = random_bytes(150 * MiB, seed=60)
    image_id = new_id()
    with pytest.raises(Exception, match="source failed"):
        store.add(image_id, failing_source(data, len(data) * 6 // 10, piece=MiB), len(data))
    assert objects_under(admin, container) == set()
    with pytest.raises(swiftclient.ClientException) as caught:
        admin.head_object(container, image_id)
    assert caught.value.http_status == 404


def test_known_size_up_to_the_large_object_size_is_one_put_checked_by_its_etag(
    swift_store, admin, container
):
    """40 MiB (over one 32 MiB chunk) with a declared size: one plain object, whose ETag
    (Swift's md5 of what it stored) is the pipeline's md5."""
    store = swift_store()
    data = random_bytes(40 * MiB, seed=40)
    image_id = new_id()
    result = store.add(image_id, io.BytesIO(data), len(data))
    assert result.checksum == hashlib.md5(data).hexdigest()
    head = admin.head_object(container, image_id)
    assert "x-static-large-object" not in head
    assert head["etag"].strip('"') == result.checksum
    assert int(head["content-length"]) == len(data)
    assert objects_under(admin, container) == {f"{container}/{image_id}"}
    assert read_all(store, result.location) == data
    store.delete(result.location)


def test_single_put_md5_mismatch_deletes_the_object(swift_store, admin, container, monkeypatch):
    store = swift_store()
    monkeypatch.setattr(Ingest, "checksum", property(lambda self: "0" * 32))
    image_id = new_id()
    with pytest.raises(errors.ChecksumMismatch, match="expected 0000"):
        store.add(image_id, io.BytesIO(b"x" * MiB), MiB)
    assert objects_under(admin, container) == set()


@pytest.mark.parametrize("failure", ["source", "short", "interrupt"])
def test_single_put_cut_short_leaves_no_object(swift_store, admin, container, failure):
    """A 20 MiB image with default options goes up in one PUT: a source failing at 60%,
    data shorter than declared, or Ctrl-C leave nothing behind (Swift does not commit a
    body shorter than its Content-Length)."""
    store = swift_store()
    data = random_bytes(20 * MiB, seed=20)
    image_id = new_id()
    if failure == "source":
        with pytest.raises(Exception, match="source failed"):
            store.add(image_id, failing_source(data, len(data) * 6 // 10, piece=MiB), len(data))
    elif failure == "short":
        with pytest.raises(errors.SizeMismatch):
            store.add(image_id, io.BytesIO(data[: len(data) * 6 // 10]), len(data))
    else:

        def interrupted():
            yield data[: 12 * MiB]
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.add(image_id, interrupted(), len(data))
    assert objects_under(admin, container) == set()
    with pytest.raises(swiftclient.ClientException) as caught:
        admin.head_object(container, image_id)
    assert caught.value.http_status == 404
    result = store.add(image_id, io.BytesIO(data), len(data))  # the id is still free
    assert read_all(store, result.location) == data
    store.delete(result.location)


def test_more_segments_than_a_manifest_holds_nest_manifests(swift_store, admin, container):
    store = swift_store(swift_store_large_object_size=1, swift_store_large_object_chunk_size=1)
    store._max_manifest_segments = 3  # the server's limit is 1000: nest after 3 here
    data = random_bytes(10 * MiB + 5, seed=3)
    result = store.add(new_id(), data)
    assert read_all(store, result.location) == data
    assert read_all(store, result.location, 3 * MiB - 1, MiB + 2) == data[3 * MiB - 1 : 4 * MiB + 1]
    names = {name.rsplit("/", 1)[1] for name in objects_under(admin, f"{container}_segments")}
    assert len([n for n in names if n.startswith("manifest-")]) == 4 + 2  # 11 -> 4 -> 2 -> 1
    store.delete(result.location)
    assert objects_under(admin, container) == set()


def test_add_racing_another_add_of_the_same_id_overwrites_nothing(swift_store, admin, container):
    """The first add passes the existence check, then another add stores the id: the final
    PUT of the first (If-None-Match: *) is refused and its segments are removed."""
    store = swift_store(swift_store_large_object_size=1, swift_store_large_object_chunk_size=1)
    image_id = new_id()
    first_data = random_bytes(4 * MiB, seed=1)
    checked, go_on = threading.Event(), threading.Event()
    outcome: list = []

    def slow_source():
        yield first_data[: 2 * MiB]
        checked.set()
        go_on.wait(30)
        yield first_data[2 * MiB :]

    def first_add() -> None:
        try:
            outcome.append(store.add(image_id, slow_source()))
        except errors.AlreadyExists as exc:
            outcome.append(exc)

    thread = threading.Thread(target=first_add)
    thread.start()
    assert checked.wait(30)
    second = store.add(image_id, b"the second add won")
    go_on.set()
    thread.join()
    assert isinstance(outcome[0], errors.AlreadyExists)
    assert read_all(store, second.location) == b"the second add won"
    assert objects_under(admin, container) == {f"{container}/{image_id}"}
    store.delete(second.location)


def test_dlo_written_as_glance_store_writes_it(swift_store, admin, swift_env, container):
    """Segments <id>-00001... beside a manifest with X-Object-Manifest: container/<id>-."""
    store = swift_store()
    image_id = new_id()
    data = random_bytes(3 * MiB + 123, seed=9)
    admin.put_container(container)
    for index, start in enumerate(range(0, len(data), MiB), 1):
        admin.put_object(container, f"{image_id}-{index:05d}", data[start : start + MiB])
    admin.put_object(
        container, image_id, b"", headers={"X-Object-Manifest": f"{container}/{image_id}-"}
    )
    location = f"swift+{swift_env['GSN_SWIFT_AUTH_URL']}/{container}/{image_id}"
    assert store.get_size(location) == len(data)
    assert read_all(store, location) == data
    assert read_all(store, location, MiB - 3, 2 * MiB) == data[MiB - 3 : 3 * MiB - 3]
    store.delete(location)
    assert objects_under(admin, container) == set()


# -- locations and credentials ---------------------------------------------------------------


def test_location_holds_no_credentials(swift_store, swift_env, container):
    store = swift_store()
    result = store.add(new_id(), b"abc")
    # The proxy's port is the backend's (GSN_SWIFT_PROXY_PORT), as its env file says.
    assert result.location.startswith(f"swift+{swift_env['GSN_SWIFT_AUTH_URL']}/{container}/")
    assert swift_env["GSN_SWIFT_KEY"] not in result.location
    assert "@" not in result.location
    store.delete(result.location)


def test_legacy_location_with_credentials_reads_and_never_shows_the_key(
    swift_store, container, caplog
):
    store = swift_store()
    result = store.add(new_id(), b"legacy")
    path = result.location.removeprefix("swift+http://")
    legacy = f"swift+http://test%3Atester:testing@{path}"
    assert read_all(store, legacy) == b"legacy"
    wrong = f"swift+http://test:tester:Wr0ngSecretKey42@{path}"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.PermissionDenied) as caught:
        store.get_size(wrong)
    assert "Wr0ngSecretKey42" not in str(caught.value)
    assert not caught.value.retryable
    with pytest.raises(errors.BadLocation) as caught:
        store.get(f"swift://test:tester:Wr0ngSecretKey42@http://{path}")
    assert "Wr0ngSecretKey42" not in str(caught.value)
    assert "Wr0ngSecretKey42" not in caplog.text
    store.delete(result.location)


def test_config_file_references(swift_env, container, tmp_path):
    refs = tmp_path / "glance-swift.conf"
    refs.write_text(
        f"[ref1]\nauth_address = {swift_env['GSN_SWIFT_AUTH_URL']}\n"
        f"user = {swift_env['GSN_SWIFT_USER']}\nkey = {swift_env['GSN_SWIFT_KEY']}\n"
        "auth_version = 1\n"
        f"[broken]\nauth_address = {swift_env['GSN_SWIFT_AUTH_URL']}\n"
        "user = test:tester\nkey = N0tTheKey99\nauth_version = 1\n"
    )
    options = {
        "swift_store_config_file": str(refs),
        "default_swift_reference": "ref1",
        "swift_store_container": container,
        "swift_store_create_container_on_put": True,
    }
    store = open_store("swift", options)
    result = store.add(new_id(), b"by reference")
    assert result.location.startswith(f"swift+config://ref1/{container}/")
    assert read_all(store, result.location) == b"by reference"
    with pytest.raises(errors.PermissionDenied) as caught:
        store.get_size(result.location.replace("//ref1/", "//broken/"))
    assert "N0tTheKey99" not in str(caught.value)
    with pytest.raises(errors.BadLocation, match="no reference 'ref9'"):
        store.get(result.location.replace("//ref1/", "//ref9/"))
    assert "N0tTheKey99" not in repr(store)
    store.delete(result.location)
    with pytest.raises(errors.ConfigError, match="not both"):
        open_store("swift", {**options, "swift_store_key": "x"})
    with pytest.raises(errors.ConfigError, match="'ref7' is not a section"):
        open_store("swift", {**options, "default_swift_reference": "ref7"})


@pytest.mark.parametrize(
    "location",
    [
        "swift+{auth_url}/other-container/abc",
        "swift+http://evil.example/auth/v1.0/{container}/abc",
        "swift+{auth_url}/{container}_segments/abc",
        "swift+{auth_url}/{container}/..",
        "swift+http://{proxy}/{container}",
        "swift+config://ref1/{container}/abc",
        "s3://127.0.0.1/{container}/abc",
    ],
)
def test_locations_this_store_does_not_hold(swift_store, swift_env, container, location):
    store = swift_store()
    auth_url = swift_env["GSN_SWIFT_AUTH_URL"]
    proxy = urlsplit(auth_url).netloc
    location = location.format(container=container, auth_url=auth_url, proxy=proxy)
    assert not store.owns(location)
    with pytest.raises(errors.BadLocation):
        store.get(location)


def test_multiple_containers_seed_as_glance_store(swift_store, container):
    store = swift_store(swift_store_multiple_containers_seed=3)
    assert store.container_for("AB-cdef") == f"{container}_ab-c"
    assert store.container_for("abcdef") == f"{container}_abc"
    result = store.add("abcdef", b"seeded")
    assert f"/{container}_abc/abcdef" in result.location
    store.delete(result.location)


# -- auth and errors -------------------------------------------------------------------------


def test_wrong_key_is_permission_denied_without_the_key(swift_env, container, caplog):
    caplog.set_level(logging.DEBUG)
    options = swift_options(swift_env, container, swift_store_key="Sup3rSecretWrongKey")
    store = open_store("swift", options)
    with pytest.raises(errors.PermissionDenied) as caught:
        store.add(new_id(), b"x")
    assert isinstance(caught.value, PermissionError)
    assert "Sup3rSecretWrongKey" not in str(caught.value)
    assert "Sup3rSecretWrongKey" not in repr(store)
    assert "Sup3rSecretWrongKey" not in caplog.text


def test_no_key_in_debug_logs_of_a_whole_round_trip(swift_store, swift_env, caplog):
    caplog.set_level(logging.DEBUG)
    store = swift_store(swift_store_large_object_size=1, swift_store_large_object_chunk_size=1)
    result = store.add(new_id(), random_bytes(2 * MiB + 1, seed=1))
    read_all(store, result.location)
    store.delete(result.location)
    assert swift_env["GSN_SWIFT_KEY"] not in caplog.text
    token = store.account.auth()[1]
    assert token not in caplog.text


def test_expired_token_is_refreshed_once(swift_store):
    store = swift_store()
    result = store.add(new_id(), b"token")
    _, token = store.account.auth()
    store.account._token = "AUTH_tk" + "0" * 32  # as if it had expired
    assert store.get_size(result.location) == 5
    assert store.account.auth()[1] not in ("AUTH_tk" + "0" * 32,)
    store.delete(result.location)


def test_unreachable_server_is_backend_unavailable_and_retryable(swift_env, container):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = swift_options(
        swift_env, container, swift_store_auth_address=f"http://127.0.0.1:{port}/auth/v1.0"
    )
    store = open_store("swift", options)
    with pytest.raises(errors.BackendUnavailable) as caught:
        store.add(new_id(), b"x")
    assert caught.value.retryable
    assert caught.value.retry is errors.Retry.EXHAUSTED
    assert isinstance(caught.value, ConnectionError)


def test_missing_container_without_create_on_put(swift_env, container):
    options = swift_options(swift_env, container, swift_store_create_container_on_put=False)
    store = open_store("swift", options)
    with pytest.raises(errors.StoreError, match="swift_store_create_container_on_put"):
        store.add(new_id(), b"x")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"swift_store_key": None}, "swift_store_key is required"),
        ({"swift_store_auth_address": "127.0.0.1:8280/auth"}, "http:// or https://"),
        ({"swift_store_container": "a/b"}, "not a valid container"),
        ({"swift_store_multiple_containers_seed": 33}, "maximum"),
        ({"swift_store_auth_version": "2"}, "must be one of"),
        ({"swift_store_large_object_chunk_size": 0}, "minimum"),
    ],
)
def test_configuration_errors(swift_env, options, message):
    base = swift_options(swift_env, "gsn-test-config")
    base.update(options)
    base = {k: v for k, v in base.items() if v is not None}
    with pytest.raises(errors.ConfigError, match=message):
        open_store("swift", base)
