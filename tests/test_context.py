"""The request context: what a caller passes as ``context=`` and how a driver reads it."""

from __future__ import annotations

import threading
import types

import pytest
from glance_store_ng.drivers.filesystem import FilesystemStore

from glance_store_ng import RequestContext, Stores, errors
from glance_store_ng.context import current_context, using_context

V3 = [
    {"type": "identity", "endpoints": [{"interface": "public", "region": "R1", "url": "http://k"}]},
    {
        "type": "object-store",
        "endpoints": [
            {"interface": "public", "region": "R1", "url": "https://swift1/v1/AUTH_p"},
            {"interface": "internal", "region": "R1", "url": "http://swift1-int/v1/AUTH_p"},
            {"interface": "public", "region_id": "R2", "url": "https://swift2/v1/AUTH_p"},
        ],
    },
]
V2 = [
    {
        "type": "object-store",
        "endpoints": [
            {"region": "R1", "publicURL": "https://swift1/v1/AUTH_p", "internalURL": "http://i1"},
            {"region": "R2", "publicURL": "https://swift2/v1/AUTH_p"},
        ],
    }
]


@pytest.mark.parametrize("catalog", [V3, V2], ids=["v3", "v2"])
def test_endpoint_by_type_interface_and_region(catalog) -> None:
    context = RequestContext("tok", "p", service_catalog=catalog)
    assert context.endpoint("object-store", "publicURL", "R1") == "https://swift1/v1/AUTH_p"
    assert context.endpoint("object-store", "public", "R2") == "https://swift2/v1/AUTH_p"
    assert context.endpoint("object-store", "public") == "https://swift1/v1/AUTH_p"
    assert context.endpoint("object-store", "internalURL", "R1").startswith("http://")
    assert context.endpoint("object-store", "admin", "R1") is None
    assert context.endpoint("object-store", "public", "R3") is None
    assert context.endpoint("volume", "public") is None


def test_of_any_context_object_and_no_secret_in_repr() -> None:
    glance_like = types.SimpleNamespace(
        auth_token="secret-token", project_id="p1", user_id="u1", service_catalog=V2
    )
    context = RequestContext.of(glance_like)
    assert (context.project_id, context.user_id) == ("p1", "u1")
    assert RequestContext.of(context) is context
    assert "secret-token" not in repr(context) and "swift1" not in repr(context)
    system_scoped = RequestContext.of(types.SimpleNamespace(auth_token="t", project_id=None))
    assert system_scoped.project_id is None


@pytest.mark.parametrize("token", [None, "", "tok\n", "two words", "t\u00e9"])
def test_a_token_that_cannot_be_a_header_is_refused_without_showing_it(token) -> None:
    with pytest.raises(errors.InvalidArgument, match="auth_token") as caught:
        RequestContext.of(types.SimpleNamespace(auth_token=token, project_id="p"))
    if token:
        assert token not in str(caught.value)


def test_using_context_nests_and_none_keeps_the_outer_one() -> None:
    outer, inner = RequestContext("outer", "p"), RequestContext("inner", "p")
    assert current_context() is None
    with using_context(outer):
        assert current_context() is outer
        with using_context(inner):
            assert current_context() is inner
        with using_context(None):
            assert current_context() is outer
        seen = []
        thread = threading.Thread(target=lambda: seen.append(current_context()))
        thread.start()
        thread.join()
        assert seen == [None]  # threads a driver starts do not inherit it
    assert current_context() is None


class _SeeingStore(FilesystemStore):
    """The filesystem store, noting the context its driver methods see."""

    seen: list

    def _add(self, image_id, ingest):
        self.seen.append(("add", current_context()))
        return super()._add(image_id, ingest)

    def _get(self, location, offset, length):
        self.seen.append(("get", current_context()))
        return super()._get(location, offset, length)

    def _get_size(self, location):
        self.seen.append(("get_size", current_context()))
        return super()._get_size(location)

    def _delete(self, location):
        self.seen.append(("delete", current_context()))
        return super()._delete(location)


def test_store_and_stores_calls_give_the_driver_the_callers_context(tmp_path) -> None:
    store = _SeeingStore({"filesystem_store_datadir": str(tmp_path)}, backend="fast")
    store.seen = []
    stores = Stores({"fast": store}, "fast")
    user = types.SimpleNamespace(auth_token="tok", project_id="p1", service_catalog=[])
    location = stores.add("img-1", b"data", context=user).location
    with stores.get(location, context=user) as reader:
        assert reader.read() == b"data"
    assert stores.get_size(location, context=user) == 4
    stores.delete(location, context=user)
    assert [call for call, _ in store.seen] == ["add", "get", "get_size", "delete"]
    assert {(c.auth_token, c.project_id) for _, c in store.seen} == {("tok", "p1")}
    store.seen = []
    store.delete(store.add("img-2", b"x").location)
    assert store.seen == [("add", None), ("delete", None)]
