"""The Swift driver in multi-tenant mode, against the real Keystone and the Swift that
authenticates through it: each call acts as the requesting user (their token, their
catalog), each image in a container of its own in their account; projects do not see each
other's images unless shared (admin tenants, set_acls); interop with glance_store's
MultiTenantStore both ways; errors that name the fix and never show the token."""

from __future__ import annotations

import io
import logging
import types
from collections.abc import Iterator

import pytest
from keystone_testing import revoke, user_context
from swift_testing import (
    containers_under,
    keystone_admin,
    multi_tenant_options,
    random_container,
    remove_containers,
)

from glance_store_ng import RequestContext, errors, open_store
from glance_store_ng.context import using_context
from glance_store_ng.testing.conformance import new_id, random_bytes

#: Every fernet token starts so (base64 of its version byte, 0x80, and a timestamp).
FERNET_TOKEN_START = "gAAAAA"
#: Over 1 MiB, images are SLOs of 1 MiB segments (in the image's own container).
SMALL_SEGMENTS = {"swift_store_large_object_size": 1, "swift_store_large_object_chunk_size": 1}


@pytest.fixture
def container(keystone_env) -> Iterator[str]:
    """A random container name; its containers leave both demo accounts after the test."""
    name = random_container()
    yield name
    for who in ("DEMO1", "DEMO2"):
        admin = keystone_admin(keystone_env, who)
        remove_containers(admin, name)
        admin.close()


@pytest.fixture
def demo1(keystone_env) -> RequestContext:
    return user_context(keystone_env, "DEMO1")


@pytest.fixture
def demo2(keystone_env) -> RequestContext:
    return user_context(keystone_env, "DEMO2")


def readable_by(store, location: str, context: RequestContext) -> bytes | None:
    """The image's bytes as ``context``'s user reads them; None when Swift refuses them
    (keystoneauth: 403, not 404, so the request did reach the owner's image)."""
    try:
        with store.get(location, context=context) as reader:
            return reader.read()
    except errors.PermissionDenied:
        return None


@pytest.mark.parametrize("form", ["v3", "v2"])
def test_the_image_is_in_the_users_account_in_a_container_of_its_own(
    keystone_env, container, form
) -> None:
    """The catalog in either form (v2 is what Glance passes); the location is glance_store's
    multi-tenant form; the SLO's segments are in the image's container, and delete
    removes that container too."""
    context = user_context(keystone_env, "DEMO1", form)
    data = random_bytes(3 * 1024 * 1024 + 5, seed=1)  # an SLO of 4 segments
    image_id = new_id()
    admin = keystone_admin(keystone_env, "DEMO1")
    options = multi_tenant_options(keystone_env, container, **SMALL_SEGMENTS)
    with open_store("swift", options) as store:
        result = store.add(image_id, io.BytesIO(data), context=context)
        storage_url = admin.get_auth()[0]
        assert result.location == (
            f"swift+http://{storage_url.removeprefix('http://')}/{container}_{image_id}/{image_id}"
        )
        assert containers_under(admin, container) == [f"{container}_{image_id}"]
        with store.get(result.location, verify=result, context=context) as reader:
            assert reader.read() == data
        assert store.get_size(result.location, context=context) == len(data)
        store.delete(result.location, context=context)
        assert containers_under(admin, container) == []
    admin.close()


def test_another_project_cannot_read_or_delete_the_image(
    keystone_env, container, demo1, demo2
) -> None:
    data = random_bytes(100_000, seed=2)
    with open_store("swift", multi_tenant_options(keystone_env, container)) as store:
        result = store.add(new_id(), io.BytesIO(data), len(data), context=demo1)
        assert readable_by(store, result.location, demo2) is None
        with pytest.raises(errors.PermissionDenied):
            store.get_size(result.location, context=demo2)
        with pytest.raises(errors.PermissionDenied) as caught:
            store.delete(result.location, context=demo2)
        assert "requesting user's project" in str(caught.value)
        assert readable_by(store, result.location, demo1) == data
        store.delete(result.location, context=demo1)


def test_admin_tenants_read_and_write_every_image(keystone_env, container, demo1, demo2) -> None:
    """swift_store_admin_tenants (here demo2's project) read an SLO of demo1's (its
    segments too) and may delete it."""
    data = random_bytes(2 * 1024 * 1024 + 1, seed=3)
    options = multi_tenant_options(
        keystone_env,
        container,
        swift_store_admin_tenants=keystone_env["GSN_KEYSTONE_DEMO2_PROJECT_ID"],
        **SMALL_SEGMENTS,
    )
    with open_store("swift", options) as store:
        result = store.add(new_id(), io.BytesIO(data), context=demo1)
        assert readable_by(store, result.location, demo2) == data
        store.delete(result.location, context=demo2)
        with pytest.raises(errors.NotFound):
            store.get_size(result.location, context=demo1)


