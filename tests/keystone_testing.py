"""Helpers of the tests that use the real Keystone (tools/backends/keystone): a user's
request context as an image API holds it, tokens, revocation."""

from __future__ import annotations

import json
import urllib.request

from glance_store_ng import RequestContext


def user_context(keystone_env: dict[str, str], who: str = "DEMO1", form: str = "v3"):
    """The request context of user ``who`` (DEMO1, DEMO2...) as an image API holds it: a
    fresh token from the real Keystone, its project and user ids, and its catalog in
    Keystone's v3 form or (``form="v2"``) the v2 form keystonemiddleware gives Glance."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    user = f"GSN_KEYSTONE_{who}"
    auth = v3.Password(
        auth_url=keystone_env["GSN_KEYSTONE_AUTH_URL"],
        username=keystone_env[user + "_USER"],
        password=keystone_env[user + "_PASSWORD"],
        project_name=keystone_env[user + "_PROJECT"],
        user_domain_name=keystone_env[user + "_USER_DOMAIN"],
        project_domain_name=keystone_env[user + "_PROJECT_DOMAIN"],
    )
    access = auth.get_access(session.Session(auth=auth))
    catalog = access.service_catalog.catalog
    if form == "v2":
        catalog = [v2_service(service) for service in catalog]
    return RequestContext(
        auth_token=access.auth_token,
        project_id=access.project_id,
        user_id=access.user_id,
        service_catalog=catalog,
    )


def v2_service(service: dict) -> dict:
    """A v3 catalog entry in the v2 form: one endpoint per region, a key per interface."""
    regions: dict[str, dict] = {}
    for endpoint in service["endpoints"]:
        entry = regions.setdefault(endpoint["region"], {"region": endpoint["region"]})
        entry[endpoint["interface"] + "URL"] = endpoint["url"]
    return {
        "type": service["type"],
        "name": service.get("name", ""),
        "endpoints": [*regions.values()],
    }


def revoke(keystone_env, token: str) -> None:
    """Revoke ``token`` in Keystone (as the admin user)."""
    env = keystone_env
    admin_token = keystone_token(env, "ADMIN")
    request = urllib.request.Request(
        f"{env['GSN_KEYSTONE_AUTH_URL']}/auth/tokens",
        method="DELETE",
        headers={"X-Auth-Token": admin_token, "X-Subject-Token": token},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 204


def keystone_token(env, who: str) -> str:
    """A project-scoped token for ``who`` (ADMIN: its project and domain are named alike)."""
    prefix = f"GSN_KEYSTONE_{who}"
    domain = env.get(prefix + "_USER_DOMAIN") or env[prefix + "_DOMAIN"]
    project_domain = env.get(prefix + "_PROJECT_DOMAIN") or env[prefix + "_DOMAIN"]
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": env[prefix + "_USER"],
                        "domain": {"name": domain},
                        "password": env[prefix + "_PASSWORD"],
                    }
                },
            },
            "scope": {
                "project": {"name": env[prefix + "_PROJECT"], "domain": {"name": project_domain}}
            },
        }
    }
    request = urllib.request.Request(
        f"{env['GSN_KEYSTONE_AUTH_URL']}/auth/tokens",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.headers["X-Subject-Token"]
