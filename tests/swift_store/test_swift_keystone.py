"""The Swift driver with Keystone v3 (single-tenant), against the real Keystone and the
Swift that authenticates through it (tools/backends/keystone, swift --auth keystone):
domains by name and by id, inline and in reference files; one token per token lifetime;
errors that name the option to fix and never show a password or a token."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from keystone_testing import revoke
from swift_testing import (
    keystone_admin,
    keystone_options,
    objects_under,
    random_container,
    remove_containers,
)

from glance_store_ng import errors, open_store
from glance_store_ng.bench.reference import open_reference
from glance_store_ng.testing.conformance import new_id, random_bytes

#: Every fernet token starts so (base64 of its version byte, 0x80, and a timestamp).
FERNET_TOKEN_START = "gAAAAA"


@pytest.fixture
def container(keystone_env) -> Iterator[str]:
    """A random container name; removed from every test user's account after the test."""
    name = random_container()
    yield name
    for who in ("GLANCE", "GSN", "DEMO1"):
        admin = keystone_admin(keystone_env, who)
        remove_containers(admin, name)
        admin.close()


@pytest.fixture
def token_requests(monkeypatch) -> Callable[[], int]:
    """How many tokens this process has asked Keystone for since the fixture began
    (every v3 password authentication goes through keystoneauth1's get_auth_ref)."""
    from keystoneauth1.identity import v3

    asked = []
    original = v3.Password.get_auth_ref

    def counted(self, *args, **kwargs):
        asked.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(v3.Password, "get_auth_ref", counted)
    return lambda: len(asked)


def closed_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def round_trip(store) -> None:
    data = random_bytes(300_000, seed=3)
    result = store.add(new_id(), io.BytesIO(data), len(data))
    with store.get(result.location, verify=result) as reader:
        assert reader.read() == data
    store.delete(result.location)
    with pytest.raises(errors.NotFound):
        store.get_size(result.location)


@pytest.mark.parametrize("by", ["name", "id"])
def test_a_user_of_another_domain_by_inline_options(keystone_env, container, by) -> None:
    options = keystone_options(keystone_env, container, "GSN")
    del options["swift_store_user_domain_name"], options["swift_store_project_domain_name"]
    suffix = "" if by == "name" else "_ID"
    options["swift_store_user_domain_" + by] = keystone_env["GSN_KEYSTONE_GSN_USER_DOMAIN" + suffix]
    options["swift_store_project_domain_" + by] = keystone_env[
        "GSN_KEYSTONE_GSN_PROJECT_DOMAIN" + suffix
    ]
    with open_store("swift", options) as store:
        round_trip(store)


def test_a_user_of_another_domain_by_reference_file(keystone_env, container, tmp_path) -> None:
    env = keystone_env
    (tmp_path / "swift.conf").write_text(
        "[ref1]\n"
        f"auth_address = {env['GSN_KEYSTONE_AUTH_URL']}\n"
        f"user = {env['GSN_KEYSTONE_GSN_PROJECT']}:{env['GSN_KEYSTONE_GSN_USER']}\n"
        f"key = {env['GSN_KEYSTONE_GSN_PASSWORD']}\n"
        "auth_version = 3\n"
        f"user_domain_name = {env['GSN_KEYSTONE_GSN_USER_DOMAIN']}\n"
        f"project_domain_id = {env['GSN_KEYSTONE_GSN_PROJECT_DOMAIN_ID']}\n"
    )
    options = {
        "swift_store_config_file": str(tmp_path / "swift.conf"),
        "swift_store_region": env["GSN_KEYSTONE_REGION"],
        "swift_store_container": container,
        "swift_store_create_container_on_put": True,
    }
    with open_store("swift", options) as store:
        round_trip(store)


def test_one_token_for_many_adds_from_many_threads(keystone_env, container, token_requests) -> None:
    """A store asks Keystone for one token, then shares it among its threads."""
    with open_store("swift", keystone_options(keystone_env, container)) as store:
        before = token_requests()
        errors_seen: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(3):
                    round_trip(store)
            except BaseException as exc:
                errors_seen.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors_seen, errors_seen
        assert token_requests() - before == 1