def test_set_acls_shares_an_image_and_takes_it_back(keystone_env, container, demo1, demo2) -> None:
    """As Glance calls it when an image gets members or turns public, then private."""
    data = random_bytes(2 * 1024 * 1024 + 7, seed=4)
    options = multi_tenant_options(keystone_env, container, **SMALL_SEGMENTS)
    demo2_project = keystone_env["GSN_KEYSTONE_DEMO2_PROJECT_ID"]
    with open_store("swift", options) as store:
        location = store.add(new_id(), io.BytesIO(data), context=demo1).location
        assert readable_by(store, location, demo2) is None
        store.set_acls(location, read_projects=[demo2_project], context=demo1)
        assert readable_by(store, location, demo2) == data
        store.set_acls(location, context=demo1)
        assert readable_by(store, location, demo2) is None
        store.set_acls(location, public=True, context=demo1)
        assert readable_by(store, location, demo2) == data
        with pytest.raises(errors.PermissionDenied):
            store.delete(location, context=demo2)  # public is read-only
        store.delete(location, context=demo1)


def test_a_call_without_context_is_refused(keystone_env, container, demo1) -> None:
    with open_store("swift", multi_tenant_options(keystone_env, container)) as store:
        with pytest.raises(errors.InvalidArgument, match="needs the requesting user's context"):
            store.add(new_id(), io.BytesIO(b"x"), 1)
        location = store.add(new_id(), io.BytesIO(b"x"), 1, context=demo1).location
        for call in (store.get, store.get_size, store.delete):
            with pytest.raises(errors.InvalidArgument, match="context"):
                call(location)
        store.delete(location, context=demo1)


def test_a_catalog_without_the_region_names_the_options(keystone_env, container, demo1) -> None:
    options = multi_tenant_options(keystone_env, container, swift_store_region="Nowhere")
    with (
        open_store("swift", options) as store,
        pytest.raises(errors.ConfigError, match="swift_store_region") as caught,
    ):
        store.add(new_id(), io.BytesIO(b"x"), 1, context=demo1)
    assert "region Nowhere" in str(caught.value)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.2:8380/v1/AUTH_{project}",
        "127.0.0.1:1/v1/AUTH_{project}",
        "127.0.0.1:8380/v2/AUTH_{project}",
        "127.0.0.1:8380/v1/../AUTH_{project}",
        "127.0.0.1:8380/v1/%2e%2e",
        "127.0.0.1:8380/v1/AUTH_{project}%2F..",
        "127.0.0.1:8380/v1",
    ],
)
def test_the_token_goes_to_no_other_server_or_path(
    keystone_env, container, demo1, monkeypatch, address
) -> None:
    """A location whose address is not an account of the catalog's Swift is refused
    before any connection is opened: the user's token would go there."""
    from swiftclient.client import HTTPConnection

    def refuse(*args, **kwargs):
        raise AssertionError("a connection was opened")

    monkeypatch.setattr(HTTPConnection, "__init__", refuse)
    where = address.format(project=demo1.project_id)
    elsewhere = f"swift+http://{where}/{container}_x1/x1"
    with (
        open_store("swift", multi_tenant_options(keystone_env, container)) as store,
        pytest.raises(errors.BadLocation, match="no other server or path"),
    ):
        store.get(elsewhere, context=demo1)


def test_the_catalogs_scheme_is_used_whatever_the_location_says(
    keystone_env, container, demo1
) -> None:
    """A swift+https location on an http Swift is read over the catalog's http (and a
    swift+http one on an https Swift would go over https: no downgrade)."""
    data = random_bytes(1000, seed=9)
    with open_store("swift", multi_tenant_options(keystone_env, container)) as store:
        location = store.add(new_id(), io.BytesIO(data), len(data), context=demo1).location
        assert location.startswith("swift+http://")
        with store.get(location.replace("swift+http://", "swift+https://"), context=demo1) as r:
            assert r.read() == data
        store.delete(location, context=demo1)


def test_a_failed_add_leaves_no_container(keystone_env, container, demo1) -> None:
    def failing():
        yield b"x" * 100_000
        raise OSError("the source broke")

    admin = keystone_admin(keystone_env, "DEMO1")
    with (
        open_store("swift", multi_tenant_options(keystone_env, container)) as store,
        pytest.raises(OSError, match="the source broke"),
    ):
        store.add(new_id(), failing(), context=demo1)
    assert containers_under(admin, container) == []
    admin.close()


