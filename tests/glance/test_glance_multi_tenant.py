"""gsng_swift in multi-tenant mode inside a real Glance 33, with real Keystone tokens.

Each request carries what Keystone's authtoken hands Glance (the ``trusted`` flavor
takes it from the headers, see glance_testing.py): the user's real token, project and
user ids and the v2 catalog. Glance passes its request context to our adapter, so the
image goes to the owner's Swift account; sharing it with another project (an image
member) makes Glance call set_acls, after which that project's user downloads it
through Glance with their own token.
"""

from __future__ import annotations

import json

import pytest
import real_backends
from glance_testing import Backend, GlanceConfig
from keystone_testing import user_context

from glance_store_ng import RequestContext, errors, open_store
from glance_store_ng.testing.conformance import random_bytes
from glance_store_ng.units import MiB


def identity(context: RequestContext) -> dict[str, str]:
    """The headers authtoken would set for ``context``'s user (not an admin)."""
    return {
        "X-Tenant-Id": context.project_id,
        "X-User-Id": context.user_id or "",
        "X-Roles": "member,reader",
        "X-Auth-Token": context.auth_token,
        "X-Service-Catalog": json.dumps(list(context.service_catalog)),
    }


def test_images_live_in_their_owners_account_and_sharing_sets_swift_acls(
    glance_servers, tmp_path
) -> None:
    env = real_backends.keystone_env()
    container = f"gsn-glance-mt-{tmp_path.name[-12:]}".replace("_", "-")
    options = {
        "swift_store_multi_tenant": True,
        "swift_store_region": env["GSN_KEYSTONE_REGION"],
        "swift_store_container": container,
        "swift_store_large_object_size": 1,  # an SLO: its segments need the ACL too
        "swift_store_large_object_chunk_size": 1,
    }
    server = glance_servers.start(
        "multi-tenant", GlanceConfig(backends={"mt": Backend("gsng_swift", options)})
    )
    demo1 = user_context(env, "DEMO1", "v2")
    demo2 = user_context(env, "DEMO2", "v2")
    as1, as2 = identity(demo1), identity(demo2)

    def call(method: str, path: str, who: dict, doc=None, body=None, headers=None):
        if doc is not None:
            body = json.dumps(doc).encode()
            headers = {"Content-Type": "application/json"}
        return server.request(method, path, body, {**who, **(headers or {})})

    created = call(
        "POST",
        "/v2/images",
        as1,
        {"name": "mt", "disk_format": "raw", "container_format": "bare"},
    )
    server.expect(created, 201, "create as demo1")
    image_id = created.json()["id"]
    data = random_bytes(2 * MiB + 3, seed=7)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
    server.expect(
        call("PUT", f"/v2/images/{image_id}/file", as1, body=data, headers=headers), 204, "upload"
    )
    image = call("GET", f"/v2/images/{image_id}", as1).json()
    assert image["status"] == "active" and image["owner"] == demo1.project_id
    download = call("GET", f"/v2/images/{image_id}/file", as1)
    server.expect(download, 200, "download as demo1")
    assert download.body == data

    # The image is in demo1's account, its own container; demo2's token cannot read it.
    location = (
        f"swift+http://{env['GSN_SWIFT_KS_STORAGE_URL'].removeprefix('http://').rsplit('/', 1)[0]}"
        f"/AUTH_{demo1.project_id}/{container}_{image_id}/{image_id}"
    )
    with open_store("swift", options) as ours:
        assert ours.get_size(location, context=demo1) == len(data)
        with pytest.raises(errors.PermissionDenied):
            ours.get_size(location, context=demo2)

        # demo1 shares it with demo2's project: Glance sets the Swift ACLs through us.
        member = {"member": demo2.project_id}
        server.expect(
            call("POST", f"/v2/images/{image_id}/members", as1, member), 200, "add member"
        )
        accepted = call(
            "PUT", f"/v2/images/{image_id}/members/{demo2.project_id}", as2, {"status": "accepted"}
        )
        server.expect(accepted, 200, "accept membership as demo2")
        shared = call("GET", f"/v2/images/{image_id}/file", as2)
        server.expect(shared, 200, "download as demo2, a member")
        assert shared.body == data

        server.expect(call("DELETE", f"/v2/images/{image_id}", as1), 204, "delete as demo1")
        with pytest.raises(errors.NotFound):
            ours.get_size(location, context=demo1)
