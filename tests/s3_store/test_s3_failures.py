"""The S3 driver when things go wrong, against the real servers (each test runs on both).

What a user checks: the error they get (type, retryable, message), that the
server holds nothing after a failed add (no object, no pending upload, no
segment or part), that secrets never show, and that the bytes read are right.
"""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from s3_testing import S3Server, server_named
from tcp_relay import Relay

from glance_store_ng import errors, native, open_store
from glance_store_ng.locations import parse_location
from glance_store_ng.store import Store
from glance_store_ng.testing.conformance import _Boom, failing_source, new_id, random_bytes
from glance_store_ng.units import MiB


def make_store(server: S3Server, bucket: str, **options: Any) -> Store:
    return open_store("s3", server.options(bucket, **options))


def read_all(store: Store, location: str, offset: int = 0, length: int | None = None) -> bytes:
    with store.get(location, offset, length) as reader:
        return b"".join(reader)


def assert_nothing_left(server: S3Server, bucket: str, image_id: str) -> None:
    assert server.listing(bucket) == set()
    assert server.pending_uploads(bucket) == []
    store = make_store(server, bucket)
    with pytest.raises(errors.NotFound):
        store.get_size(store.uri_of(image_id))


# -- failed adds leave nothing ----------------------------------------------------------------


def test_source_error_at_60_percent_of_a_100_mib_multipart_upload(s3_server, bucket):
    store = make_store(s3_server, bucket)  # defaults: multipart from 100 MB, 10 MB parts
    data = random_bytes(100 * MiB, seed=60)
    image_id = new_id()
    with pytest.raises(_Boom, match="source failed"):
        store.add(image_id, failing_source(data, 60 * MiB, piece=MiB), size=len(data))
    assert_nothing_left(s3_server, bucket, image_id)
    # The id is free and the store works: the same image goes in whole.
    result = store.add(image_id, data, len(data))
    assert result.checksum == hashlib.md5(data).hexdigest()
    assert read_all(store, result.location, 99 * MiB) == data[99 * MiB :]


def test_keyboard_interrupt_during_a_multipart_upload(s3_server, bucket):
    store = make_store(s3_server, bucket, s3_store_large_object_chunk_size=5)
    image_id = new_id()

    def interrupted() -> Iterator[bytes]:
        for seed in range(6):
            yield random_bytes(4 * MiB, seed=seed)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.add(image_id, interrupted())  # size unknown: parts go up as data comes
    assert_nothing_left(s3_server, bucket, image_id)


@pytest.mark.parametrize("declared", [40 * MiB, 20 * MiB])
def test_size_mismatch_in_a_multipart_upload(s3_server, bucket, declared):
    store = make_store(s3_server, bucket, s3_store_large_object_size=5)
    image_id = new_id()
    with pytest.raises(errors.SizeMismatch, match="declared size"):
        store.add(image_id, io.BytesIO(random_bytes(30 * MiB, seed=3)), size=declared)
    assert_nothing_left(s3_server, bucket, image_id)


def test_size_cap_in_a_multipart_upload(s3_server, bucket):
    store = make_store(
        s3_server, bucket, image_size_cap=25 * MiB, s3_store_large_object_chunk_size=5
    )
    image_id = new_id()
    with pytest.raises(errors.SizeLimitExceeded, match="image_size_cap"):
        store.add(image_id, io.BytesIO(random_bytes(30 * MiB, seed=4)))
    assert_nothing_left(s3_server, bucket, image_id)


def test_existing_image_is_refused_before_any_upload(s3_server, bucket):
    store = make_store(s3_server, bucket, s3_store_large_object_size=5)
    image_id = new_id()
    first = store.add(image_id, b"original")

    def never_read() -> Iterator[bytes]:
        raise AssertionError("the data of a refused add must not be read")
        yield b""

    with pytest.raises(errors.AlreadyExists, match=image_id):
        store.add(image_id, never_read(), size=50 * MiB)
    assert read_all(store, first.location) == b"original"
    assert s3_server.pending_uploads(bucket) == []


