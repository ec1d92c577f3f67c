"""Our drivers inside a real, unmodified Glance 33: gsng_file, gsng_s3, gsng_swift, gsng_rbd.

One Glance runs all four (on the real Swift, its s3api and Ceph the other tests
use) beside glance_store's own ``file`` driver (``builtin``, the default). On
each of ours, through python-glanceclient and raw HTTP: chunked and known-size
uploads, downloads and ranged downloads equal to the bytes, ``checksum`` and
``os_hash_value`` equal to hashlib's, ``stores``, delete with the data gone from
the backend (seen through our own store with the same options); copy-image from
glance_store's backend to ours and back; glance-direct and web-download imports.
Then the migration: a backend written by glance_store's driver, its type switched
to ours, keeps its images readable and deletable (file, S3, RBD).
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import real_backends
from glance_testing import (
    SIZE,
    Backend,
    GlanceConfig,
    GlanceServer,
    GlanceServers,
    assert_image,
    file_backend,
    glance_install,
    payload,
    serve_bytes,
)
from glanceclient.exc import HTTPConflict

from glance_store_ng import errors, open_store
from glance_store_ng.store import Store
from glance_store_ng.units import MiB

OURS = ("fast", "objects", "swift", "ceph")


@dataclass
class OurBackend:
    """A backend of ours in the Glance: its section, and our store on the same options."""

    name: str
    driver: str
    options: dict[str, Any]
    store: Store
    suffix: str = ""  # after the image id in a location (RBD: /snap)

    def location(self, image_id: str) -> str:
        return f"{self.store.location_prefix}{image_id}{self.suffix}"

    def holds(self, image_id: str) -> bytes | None:
        """The bytes the backend holds for ``image_id`` (None: nothing), read by our store."""
        try:
            with self.store.get(self.location(image_id)) as reader:
                return b"".join(reader)
        except errors.NotFound:
            return None


def our_backends(root: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (our driver, options) on the project's real test servers, random roots."""
    swift = real_backends.swift_env()
    ceph = real_backends.ceph_env(rbd=True)
    run = secrets.token_hex(4)
    return {
        "fast": ("file", {"filesystem_store_datadir": str(root / "fast")}),
        "objects": (
            "s3",
            {
                "s3_store_host": swift["GSN_S3_ENDPOINT"],
                "s3_store_access_key": swift["GSN_S3_ACCESS_KEY"],
                "s3_store_secret_key": swift["GSN_S3_SECRET_KEY"],
                "s3_store_bucket": f"gsn-glance-{run}",
                "s3_store_create_bucket_on_put": "true",
                "s3_store_large_object_size": "5",  # multipart uploads at this size
                "s3_store_large_object_chunk_size": "5",
            },
        ),
        "swift": (
            "swift",
            {
                "swift_store_auth_address": swift["GSN_SWIFT_AUTH_URL"],
                "swift_store_user": swift["GSN_SWIFT_USER"],
                "swift_store_key": swift["GSN_SWIFT_KEY"],
                "swift_store_auth_version": "1",
                "swift_store_container": f"gsn-glance-{run}",
                "swift_store_create_container_on_put": "true",
                "swift_store_large_object_size": "2",  # SLOs for known sizes over 2 MiB
                "swift_store_large_object_chunk_size": "1",
            },
        ),
        "ceph": (
            "rbd",
            {
                "rbd_store_ceph_conf": ceph["GSN_CEPH_CONF"],
                "rbd_store_user": ceph["GSN_CEPH_USER"],
                "rbd_store_pool": ceph["GSN_CEPH_POOL"],
            },
        ),
    }


@pytest.fixture(scope="session")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, OurBackend]]:
    root = tmp_path_factory.mktemp("glance-ours")
    made = {}
    for name, (driver, options) in our_backends(root).items():
        store = open_store(driver, options)
        made[name] = OurBackend(name, driver, options, store, "/snap" if driver == "rbd" else "")
    yield made
    for backend in made.values():
        backend.store.close()


@pytest.fixture(scope="session")
def glance(
    glance_servers: GlanceServers, ours: dict[str, OurBackend], tmp_path_factory
) -> GlanceServer:
    """A Glance with glance_store's ``file`` (``builtin``, default) and our four drivers."""
    glance_install(ceph=True)  # Ceph's bindings in the Glance venv, for gsng_rbd
    backends = {"builtin": file_backend(tmp_path_factory.mktemp("glance-builtin"))}
    for name, backend in ours.items():
        backends[name] = Backend(f"gsng_{backend.driver}", backend.options)
    return glance_servers.start("ours", GlanceConfig(backends=backends, default_backend="builtin"))


def new_image(glance: GlanceServer, name: str) -> str:
    return glance.create_image(name)["id"]


