"""Segments that interrupted Static Large Object uploads left behind: found and removed by gc.

An add that fails removes its own segments (``SwiftUpload.abort``). A
process that dies mid-add (killed, crashed, its machine lost) cannot: its
segments stay in ``<container>_segments`` under the upload's prefix
``<image id>/<16 hex digits>/``, and no manifest lists them. Such an upload
prefix is an *orphan* when the image's manifest does not reference it and
its newest segment is at least ``older_than`` seconds old: a running add
writes a segment every chunk, so its prefix always has a recent one.

The check is made again just before removal, so an upload whose manifest
landed meanwhile is never touched. Only names this driver writes are
considered: other objects in a segment container (glance_store's DLO
segments live in the image container itself) are left alone.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from typing import Any

from glance_store_ng.errors import BadLocation, InUse
from glance_store_ng.store import IMAGE_ID_PATTERN, Orphan

from .account import Account
from .large_objects import delete_quietly, list_entries, segment_container

__all__ = ["find_orphan_uploads", "remove_orphan_upload", "segment_containers"]

#: ``<image id>/<upload token>/`` then a segment number or a sub-manifest name.
_SEGMENT = re.compile(
    rf"(?P<upload>(?P<image>{IMAGE_ID_PATTERN})/[0-9a-f]{{16}}/)(?:\d{{8}}|manifest-\d{{6}})"
)
_UPLOAD = re.compile(rf"(?P<image>{IMAGE_ID_PATTERN})/[0-9a-f]{{16}}/")


def segment_containers(account: Account, container: str, spread: bool) -> list[str]:
    """The segment containers of a store: ``<container>_segments``, and with images
    spread over ``<container>_<id prefix>`` containers, each one's as well."""
    if not spread:
        return [segment_container(container)]
    found = []
    for entry in list_entries(account, "", f"{container}_"):
        base = entry["name"].removesuffix("_segments")
        if base != entry["name"] and not base.endswith("_segments"):
            found.append(entry["name"])
    return found


def find_orphan_uploads(
    account: Account, segments: str, older_than: float, label: str
) -> list[Orphan]:
    """The orphan upload prefixes in the segment container ``segments``, as Orphans named
    ``<segments>/<image id>/<token>/``, sized by their segments' bytes."""
    entries = list_entries(account, segments)
    uploads: dict[str, dict[str, Any]] = {}
    for entry in entries:
        match = _SEGMENT.fullmatch(entry["name"])
        if not match:
            continue
        upload = uploads.setdefault(
            match["upload"], {"image": match["image"], "bytes": 0, "newest": 0.0}
        )
        upload["bytes"] += int(entry.get("bytes", 0))
        upload["newest"] = max(upload["newest"], _timestamp(entry["last_modified"]))
    now = time.time()
    container = segments.removesuffix("_segments")
    found = []
    referenced: dict[str, set[str]] = {}
    for prefix, upload in sorted(uploads.items()):
        age = max(0.0, now - upload["newest"])
        if age < older_than:
            continue
        image = upload["image"]
        if image not in referenced:
            referenced[image] = _referenced_uploads(account, container, image, label)
        if prefix not in referenced[image]:
            found.append(Orphan(f"{segments}/{prefix}", upload["bytes"], age))
    return found


def remove_orphan_upload(account: Account, segments: str, name: str, label: str) -> None:
    """Delete every object of the orphan upload ``name`` (``<segments>/<image>/<token>/``)
    in ``segments``; InUse if its image's manifest references it after all."""
    prefix = name.removeprefix(f"{segments}/")
    match = _UPLOAD.fullmatch(prefix)
    if prefix == name or not match:
        raise BadLocation(f"{label}: {name} is not an upload of this store's segments")
    container = segments.removesuffix("_segments")
    if prefix in _referenced_uploads(account, container, match["image"], label):
        raise InUse(f"{label}: {name} holds the segments of {container}/{match['image']}")
    for entry in list_entries(account, segments, prefix):
        path = f"{segments}/{entry['name']}"
        delete_quietly(account, path, f"removing the orphan segment {path}")


def _referenced_uploads(account: Account, container: str, image: str, label: str) -> set[str]:
    """The upload prefixes the SLO manifest of ``container/image`` lists (none if there is
    no such object, or it is not an SLO)."""
    path = f"{container}/{image}"
    what = f"reading the manifest of {path}"
    head = account.request("HEAD", path, what=what, allow=(404,))
    if head.status_code == 404 or head.headers.get("X-Static-Large-Object", "").lower() != "true":
        return set()
    manifest = account.request("GET", path, what=what, query="multipart-manifest=get&format=raw")
    segments = segment_container(container)
    prefixes = set()
    for item in json.loads(manifest.content or b"[]"):
        owner, _, name = item.get("path", "").lstrip("/").partition("/")
        match = _SEGMENT.fullmatch(name)
        if owner == segments and match:
            prefixes.add(match["upload"])
    return prefixes


def _timestamp(last_modified: str) -> float:
    """Swift's listing time (ISO 8601, UTC, no zone) as a POSIX timestamp."""
    return datetime.fromisoformat(last_modified).replace(tzinfo=timezone.utc).timestamp()