@pytest.mark.parametrize("checksum", ["auto", "sha256", "md5"])
@pytest.mark.parametrize("damaged_sends", [1, 99])
def test_a_part_damaged_on_the_way_is_refused_by_the_server(
    s3_server, bucket, checksum, damaged_sends
):
    """One byte of a part flips after the client computed its digest: the real server
    refuses the part. The part is sent again from its buffer: once intact, the image is
    whole; damaged on every try, the add fails with ChecksumMismatch and leaves nothing."""
    store = make_store(
        s3_server,
        bucket,
        s3_store_part_checksum=checksum,
        s3_store_large_object_size=5,
        s3_store_large_object_chunk_size=5,
        s3_store_max_attempts=3,
        s3_store_retry_backoff=0.01,
    )
    store.resolve_part_checksum()  # auto: settled before the test hooks into the client
    damaged = []
    lock = threading.Lock()  # parts go up on several threads

    def flip_a_byte(request: Any, **_: Any) -> None:
        if not isinstance(request.body, (bytes, bytearray)):
            return
        with lock:
            if len(damaged) >= damaged_sends:
                return
            damaged.append(request.url)
        body = bytearray(request.body)
        body[len(body) // 2] ^= 0xFF
        request.body = bytes(body)

    store.client.meta.events.register("before-send.s3.UploadPart", flip_a_byte)
    image_id = new_id()
    data = random_bytes(12 * MiB, seed=5)
    if damaged_sends == 1:
        result = store.add(image_id, io.BytesIO(data), size=len(data))
        assert len(damaged) == 1
        assert read_all(store, result.location) == data
        assert s3_server.pending_uploads(bucket) == []
        return
    with pytest.raises(errors.ChecksumMismatch, match="damaged") as caught:
        store.add(image_id, io.BytesIO(data), size=len(data))
    assert len(damaged) >= 3  # every try of the first part at least
    assert caught.value.retry is errors.Retry.EXHAUSTED
    assert_nothing_left(s3_server, bucket, image_id)


def test_auto_part_checksum_is_a_crc_where_the_server_checks_it(s3_server, bucket, caplog):
    """Swift's s3api checks x-amz-checksum-crc32c, radosgw (Pacific) ignores it: auto asks the
    server once, with a wrong CRC-32C, and settles on crc32c or on the signed SHA-256. The
    probe leaves nothing in the bucket, and the image goes in whole either way."""
    store = make_store(
        s3_server, bucket, s3_store_large_object_size=5, s3_store_large_object_chunk_size=5
    )
    assert store.part_checksum == "auto"
    data = random_bytes(12 * MiB, seed=6)
    with caplog.at_level(logging.INFO, logger="glance_store_ng"):
        result = store.add(new_id(), io.BytesIO(data), size=len(data))
    crc = "crc32c" if native.IMPLEMENTATION == "native" else "crc32"
    assert store.part_checksum == (crc if s3_server.name == "swift-s3api" else "sha256")
    assert f"checks x-amz-checksum-{crc}" in caplog.text
    assert read_all(store, result.location) == data
    key = result.location.rsplit("/", 1)[1]
    assert s3_server.listing(bucket, internals=False) == {f"object:{key}"}
    store.delete(result.location)


@pytest.mark.parametrize("crc", ["crc32c", "crc32"])
def test_crc_parts_when_asked_for(s3_server, bucket, crc):
    """An unknown size, many parts, each with its CRC (listed again in the completion)."""
    store = make_store(
        s3_server,
        bucket,
        s3_store_part_checksum=crc,
        s3_store_large_object_size=5,
        s3_store_large_object_chunk_size=5,
    )
    data = random_bytes(11 * MiB + 3, seed=7)
    result = store.add(new_id(), iter([data[i : i + MiB] for i in range(0, len(data), MiB)]))
    assert read_all(store, result.location) == data
    store.delete(result.location)


# -- credentials ------------------------------------------------------------------------------


def test_wrong_secret_is_permission_denied_and_never_shown(s3_server, bucket, caplog):
    caplog.set_level(logging.DEBUG)
    good = make_store(s3_server, bucket)
    stored = good.add(new_id(), b"image bytes")
    wrong_secret = f"wrong-{secrets.token_hex(12)}"
    store = make_store(s3_server, bucket, s3_store_secret_key=wrong_secret)
    calls = {
        "add": lambda: store.add(new_id(), b"data"),
        "multipart add": lambda: store.add(
            new_id(), io.BytesIO(random_bytes(12 * MiB)), size=12 * MiB
        ),
        "get": lambda: read_all(store, stored.location),
        "get_size": lambda: store.get_size(stored.location),
        "delete": lambda: store.delete(stored.location),
    }
    for name, call in calls.items():
        with pytest.raises(errors.PermissionDenied) as caught:
            call()
        message = str(caught.value)
        assert isinstance(caught.value, PermissionError), name
        assert not caught.value.retryable, name
        assert s3_server.access_key in message, name
        assert "s3_store_secret_key" in message, name
        assert wrong_secret not in message and wrong_secret not in repr(caught.value), name
    assert wrong_secret not in repr(store)
    assert wrong_secret not in caplog.text
    assert "try 2 of" not in caplog.text  # a 403 is never retried
    assert read_all(good, stored.location) == b"image bytes"  # the failed delete did nothing


def test_legacy_location_with_credentials_is_read_and_never_shown(s3_server, bucket):
    store = make_store(s3_server, bucket)
    result = store.add(new_id(), b"from an old glance_store")
    host = s3_server.endpoint.split("://", 1)[1]
    secret = s3_server.secret_key
    image_id = result.location.rsplit("/", 1)[1]
    for scheme in ("s3", "s3+http"):
        legacy = f"{scheme}://{s3_server.access_key}:{secret}@{host}/{bucket}/{image_id}"
        assert store.owns(legacy)
        assert store.get_size(legacy) == 24
        assert read_all(store, legacy) == b"from an old glance_store"
        assert secret not in repr(parse_location(legacy))
    missing = f"s3://{s3_server.access_key}:{secret}@{host}/{bucket}/{new_id()}"
    for call in (store.get, store.get_size, store.delete):
        with pytest.raises(errors.NotFound) as caught:
            call(missing)
        assert secret not in str(caught.value)
    assert secret not in result.location


# -- the server goes away ---------------------------------------------------------------------


def test_server_stopped_mid_get_is_a_clear_retryable_error(s3_server, bucket, relay):
    store = make_store(
        s3_server,
        bucket,
        s3_store_host=relay.url,
        s3_store_max_attempts=3,
        s3_store_read_timeout=5,
    )
    data = random_bytes(24 * MiB, seed=7)
    result = store.add(new_id(), data)
    reader = store.get(result.location)
    chunks = iter(reader)
    got = [next(chunks)]
    relay.stop()  # to the driver, the server is gone: connections reset, then refused
    with pytest.raises(errors.BackendUnavailable) as caught:
        got.extend(chunks)
    error = caught.value
    assert isinstance(error, ConnectionError)
    assert error.retryable
    assert error.retry is errors.Retry.EXHAUSTED  # 3 attempts were spent
    assert relay.url in str(error) and "running" in str(error)
    assert s3_server.secret_key not in str(error)
    assert reader.closed
    assert data.startswith(b"".join(got))
    with pytest.raises(errors.BackendUnavailable):
        store.get_size(result.location)


def test_dropped_connections_mid_get_are_resumed(s3_server, bucket, relay):
    # A half-open connection the relay missed is only noticed by the read timeout: keep it short.
    store = make_store(s3_server, bucket, s3_store_host=relay.url, s3_store_read_timeout=5)
    data = random_bytes(24 * MiB, seed=8)
    result = store.add(new_id(), data)
    for offset, length in ((0, None), (3 * MiB + 5, 17 * MiB)):
        end = len(data) if length is None else offset + length
        with store.get(result.location, offset, length) as reader:
            got = bytearray()
            for index, chunk in enumerate(reader):
                got += chunk
                if index in (2, 9):
                    relay.cut()  # the server is still there: the read picks up where it stopped
        assert bytes(got) == data[offset:end]


def test_parts_are_resent_after_dropped_connections(s3_server, bucket, relay):
    store = make_store(
        s3_server,
        bucket,
        s3_store_host=relay.url,
        s3_store_read_timeout=5,
        s3_store_large_object_chunk_size=5,
        s3_store_thread_pools=3,
    )
    cuts = [12 * MiB, 23 * MiB]

    def cut_twice(relay: Relay) -> None:
        if cuts and relay.forwarded > cuts[0]:
            cuts.pop(0)
            relay.cut()

    relay.on_forward = cut_twice
    data = random_bytes(32 * MiB, seed=9)
    source = (data[i : i + MiB] for i in range(0, len(data), MiB))  # read once, never again
    result = store.add(new_id(), source)
    assert not cuts, "the connections were not cut: the test proves nothing"
    assert result.checksum == hashlib.md5(data).hexdigest()
    assert read_all(store, result.location) == data
    assert s3_server.pending_uploads(bucket) == []


# -- buckets ----------------------------------------------------------------------------------


def test_missing_bucket_is_not_found_or_created_on_put(s3_server):
    name = f"gsn-test-{secrets.token_hex(6)}"
    store = make_store(s3_server, name)
    with pytest.raises(errors.NotFound, match="s3_store_create_bucket_on_put"):
        store.add(new_id(), b"data")
    try:
        store = make_store(s3_server, name, s3_store_create_bucket_on_put=True)
        result = store.add(new_id(), b"data")
        assert read_all(store, result.location) == b"data"
        large = store.add(new_id(), io.BytesIO(random_bytes(11 * MiB)), size=None)
        assert store.get_size(large.location) == 11 * MiB
    finally:
        s3_server.remove_bucket(name)


# -- memory -----------------------------------------------------------------------------------


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field)


