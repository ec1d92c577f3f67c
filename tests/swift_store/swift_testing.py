"""Helpers of the Swift driver's tests (imported by name: this folder is on sys.path):
the fixture class of the shipped suites, listings and cleanup through swiftclient."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import swiftclient
from keystone_testing import user_context

from glance_store_ng import RequestContext, open_store
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


def keystone_options(
    keystone_env: dict[str, str], container: str, who: str = "GLANCE", **options
) -> dict:
    """A store authenticating through Keystone v3 as user ``who`` (GLANCE, DEMO1, DEMO2,
    GSN: the users tools/backends/keystone makes), its domains given by name, its
    storage URL found in the token's catalog by region."""
    user = f"GSN_KEYSTONE_{who}"
    return {
        "swift_store_auth_address": keystone_env["GSN_KEYSTONE_AUTH_URL"],
        "swift_store_user": f"{keystone_env[user + '_PROJECT']}:{keystone_env[user + '_USER']}",
        "swift_store_key": keystone_env[user + "_PASSWORD"],
        "swift_store_auth_version": "3",
        "swift_store_user_domain_name": keystone_env[user + "_USER_DOMAIN"],
        "swift_store_project_domain_name": keystone_env[user + "_PROJECT_DOMAIN"],
        "swift_store_region": keystone_env["GSN_KEYSTONE_REGION"],
        "swift_store_container": container,
        "swift_store_create_container_on_put": True,
        **options,
    }


def keystone_admin(keystone_env: dict[str, str], who: str = "GLANCE") -> swiftclient.Connection:
    """A plain swiftclient connection to ``who``'s account through Keystone v3."""
    user = f"GSN_KEYSTONE_{who}"
    return swiftclient.Connection(
        keystone_env["GSN_KEYSTONE_AUTH_URL"],
        keystone_env[user + "_USER"],
        keystone_env[user + "_PASSWORD"],
        auth_version="3",
        os_options={
            "project_name": keystone_env[user + "_PROJECT"],
            "user_domain_name": keystone_env[user + "_USER_DOMAIN"],
            "project_domain_name": keystone_env[user + "_PROJECT_DOMAIN"],
            "region_name": keystone_env["GSN_KEYSTONE_REGION"],
        },
        retries=2,
    )


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


class AsUser:
    """A store that passes one user's ``context`` on every call, as an image API serving
    that user does; everything else is the store's."""

    def __init__(self, store: Store, context: RequestContext) -> None:
        self.store = store
        self.context = context

    def add(self, *args: Any, **kwargs: Any) -> Any:
        return self.store.add(*args, context=self.context, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.store.get(*args, context=self.context, **kwargs)

    def get_size(self, *args: Any, **kwargs: Any) -> Any:
        return self.store.get_size(*args, context=self.context, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self.store.delete(*args, context=self.context, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def multi_tenant_options(keystone_env: dict[str, str], container: str, **options) -> dict:
    """A multi-tenant store: no credentials, the user's endpoint found by region."""
    return {
        "swift_store_multi_tenant": True,
        "swift_store_region": keystone_env["GSN_KEYSTONE_REGION"],
        "swift_store_container": container,
        **options,
    }


class KeystoneSwiftFixture(SwiftFixture):
    """Stores on a random container of the Swift that authenticates through the real
    Keystone (v3, single-tenant: the glance user's account in project service)."""

    @pytest.fixture
    def make_store(self, keystone_env) -> Iterator[Callable[..., Store]]:
        admin = keystone_admin(keystone_env)
        container = random_container()
        self._admin, self._keystone_env, self._container = admin, keystone_env, container
        stores: list[Store] = []

        def make(**options) -> Store:
            store = open_store(
                "swift", keystone_options(keystone_env, container, **self.extra_options, **options)
            )
            stores.append(store)
            return store

        yield make
        for store in stores:
            store.close()
        remove_containers(admin, container)
        admin.close()

    def open_store_args(self, **options: Any) -> tuple[str, dict[str, Any]]:
        return "swift", keystone_options(
            self._keystone_env, self._container, **{**self.extra_options, **options}
        )


class MultiTenantSwiftFixture(SwiftFixture):
    """Multi-tenant stores (the Swift behind the real Keystone): every call acts as user
    demo1user of project demo1, with its token; images go to demo1's account."""

    @pytest.fixture
    def make_store(self, keystone_env) -> Iterator[Callable[..., Store]]:
        admin = keystone_admin(keystone_env, "DEMO1")
        container = random_container()
        self._admin, self._container = admin, container
        context = user_context(keystone_env, "DEMO1")
        stores: list[Store] = []

        def make(**options) -> Store:
            store = open_store(
                "swift",
                multi_tenant_options(keystone_env, container, **self.extra_options, **options),
            )
            stores.append(store)
            return AsUser(store, context)  # type: ignore[return-value]

        yield make
        for store in stores:
            store.close()
        remove_containers(admin, container)
        admin.close()
