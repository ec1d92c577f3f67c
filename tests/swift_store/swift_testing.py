"""Helpers of the Swift driver's tests (imported by name: this folder is on sys.path)."""

from __future__ import annotations

import secrets

import swiftclient


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
