"""Helpers of the Swift driver's tests (imported by name: this folder is on sys.path):
the fixture class of the shipped suites, listings and cleanup through swiftclient."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any

import pytest
import swiftclient

from glance_store_ng.store import Orphan, Store
from glance_store_ng.testing import StoreFixture
from glance_store_ng.units import MiB


def random_container() -> str:
    return f"gsn-test-{secrets.token_hex(6)}"


def containers_under(admin: swiftclient.Connection, prefix: str) -> list[str]:
    _, listing = admin.get_account(prefix=prefix, full_listing=True)
    return [c["name"] for c in listing]


def objects_under(admin: swiftclient.Connection, prefix: str) -> set[str]:
    """Every ``container/object`` in the containers whose name starts with ``prefix``."""
    found = set()
    for container in containers_under(admin, prefix):
        _, objects = admin.get_container(container, full_listing=True)
        found.update(f"{container}/{o['name']}" for o in objects)
    return found


def remove_containers(admin: swiftclient.Connection, prefix: str) -> None:
    for container in containers_under(admin, prefix):
        _, objects = admin.get_container(container, full_listing=True)
        for obj in objects:
            try:
                admin.delete_object(container, obj["name"])
            except swiftclient.ClientException as exc:
                if exc.http_status != 404:
                    raise
        admin.delete_container(container)


def swift_options(swift_env: dict[str, str], container: str, **options) -> dict:
    return {
        "swift_store_auth_address": swift_env["GSN_SWIFT_AUTH_URL"],
        "swift_store_user": swift_env["GSN_SWIFT_USER"],
        "swift_store_key": swift_env["GSN_SWIFT_KEY"],
        "swift_store_auth_version": "1",
        "swift_store_container": container,
        "swift_store_create_container_on_put": True,
        **options,
    }


class SwiftFixture(StoreFixture):
    """Stores on a random container of the real Swift all-in-one."""

    #: Options every store of the class gets (a subclass changes them).
    extra_options: dict = {}
    # Killed adds: an image of unknown size goes up as an SLO of 1 MiB segments; of the
    # 3 MiB sent, the first two segments are written, the third waits for the image's end.
    orphan_options = {"swift_store_large_object_size": 1, "swift_store_large_object_chunk_size": 1}
    orphan_written = 2 * MiB

    @pytest.fixture
    def make_store(self, swift_store, admin, swift_env, container) -> Callable[..., Store]:
        self._admin, self._env, self._container = admin, swift_env, container

        def make(**options) -> Store:
            return swift_store(**{**self.extra_options, **options})

        return make

    def open_store_args(self, **options: Any) -> tuple[str, dict[str, Any]]:
        return "swift", swift_options(
            self._env, self._container, **{**self.extra_options, **options}
        )

    def backend_listing(self, store: Store) -> set[str]:
        """Every object of the store's containers: images, manifests, segments."""
        return objects_under(self._admin, store.container)

    def damage(self, store: Store, location: str, offset: int) -> None:
        """The object overwritten with other bytes (one bit flipped), by a plain PUT; a large
        object's manifest and segments are deleted first, as an overwriting user would."""
        container, name = location.split("/")[-2:]
        headers, body = self._admin.get_object(container, name)
        damaged = bytearray(body)
        damaged[offset] ^= 0x10
        if headers.get("x-static-large-object"):
            self._admin.delete_object(container, name, query_string="multipart-manifest=delete")
        self._admin.put_object(container, name, bytes(damaged))

    commit_kill_point = ("glance_store_ng.drivers.swift.orphans:AddMark.remove", "before")

    def orphan_of(self, store: Store, image_id: str) -> Orphan | None:
        """The segments of the add's upload, ``<container>_segments/<image id>/<token>/...``,
        as one orphan named by that prefix; None if there are none or the manifest lists them."""
        segments = f"{store.container}_segments"
        try:
            _, objects = self._admin.get_container(
                segments, prefix=f"{image_id}/", full_listing=True
            )
        except swiftclient.ClientException as exc:
            if exc.http_status == 404:
                return None
            raise
        if not objects:
            return None
        prefix = os.path.commonprefix([o["name"] for o in objects])
        prefix = prefix[: prefix.rindex("/") + 1]
        assert prefix.count("/") == 2, f"more than one upload of {image_id}: {objects}"
        try:
            _, manifest = self._admin.get_object(
                store.container, image_id, query_string="multipart-manifest=get"
            )
        except swiftclient.ClientException as exc:
            if exc.http_status != 404:
                raise
        else:
            if f"/{segments}/{prefix}".encode() in manifest:
                return None  # the add completed: its segments are the image's
        return Orphan(f"{segments}/{prefix}", sum(o["bytes"] for o in objects), 0.0)