def test_another_project_does_not_see_the_image(keystone_env, container) -> None:
    """Single-tenant stores of two projects: each one's locations name its own account."""
    data = random_bytes(1000, seed=4)
    with open_store("swift", keystone_options(keystone_env, container, "DEMO1")) as demo1:
        result = demo1.add(new_id(), io.BytesIO(data), len(data))
        demo2 = open_store("swift", keystone_options(keystone_env, container, "DEMO2"))
        with demo2, pytest.raises(errors.NotFound):
            demo2.get_size(result.location)
        demo1.delete(result.location)


@pytest.mark.parametrize(
    "change, error, names",
    [
        ({"swift_store_key": "wrong-password"}, errors.PermissionDenied, "swift_store_key"),
        ({"swift_store_user": "no-such-project:glance"}, errors.PermissionDenied, "project"),
        (
            {"swift_store_user_domain_name": "no-such-domain"},
            errors.PermissionDenied,
            "swift_store_*_domain_*",
        ),
        ({"swift_store_region": "NoSuchRegion"}, errors.ConfigError, "swift_store_region"),
        (
            {"swift_store_auth_address": f"http://127.0.0.1:{closed_port()}/v3"},
            errors.BackendUnavailable,
            "auth address",
        ),
        ({"swift_store_auth_address": "{keystone}/v2"}, errors.ConfigError, "v3 URL"),
    ],
    ids=[
        "wrong password",
        "unknown project",
        "unknown domain",
        "no endpoint",
        "Keystone down",
        "not the v3 URL",
    ],
)
def test_errors_name_the_option_and_show_no_secret(
    keystone_env, container, caplog, change, error, names
) -> None:
    options = {**keystone_options(keystone_env, container), **change}
    keystone = keystone_env["GSN_KEYSTONE_AUTH_URL"].removesuffix("/v3")
    address = options["swift_store_auth_address"].replace("{keystone}", keystone)
    options["swift_store_auth_address"] = address
    caplog.set_level(logging.DEBUG)
    with open_store("swift", options) as store:
        with pytest.raises(error) as caught:
            store.add(new_id(), io.BytesIO(b"x" * 100), 100)
        shown = f"{caught.value} {store!r} {caplog.text}"
    assert names in str(caught.value)
    assert keystone_env["GSN_KEYSTONE_GLANCE_PASSWORD"] not in shown
    assert "wrong-password" not in shown
    assert FERNET_TOKEN_START not in shown


def test_a_user_without_its_project_is_refused_when_the_store_opens(
    keystone_env, container
) -> None:
    options = keystone_options(keystone_env, container)
    options["swift_store_user"] = keystone_env["GSN_KEYSTONE_GLANCE_USER"]
    with pytest.raises(errors.ConfigError, match="project:user"):
        open_store("swift", options)


# -- interop with glance_store 5.7.0, both through the real Keystone -----------------------


@pytest.fixture
def shared_reference(keystone_env, container, tmp_path) -> dict:
    """Both drivers' options: the glance user in a reference file (swift+config://ref1/...),
    as glance_store reads it, domains by name."""
    env = keystone_env
    (tmp_path / "glance-swift.conf").write_text(
        "[ref1]\n"
        f"auth_address = {env['GSN_KEYSTONE_AUTH_URL']}\n"
        f"user = {env['GSN_KEYSTONE_GLANCE_PROJECT']}:{env['GSN_KEYSTONE_GLANCE_USER']}\n"
        f"key = {env['GSN_KEYSTONE_GLANCE_PASSWORD']}\n"
        "auth_version = 3\n"
        f"user_domain_name = {env['GSN_KEYSTONE_GLANCE_USER_DOMAIN']}\n"
        f"project_domain_name = {env['GSN_KEYSTONE_GLANCE_PROJECT_DOMAIN']}\n"
    )
    return {
        "swift_store_config_file": str(tmp_path / "glance-swift.conf"),
        "default_swift_reference": "ref1",
        "swift_store_region": env["GSN_KEYSTONE_REGION"],
        "swift_store_container": container,
        "swift_store_create_container_on_put": True,
    }


