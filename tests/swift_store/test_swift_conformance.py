"""The conformance suite against the real Swift all-in-one, in the driver's main configurations."""

from __future__ import annotations

from swift_testing import KeystoneSwiftFixture, MultiTenantSwiftFixture, SwiftFixture

from glance_store_ng.testing import StoreConformance


class TestSwiftConformance(StoreConformance, SwiftFixture):
    """Default options: images of known size up to 5 GiB are streamed in one PUT; those of
    unknown size go up in one PUT up to one segment (32 MiB), else as an SLO."""


class TestSwiftLargeObjectConformance(StoreConformance, SwiftFixture):
    """Every image over 1 MiB is a Static Large Object of 1 MiB segments, sent 3 at a time."""

    extra_options = {
        "swift_store_large_object_size": 1,
        "swift_store_large_object_chunk_size": 1,
        "swift_store_upload_concurrency": 3,
    }


class TestSwiftSeededContainersConformance(StoreConformance, SwiftFixture):
    """Images spread over containers by the first 2 characters of their id."""

    extra_options = {"swift_store_multiple_containers_seed": 2}


class TestSwiftKeystoneConformance(StoreConformance, KeystoneSwiftFixture):
    """Keystone v3, single-tenant: the glance user (domains by name), the storage URL from
    the token's catalog (swift_store_region)."""


class TestSwiftMultiTenantConformance(StoreConformance, MultiTenantSwiftFixture):
    """Keystone v3, multi-tenant: every call with the context of demo1's user, each image in
    a container of its own in demo1's account; over 1 MiB, an SLO of 1 MiB segments."""

    extra_options = {"swift_store_large_object_size": 1, "swift_store_large_object_chunk_size": 1}
