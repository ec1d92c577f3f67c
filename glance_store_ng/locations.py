"""Location URIs: checked on the way in, masked on the way out.

A location is the URI an add returns and Glance records (``file:///...``,
``s3://host/bucket/id``, ``swift+https://...``, ``rbd://fsid/pool/id/snap``).
Each driver owns its scheme(s) and parses the rest. This module does what is
common: it rejects what no driver should ever see (control characters,
over-long URIs, missing schemes), and it masks credentials that glance_store's
legacy forms carry (``s3://ACCESS:SECRET@host/...``,
``swift://tenant:user:KEY@host/...``) so they never reach a repr, a log line or
an error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import BadLocation

__all__ = ["Location", "has_userinfo", "mask_uri", "mask_url", "parse_location"]

MAX_URI_LENGTH = 4096
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:[a-z0-9_-]*(?:sig|signature|token|secret|password|key|credential)[a-z0-9_-]*)=)[^&#]*"
)


def mask_uri(uri: str) -> str:
    """``uri`` with any password in its user-info and any secret query value replaced by ``***``.

    The user-info is everything between ``://`` and the last ``@`` (as
    glance_store reads it: S3 secret keys may contain ``/``). What follows the
    first ``:`` of the user-info is masked, so ``s3://AKIA:SECRET@host/b/i`` is
    shown as ``s3://AKIA:***@host/b/i``.
    """
    match = _SCHEME.match(uri)
    if match and match.group(1).lower() != "file":  # a path may hold '@'; it holds no secret
        head, rest = uri[: match.end()], uri[match.end() :]
        if "@" in rest:
            userinfo, tail = rest.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            rest = f"{user}:***@{tail}" if ":" in userinfo else f"***@{tail}"
        uri = head + rest
    return _SECRET_QUERY.sub(r"\1***", uri)


def mask_url(value: str) -> str:
    """``value`` (a URL, or ``host[:port]`` without a scheme, as some options take) with the
    password of its user-info masked: ``http://KEY:SECRET@host`` -> ``http://KEY:***@host``."""
    if _SCHEME.match(value):
        return mask_uri(value)
    return mask_uri("x://" + value)[len("x://") :]


def has_userinfo(value: str) -> bool:
    """True when the URL (or scheme-less ``host[:port]``) ``value`` may carry credentials: an
    ``@`` anywhere after the scheme (as :func:`mask_uri` reads it, secrets may contain ``/``)."""
    match = _SCHEME.match(value)
    return "@" in (value[match.end() :] if match else value)


@dataclass(frozen=True)
class Location:
    """A parsed location: its scheme, and the URI (shown masked, kept whole in ``uri``)."""

    uri: str = field(repr=False)
    scheme: str

    def __str__(self) -> str:
        return mask_uri(self.uri)

    def __repr__(self) -> str:
        return f"Location({mask_uri(self.uri)!r})"

    @property
    def masked(self) -> str:
        """The URI with credentials masked: safe for logs and messages."""
        return mask_uri(self.uri)


def parse_location(location: str | Location) -> Location:
    """A :class:`Location` from a URI string, or BadLocation naming what is wrong."""
    if isinstance(location, Location):
        return location
    if not isinstance(location, str):
        raise BadLocation(f"a location must be a URI string, not {type(location).__name__}")
    if len(location) > MAX_URI_LENGTH:
        raise BadLocation(
            f"location is {len(location)} characters long; at most {MAX_URI_LENGTH} are accepted"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in location):
        raise BadLocation(f"location {mask_uri(location)!r} contains control characters")
    match = _SCHEME.match(location)
    if not match:
        raise BadLocation(
            f"location {mask_uri(location)!r} is not a URI: expected scheme://..., "
            "for example file:///var/lib/glance/images/<id>"
        )
    return Location(uri=location, scheme=match.group(1).lower())