def test_glance_store_and_ours_read_and_delete_each_others_images(
    keystone_env, container, shared_reference
) -> None:
    data = random_bytes(200_000, seed=5)
    admin = keystone_admin(keystone_env)
    with (
        open_reference("swift", shared_reference) as theirs,
        open_store("swift", shared_reference) as ours,
    ):
        uri, size, checksum, _ = theirs.add(new_id(), io.BytesIO(data), len(data))
        assert uri.startswith(f"swift+config://ref1/{container}/")
        with ours.get(uri) as reader:
            assert reader.read() == data
        ours.delete(uri)

        result = ours.add(new_id(), io.BytesIO(data), len(data))
        assert result.location.startswith(f"swift+config://ref1/{container}/")
        with theirs.get(result.location) as chunks:
            assert b"".join(chunks) == data
        theirs.delete(result.location)
    assert objects_under(admin, container) == set()
    admin.close()


def test_glance_store_inline_credentials_location_reads_and_deletes_through_ours(
    keystone_env, container
) -> None:
    """glance_store with inline options writes the user and key into its locations
    (``swift+http://service%3Aglance:KEY@host/v3/<container>/<id>``): ours reads and
    deletes such images with its own credentials, and never shows the key."""
    env = keystone_env
    data = random_bytes(5000, seed=6)
    with open_store("swift", keystone_options(env, container)) as ours:
        result = ours.add(new_id(), io.BytesIO(data), len(data))
        user = quote(f"{env['GSN_KEYSTONE_GLANCE_PROJECT']}:{env['GSN_KEYSTONE_GLANCE_USER']}")
        address = env["GSN_KEYSTONE_AUTH_URL"].removeprefix("http://")
        legacy = result.location.replace(
            f"swift+http://{address}",
            f"swift+http://{user}:{env['GSN_KEYSTONE_GLANCE_PASSWORD']}@{address}",
        )
        assert legacy != result.location
        with ours.get(legacy) as reader:
            assert reader.read() == data
        ours.delete(legacy)
        with pytest.raises(errors.NotFound) as caught:
            ours.get_size(result.location)
        assert env["GSN_KEYSTONE_GLANCE_PASSWORD"] not in str(caught.value)


def test_a_token_swift_refuses_is_renewed_once_and_the_add_succeeds(
    keystone_env, container, token_requests
) -> None:
    """The store's token is revoked in Keystone before Swift ever saw it (so no cache of
    Swift's still holds it as valid): Swift answers 401, the store asks Keystone for a new
    token once, and the add goes through."""
    with open_store("swift", keystone_options(keystone_env, container)) as store:
        _, token = store.account.auth()  # the store's token, not yet shown to Swift
        before = token_requests()
        revoke(keystone_env, token)
        round_trip(store)
        assert token_requests() - before == 1


def test_tokens_are_renewed_before_they_expire_during_a_long_add(
    keystone_env, container, token_requests, monkeypatch
) -> None:
    """Through the Keystone instance whose tokens live 125 s, so that the store renews
    each one 5 s after it was issued (with less than 2 minutes left): an SLO add whose
    source takes 13 s sends its later segments with new tokens, asked for before the old
    ones expire. Swift refuses none (no 401), and the image is whole."""
    from glance_store_ng.drivers.swift.account import Account

    refused = []
    auth = Account.auth

    def counted(self, stale_token=None):
        if stale_token is not None:
            refused.append(stale_token)
        return auth(self, stale_token)

    monkeypatch.setattr(Account, "auth", counted)
    options = keystone_options(
        keystone_env,
        container,
        swift_store_auth_address=keystone_env["GSN_KEYSTONE_SHORT_AUTH_URL"],
        swift_store_large_object_size=1,
        swift_store_large_object_chunk_size=1,
        swift_store_upload_concurrency=1,
    )
    data = random_bytes(6 * 1024 * 1024, seed=8)

    def slow() -> Iterator[bytes]:
        for offset in range(0, len(data), 1024 * 1024):
            time.sleep(2.2)
            yield data[offset : offset + 1024 * 1024]

    with open_store("swift", options) as store:
        result = store.add(new_id(), slow())
        assert token_requests() >= 3
        assert refused == []
        with store.get(result.location, verify=result) as reader:
            assert reader.read() == data
        store.delete(result.location)