def test_memory_stays_bounded_by_parts_in_flight():
    """A 200 MiB image of unknown size with 5 MB parts, 3 at once: the add's peak memory
    stays near (3 + 1) x 5 MiB, far below the image size."""
    server = server_named("swift-s3api")  # Ceph's test OSD holds its data in RAM: spare it
    name = server.create_bucket()
    try:
        store = make_store(
            server, name, s3_store_large_object_chunk_size=5, s3_store_thread_pools=3
        )
        block = random_bytes(MiB, seed=10)
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # the peak RSS starts again from the current RSS
        before = _status("VmRSS")
        result = store.add(new_id(), (block for _ in range(200)))
        growth = _status("VmHWM") - before
        assert result.size == 200 * MiB
        assert growth < 80 * MiB, f"peak RSS grew by {growth / MiB:.0f} MiB"
    finally:
        server.remove_bucket(name)


# -- configuration and locations ----------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"s3_store_host": None}, "s3_store_host is required"),
        ({"s3_store_bucket": None}, "s3_store_bucket is required"),
        ({"s3_store_secret_key": None}, "s3_store_secret_key is required"),
        ({"s3_store_host": "ftp://host"}, "s3_store_host"),
        ({"s3_store_large_object_chunk_size": 4}, "minimum"),
        ({"s3_store_thread_pools": 0}, "minimum"),
        ({"s3_store_bucket_url_format": "dns"}, "auto, path, virtual"),
        ({"s3_store_max_attempts": "many"}, "s3_store_max_attempts"),
        ({"s3_store_bukcet": "x"}, "did you mean s3_store_bucket"),
    ],
)
def test_configuration_errors(options, message):
    base = {
        "s3_store_host": "http://127.0.0.1:1",
        "s3_store_access_key": "AKIDEXAMPLE",
        "s3_store_secret_key": "never-shown-secret",
        "s3_store_bucket": "images",
    }
    given = {k: v for k, v in {**base, **options}.items() if v is not None}
    with pytest.raises(errors.ConfigError, match=message) as caught:
        open_store("s3", given)
    assert "never-shown-secret" not in str(caught.value)


