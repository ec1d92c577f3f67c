"""Faults on the line to the real Swift (a relay in front of its storage URL; tokens
are fetched directly): resets while sending and receiving, a slow line, 503s; see
tests/fault_testing.py."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from fault_testing import FAULTS, check_fault, check_overlapping_adds
from swift_testing import objects_under, swift_options

from glance_store_ng import open_store
from glance_store_ng.units import MiB

# 4 MiB of unknown size in 1 MiB segments: a Static Large Object of four.
OPTIONS = {"swift_store_large_object_size": 1, "swift_store_large_object_chunk_size": 1}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_add_and_get_ends_whole_or_with_a_clear_error(
    swift_env, container, admin, fault: str
) -> None:
    storage = urlparse(swift_env["GSN_SWIFT_STORAGE_URL"])
    direct = open_store("swift", swift_options(swift_env, container, **OPTIONS))

    def through(relay):
        endpoint = f"http://127.0.0.1:{relay.port}{storage.path}"
        return open_store(
            "swift",
            swift_options(swift_env, container, swift_store_endpoint=endpoint, **OPTIONS),
        )

    check_fault(
        f"swift: {fault}",
        FAULTS[fault],
        (storage.hostname, storage.port),
        through,
        direct,
        lambda: objects_under(admin, container),
        4 * MiB,
    )
    direct.close()


def test_adds_whose_final_writes_overlap_one_wins(swift_env, container, admin) -> None:
    """Swift checks If-None-Match when a PUT starts: the add's mark decides. The slow final
    write is the streamed PUT of a whole image."""
    storage = urlparse(swift_env["GSN_SWIFT_STORAGE_URL"])
    direct = open_store("swift", swift_options(swift_env, container))

    def through(relay):
        endpoint = f"http://127.0.0.1:{relay.port}{storage.path}"
        return open_store(
            "swift",
            swift_options(swift_env, container, swift_store_endpoint=endpoint),
        )

    loser = check_overlapping_adds(
        (storage.hostname, storage.port),
        through,
        direct,
        lambda: objects_under(admin, container),
        4 * MiB,
    )
    assert "at the same time" in str(loser)  # both PUTs were accepted: the marks decided
    direct.close()