def test_a_revoked_token_is_a_clear_error_without_the_token(
    keystone_env, container, caplog
) -> None:
    """The store holds no credentials: a token Swift refuses cannot be renewed; the error
    asks the caller for a new one, and neither it nor the logs show the token."""
    context = user_context(keystone_env, "DEMO1")
    revoke(keystone_env, context.auth_token)
    caplog.set_level(logging.DEBUG)
    with open_store("swift", multi_tenant_options(keystone_env, container)) as store:
        with pytest.raises(errors.PermissionDenied, match="authenticate again") as caught:
            store.add(new_id(), io.BytesIO(b"x" * 100), 100, context=context)
        shown = f"{caught.value} {store!r} {context!r} {caplog.text}"
    assert context.auth_token[:12] not in shown
    assert FERNET_TOKEN_START not in shown


def test_gc_finds_a_dead_adds_segments_in_the_users_account(keystone_env, container, demo1) -> None:
    """What a killed add leaves (its mark and a segment, in the image's own container) is
    an orphan of the context's account, and removing it leaves nothing, not even the
    container."""
    image_id, token = new_id(), "0123456789abcdef"
    admin = keystone_admin(keystone_env, "DEMO1")
    own = f"{container}_{image_id}"
    admin.put_container(own)
    admin.put_object(own, f"{image_id}/{token}/00000001", b"x" * 1000)
    admin.put_object(own, f"{image_id}/{token}/adding", b"")
    with open_store("swift", multi_tenant_options(keystone_env, container)) as store:
        with pytest.raises(errors.InvalidArgument, match="context"):
            store.find_orphans(older_than=0)
        with using_context(demo1):
            orphans = store.find_orphans(older_than=0)
            assert [o.name for o in orphans] == [f"{own}/{image_id}/{token}/"]
            store.remove_orphan(orphans[0])
            assert store.find_orphans(older_than=0) == []
    assert containers_under(admin, container) == []  # the image's container went too
    admin.close()


@pytest.mark.parametrize(
    "options",
    [
        {"swift_store_user": "service:glance"},
        {"swift_store_config_file": "/etc/glance/glance-swift.conf"},
    ],
    ids=["inline credentials", "reference file"],
)
def test_credentials_are_refused_in_multi_tenant_mode(keystone_env, container, options) -> None:
    with pytest.raises(errors.ConfigError, match="take no credentials of their own"):
        open_store("swift", multi_tenant_options(keystone_env, container, **options))


# -- interop with glance_store 5.7.0's MultiTenantStore ------------------------------------


def glance_store_multi_tenant(keystone_env, container: str):
    """glance_store's Swift store in multi-tenant mode (without trusts), as Glance sets it."""
    import glance_store
    from glance_store._drivers.swift import store as gs_swift
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    glance_store.register_opts(conf)
    conf([], project="gsn-test", default_config_files=[], default_config_dirs=[])
    for name, value in {
        "swift_store_multi_tenant": True,
        "swift_store_use_trusts": False,
        "swift_store_container": container,
        "swift_store_create_container_on_put": True,
        "swift_store_region": keystone_env["GSN_KEYSTONE_REGION"],
    }.items():
        conf.set_override(name, value, "glance_store")
    store = gs_swift.Store(conf)
    assert type(store).__name__ == "MultiTenantStore"
    store.configure()
    return store, conf


@pytest.mark.parametrize("size", [300_000, 2 * 1024 * 1024 + 1], ids=["one PUT", "SLO"])
def test_glance_store_and_ours_read_and_delete_each_others_images(
    keystone_env, container, size
) -> None:
    """Both with demo1's context (glance_store takes the v2 catalog, as Glance gives it);
    glance_store's delete of our image (an SLO's segments too) leaves no container."""
    from glance_store import location as gs_location
    from glance_store._drivers.swift import store as gs_swift

    ours_context = user_context(keystone_env, "DEMO1", "v2")
    theirs_context = types.SimpleNamespace(
        auth_token=ours_context.auth_token,
        project_id=ours_context.project_id,
        user_id=ours_context.user_id,
        service_catalog=list(ours_context.service_catalog),
    )
    theirs, conf = glance_store_multi_tenant(keystone_env, container)

    def their_location(uri: str):
        return gs_location.Location("swift", gs_swift.StoreLocation, conf, uri=uri)

    data = random_bytes(size, seed=5)
    admin = keystone_admin(keystone_env, "DEMO1")
    options = multi_tenant_options(keystone_env, container, **SMALL_SEGMENTS)
    with open_store("swift", options) as ours:
        uri, size, _, _, _ = theirs.add(
            new_id(), io.BytesIO(data), len(data), "sha512", context=theirs_context
        )
        assert size == len(data)
        with ours.get(uri, context=ours_context) as reader:
            assert reader.read() == data
        ours.delete(uri, context=ours_context)

        result = ours.add(new_id(), io.BytesIO(data), len(data), context=ours_context)
        chunks, size = theirs.get(their_location(result.location), context=theirs_context)
        assert b"".join(chunks) == data
        theirs.delete(their_location(result.location), context=theirs_context)
    assert containers_under(admin, container) == []
    admin.close()
