"""Faults on the line to each real S3 server (a relay in front of it): resets while
sending and receiving, a slow line, 503 SlowDown; see tests/fault_testing.py."""

from __future__ import annotations

import pytest
from fault_testing import FAULTS, check_fault, check_overlapping_adds
from s3_testing import S3Server

from glance_store_ng import open_store
from glance_store_ng.units import MiB

# 12 MiB of unknown size in 5 MiB parts: a multipart upload of three parts.
OPTIONS = {"s3_store_large_object_chunk_size": 5, "s3_store_read_timeout": 10}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_add_and_get_ends_whole_or_with_a_clear_error(
    s3_server: S3Server, bucket: str, fault: str
) -> None:
    direct = open_store("s3", s3_server.options(bucket, **OPTIONS))
    check_fault(
        f"{s3_server.name}: {fault}",
        FAULTS[fault],
        s3_server.endpoint,
        lambda relay: open_store(
            "s3", s3_server.options(bucket, s3_store_host=relay.url, **OPTIONS)
        ),
        direct,
        lambda: s3_server.listing(bucket),
        12 * MiB,
    )
    direct.close()


def test_adds_whose_final_writes_overlap_one_wins(s3_server: S3Server, bucket: str) -> None:
    """Swift's s3api checks If-None-Match when a PUT starts: the add's mark decides;
    radosgw refuses the second PUT."""
    direct = open_store("s3", s3_server.options(bucket, **OPTIONS))
    loser = check_overlapping_adds(
        s3_server.endpoint,
        lambda relay: open_store(
            "s3", s3_server.options(bucket, s3_store_host=relay.url, **OPTIONS)
        ),
        direct,
        lambda: s3_server.listing(bucket),
        4 * MiB,  # one PUT: under a part
    )
    if s3_server.name == "swift-s3api":  # both PUTs were accepted: the marks decided
        assert "at the same time" in str(loser)
    direct.close()