def copy_image(client: Any, image_id: str, stores: list[str], timeout: float = 60) -> None:
    """Start a copy-image import once the image's previous task has ended (409 until then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.images.image_import(image_id, method="copy-image", stores=stores)
        except HTTPConflict:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("backend", OURS)
def test_known_size_upload_download_delete(glance, ours, backend):
    data = payload(10 + OURS.index(backend))
    image_id = new_image(glance, f"known-{backend}")

    glance.upload(image_id, io.BytesIO(data), size=len(data), store=backend)

    assert_image(glance.image(image_id), data, {backend})
    assert ours[backend].holds(image_id) == data
    assert glance.download(image_id) == data
    assert glance.download(image_id, MiB - 3, MiB + 6) == data[MiB - 3 : 2 * MiB + 3]
    assert glance.download(image_id, SIZE - 10) == data[-10:]

    glance.client().images.delete(image_id)
    assert glance.request("GET", f"/v2/images/{image_id}").status == 404
    assert ours[backend].holds(image_id) is None


@pytest.mark.parametrize("backend", OURS)
def test_chunked_upload_through_glanceclient(glance, ours, backend):
    data = payload(20 + OURS.index(backend))
    client = glance.client()
    image_id = new_image(glance, f"chunked-{backend}")

    client.images.upload(image_id, io.BytesIO(data), backend=backend)  # no size: chunked

    assert_image(client.images.get(image_id), data, {backend})
    assert b"".join(client.images.data(image_id)) == data
    assert ours[backend].holds(image_id) == data
    client.images.delete(image_id)
    assert ours[backend].holds(image_id) is None


@pytest.mark.parametrize("backend", OURS)
def test_copy_image_from_glance_store_to_ours_and_back(glance, ours, backend):
    data = payload(30 + OURS.index(backend))
    client = glance.client()
    image_id = new_image(glance, f"copy-{backend}")
    glance.upload(image_id, data, store="builtin")

    copy_image(client, image_id, [backend])
    assert_image(glance.wait_for_stores(image_id, {"builtin", backend}), data, {"builtin", backend})
    assert ours[backend].holds(image_id) == data

    # Only ours left: the download and a copy back to glance_store's backend read from ours.
    glance.expect(glance.request("DELETE", f"/v2/stores/builtin/{image_id}"), 204, "delete")
    assert glance.download(image_id) == data
    copy_image(client, image_id, ["builtin"])
    assert_image(glance.wait_for_stores(image_id, {"builtin", backend}), data, {"builtin", backend})

    client.images.delete(image_id)
    assert ours[backend].holds(image_id) is None


@pytest.mark.parametrize("backend", OURS)
def test_glance_direct_and_web_download_imports(glance, ours, backend):
    client = glance.client()
    staged, fetched = payload(40 + OURS.index(backend)), payload(50 + OURS.index(backend))

    direct = new_image(glance, f"direct-{backend}")
    client.images.stage(direct, io.BytesIO(staged))
    client.images.image_import(direct, method="glance-direct", stores=[backend])
    assert_image(glance.wait_for_stores(direct, {backend}), staged, {backend})
    assert ours[backend].holds(direct) == staged

    web = new_image(glance, f"web-{backend}")
    with serve_bytes(fetched) as url:
        client.images.image_import(web, method="web-download", uri=url, stores=[backend])
        assert_image(glance.wait_for_stores(web, {backend}), fetched, {backend})
    assert glance.download(web) == fetched

    for image_id in (direct, web):
        client.images.delete(image_id)
        assert ours[backend].holds(image_id) is None


@pytest.mark.parametrize("backend", ["fast", "objects", "ceph"])
def test_migration_a_backend_switched_from_glance_store_to_ours(
    glance_servers, ours, tmp_path_factory, backend
):
    """A backend glance_store's driver wrote keeps its images once its type is ours."""
    ours_backend = ours[backend]
    builtin_type = {"file": "file", "s3": "s3", "rbd": "rbd"}[ours_backend.driver]
    options = dict(ours_backend.options)
    if builtin_type == "file":
        options["filesystem_store_datadir"] = str(tmp_path_factory.mktemp(f"mig-{backend}"))
    if builtin_type == "s3":
        options.pop("s3_store_large_object_size")  # glance_store: the same meaning, kept
    staging = tmp_path_factory.mktemp(f"mig-{backend}-default")
    before = GlanceConfig(
        backends={"default": file_backend(staging), "old": Backend(builtin_type, options)},
        default_backend="default",
    )
    glance = glance_servers.start(f"migration-{backend}", before)
    data = payload(70 + OURS.index(backend))
    image_id = new_image(glance, f"migrated-{backend}")
    glance.upload(image_id, io.BytesIO(data), size=len(data), store="old")
    assert_image(glance.image(image_id), data, {"old"})

    after = GlanceConfig(
        backends={
            "default": file_backend(staging),
            "old": Backend(f"gsng_{builtin_type}", options),
        },
        default_backend="default",
    )
    glance.restart(after)

    assert_image(glance.image(image_id), data, {"old"})
    assert glance.download(image_id) == data
    assert glance.download(image_id, 7, 1000) == data[7:1007]
    location = glance_store_location(glance, ours_backend, options, image_id)
    with open_store(ours_backend.driver, options) as store:
        assert store.get_size(location) == len(data)
        glance.client().images.delete(image_id)
        with pytest.raises(errors.NotFound):
            store.get_size(location)
    glance.stop()


def glance_store_location(
    glance: GlanceServer, backend: OurBackend, options: dict[str, Any], image_id: str
) -> str:
    """Where glance_store's driver put ``image_id`` (the URI forms it writes)."""
    with open_store(backend.driver, options) as store:
        return f"{store.location_prefix}{image_id}{backend.suffix}"