def test_locations_written_and_owned():
    store = open_store(
        "s3",
        {
            "s3_store_host": "https://S3.Example.com:443/",
            "s3_store_access_key": "AKIDEXAMPLE",
            "s3_store_secret_key": "never-shown-secret",
            "s3_store_bucket": "images",
        },
    )
    assert store.uri_of("id-1") == "s3+https://s3.example.com/images/id-1"
    assert store.owns("s3+https://s3.example.com/images/id-1")
    assert store.owns("s3+https://AKIDEXAMPLE:x/y@s3.example.com/images/id-1")
    for location in (
        "s3+https://s3.example.com/other-bucket/id-1",
        "s3+https://elsewhere.example.com/images/id-1",
        "s3://https://s3.example.com/images/id-1",
        "s3+https://s3.example.com/images/",
        "s3+https://s3.example.com/images/../id-1",
        "s3+https://s3.example.com/images/id-1?versionId=1",
        "s3+https://s3.example.com/id-1",
        "swift+https://s3.example.com/images/id-1",
    ):
        assert not store.owns(location), location
        with pytest.raises(errors.BadLocation):
            store.get_size(location)
    assert "never-shown-secret" not in repr(store)


def test_plain_host_means_http_as_in_glance_store():
    store = open_store(
        "s3",
        {
            "s3_store_host": "127.0.0.1:8280",
            "s3_store_access_key": "a",
            "s3_store_secret_key": "b",
            "s3_store_bucket": "images",
        },
    )
    assert store.endpoint == "http://127.0.0.1:8280"
    assert store.uri_of("x") == "s3://127.0.0.1:8280/images/x"
