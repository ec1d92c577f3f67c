"""A GET the network cuts mid-stream resumes from the last byte received.

A TCP relay (tests/tcp_relay.py) sits between the driver and the real Swift
proxy (the store's ``swift_store_endpoint`` points at it) and drops the
connection after a given number of bytes for its first connections. Stopping
the shared Swift proxy instead would disturb every other user of the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from swift_testing import swift_options
from tcp_relay import Relay

from glance_store_ng import errors, open_store
from glance_store_ng.testing.conformance import new_id, random_bytes
from glance_store_ng.units import MiB


@pytest.fixture
def relay_store(swift_env, container) -> Iterator:
    """``relay_store(cuts, **options)``: a store whose data requests go through a Relay
    that cuts its connection n after ``cuts[n]`` bytes of answers (and closes it with a FIN)."""
    made = []
    storage = urlparse(swift_env["GSN_SWIFT_STORAGE_URL"])

    def make(cuts: list[int], **options):
        relay = Relay((storage.hostname, storage.port), cuts, graceful=True)
        endpoint = f"http://127.0.0.1:{relay.port}{storage.path}"
        store = open_store(
            "swift", swift_options(swift_env, container, swift_store_endpoint=endpoint, **options)
        )
        made.append((store, relay))
        return store, relay

    yield make
    for store, relay in made:
        store.close()
        relay.stop()


def read_all(store, location, offset=0, length=None) -> bytes:
    with store.get(location, offset, length) as reader:
        return b"".join(reader)


def test_cut_get_resumes_and_returns_the_right_bytes(swift_store, relay_store):
    data = random_bytes(3 * MiB + 17, seed=21)
    result = swift_store().add(new_id(), data)
    store, relay = relay_store([300_000, 1_500_000], swift_store_retry_get_count=3)
    assert read_all(store, result.location) == data
    assert relay.cut_count == 2


def test_cut_ranged_get_of_a_large_object_resumes(swift_store, relay_store):
    data = random_bytes(5 * MiB, seed=22)
    writer = swift_store(swift_store_large_object_size=1, swift_store_large_object_chunk_size=1)
    result = writer.add(new_id(), data)
    store, relay = relay_store([700_000], swift_store_retry_get_count=1)
    offset, length = MiB - 100, 3 * MiB
    assert read_all(store, result.location, offset, length) == data[offset : offset + length]
    assert relay.cut_count == 1


def test_cuts_beyond_the_retry_count_fail_clearly(swift_store, relay_store):
    data = random_bytes(2 * MiB, seed=23)
    result = swift_store().add(new_id(), data)
    store, relay = relay_store([200_000, 400_000, 600_000], swift_store_retry_get_count=2)
    with pytest.raises(errors.BackendUnavailable, match="swift_store_retry_get_count") as caught:
        read_all(store, result.location)
    assert caught.value.retry is errors.Retry.EXHAUSTED
    assert relay.cut_count == 3
