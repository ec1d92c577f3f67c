"""Swift location URIs, in every form glance_store writes.

- ``swift+config://REF/CONTAINER/OBJECT``: the credentials are those of
  reference ``REF`` in ``swift_store_config_file``; nothing secret in the URI.
  What this driver writes when a reference file is configured.
- ``swift+http://AUTH_ADDRESS/CONTAINER/OBJECT`` (and ``swift+https://``,
  ``swift://`` which means https): the auth address without its scheme, for
  example ``swift+http://127.0.0.1:8280/auth/v1.0/glance/<id>``. What this
  driver writes without a reference file; it never writes credentials.
- glance_store's legacy form, ``swift+http://USER:KEY@AUTH_ADDRESS/C/O``,
  where USER may itself hold ``:`` (``tenant:user``) and the key is what
  follows the last ``:``; the parts may be percent-encoded. Read, never
  written, and the key is never shown (``Location`` masks it).
- glance_store's multi-tenant form, ``swift+https://STORAGE_URL/C/O``, where
  the address is the account's storage URL (``host/v1/AUTH_x``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from glance_store_ng.errors import BadLocation
from glance_store_ng.locations import Location

__all__ = ["SwiftLocation", "parse_swift_location", "strip_scheme"]

SCHEMES = ("swift+config", "swift+http", "swift+https", "swift")


@dataclass(frozen=True)
class SwiftLocation:
    """A parsed location: where the object is and which credentials reach it."""

    scheme: str
    address: str
    """The reference name (swift+config), else the auth address or storage URL, no scheme."""
    container: str
    obj: str
    user: str | None = None
    key: str | None = field(default=None, repr=False)
    masked: str = ""

    @property
    def is_reference(self) -> bool:
        return self.scheme == "swift+config"

    @property
    def path(self) -> str:
        return f"{self.container}/{self.obj}"


def strip_scheme(url: str) -> str:
    """``http://host/path/`` -> ``host/path``: how glance_store compares addresses."""
    for prefix in ("https://", "http://"):
        if url.startswith(prefix):
            url = url[len(prefix) :]
            break
    return url.rstrip("/")


def parse_swift_location(location: Location, label: str) -> SwiftLocation:
    """The parts of a Swift location, or BadLocation naming what is wrong (key masked)."""
    shown = location.masked
    if location.scheme not in SCHEMES:
        raise BadLocation(f"{label}: {shown} is not a Swift location ({', '.join(SCHEMES)})")
    rest = location.uri[len(location.scheme) + 3 :]
    if "://" in rest:
        raise BadLocation(
            f"{label}: {shown} holds a second scheme; write swift+http://host/... instead of "
            "swift://user:key@http://host/..."
        )
    user = key = None
    if "@" in rest:
        if location.scheme == "swift+config":
            raise BadLocation(f"{label}: {shown}: a swift+config location holds no credentials")
        userinfo, rest = rest.rsplit("@", 1)
        user_part, sep, key_part = userinfo.rpartition(":")
        if not sep or not user_part or not key_part:
            raise BadLocation(
                f"{label}: {shown}: badly formed credentials; expected USER:KEY@ before the host"
            )
        user, key = unquote(user_part), unquote(key_part)
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts[-2:]) or not parts[0]:
        raise BadLocation(
            f"{label}: {shown} is not SCHEME://ADDRESS/CONTAINER/OBJECT "
            "(for example swift+config://ref1/glance/<image id>)"
        )
    obj, container = unquote(parts[-1]), unquote(parts[-2])
    address = "/".join(parts[:-2]).rstrip("/")
    if location.scheme == "swift+config" and "/" in address:
        raise BadLocation(f"{label}: {shown}: swift+config://REF/CONTAINER/OBJECT expected")
    if any(part in (".", "..") for part in (obj, container)) or "/" in container:
        raise BadLocation(f"{label}: {shown} has a bad container or object name")
    return SwiftLocation(location.scheme, address, container, obj, user, key, shown)
