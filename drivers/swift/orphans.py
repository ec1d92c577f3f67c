"""What Swift adds that died (killed, crashed, their machine lost) left: found and removed
by gc.

An add that fails removes its own work (``SwiftUpload.abort``). A process that
dies mid-add cannot. Each add works under an upload prefix of its own,
``<image id>/<16 hex digits>/`` in ``<container>_segments`` (multi-tenant: in the
image's own container ``<container>_<id>``): its segments, and
its *mark* (:class:`AddMark`), an empty object ``<prefix>adding`` it puts before
anything else, refreshes while its data flows (at most
:data:`~glance_store_ng.heartbeat.HEARTBEAT` seconds apart) and deletes as its
very last step, once the image is complete (an add that cannot delete its mark
fails and removes its image). The image (object or SLO manifest) carries the
add's token in ``X-Object-Meta-Glance-Store-Ng-Add``.

An upload prefix is an *orphan* once its newest object is ``older_than`` seconds
old and either it holds a mark (the add died: if the image carries its token,
the add completed the image but never returned its location, and gc removes
the image too) or, for an add of an older version that wrote no mark, the
image's manifest does not reference it. An image whose add returned has no mark
and is never touched. The check is made again just before removal. Only names
this driver writes are considered: other objects in a segment container
(glance_store's DLO segments live in the image container itself) are left alone.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from glance_store_ng.errors import BadLocation, InUse
from glance_store_ng.heartbeat import HEARTBEAT
from glance_store_ng.overlapping import ADDING, OtherAdd, StatedMark
from glance_store_ng.store import IMAGE_ID_PATTERN, Orphan, is_image_id

from .account import Account
from .large_objects import (
    ADD_TOKEN_HEADER,
    delete_object,
    delete_quietly,
    list_entries,
    segment_container,
)

__all__ = ["AddMark", "find_orphan_uploads", "remove_orphan_upload", "segment_containers"]

LOG = logging.getLogger("glance_store_ng.swift")

#: The name of an add's mark under its upload prefix.
MARK = "adding"
#: The mark's Content-Type, before the state it says.
_MARK_TYPE = "application/x-glance-store-ng-"
#: ``<image id>/<upload token>/`` then a segment number, a sub-manifest name or the mark.
_SEGMENT = re.compile(
    rf"(?P<upload>(?P<image>{IMAGE_ID_PATTERN})/(?P<token>[0-9a-f]{{16}})/)"
    rf"(?:\d{{8}}|manifest-\d{{6}}|{MARK})"
)
_UPLOAD = re.compile(rf"(?P<image>{IMAGE_ID_PATTERN})/(?P<token>[0-9a-f]{{16}})/")


class AddMark(StatedMark):
    """The mark of an add in progress: ``<segments>/<image id>/<token>/adding``, an empty
    object whose Content-Type says the add's state (glance_store_ng.overlapping)."""

    def __init__(
        self, account: Account, segments: str, image_id: str, token: str, state: str = ADDING
    ) -> None:
        self.account = account
        self.segments = segments
        self.image_id = image_id
        self.token = token
        self.path = f"{segments}/{image_id}/{token}/{MARK}"
        super().__init__(f"the mark {self.path}", state)

    def put(self) -> None:
        """Write (or refresh) the mark."""
        self.account.request(
            "PUT",
            self.path,
            what=f"writing the mark {self.path}",
            retry=True,
            headers={"Content-Length": "0", "Content-Type": _MARK_TYPE + self.state},
            data=b"",
        )

    def others(self) -> list[OtherAdd]:
        """The marks of the other adds of this image id (one listing of their upload
        prefixes, then one HEAD per other add)."""
        listing = self.account.request(
            "GET",
            self.segments,
            what=f"listing the adds of {self.image_id}",
            allow=(404,),
            query=f"format=json&delimiter=/&prefix={quote(self.image_id + '/', safe='')}",
        )
        found = []
        for entry in json.loads(listing.content or b"[]") if listing.status_code == 200 else []:
            match = _UPLOAD.fullmatch(entry.get("subdir", ""))
            if not match or match["token"] == self.token:
                continue
            path = f"{self.segments}/{match[0]}{MARK}"
            head = self.account.request(
                "HEAD", path, what=f"reading {path}", allow=(404,), headers={"X-Newest": "true"}
            )
            if head.status_code == 404:  # segments an add is removing, or of an older version
                continue
            state = head.headers.get("Content-Type", "").removeprefix(_MARK_TYPE)
            found.append(OtherAdd(path, state, _age(head.headers)))
        return found

    def remove(self) -> None:
        """The add is done: delete the mark (an error here fails the add)."""
        self.heartbeat.stop()
        delete_quietly(self.account, self.path, f"removing the mark {self.path}")

    def remove_quietly(self) -> None:
        """The add failed and removed its work: delete the mark; log, never raise."""
        try:
            self.remove()
        except Exception as exc:  # the add's own error matters more; gc removes the mark
            LOG.warning("%s: could not remove the mark %s of a failed add (gc removes it): "
                        "%s", self.account.label, self.path, exc)  # fmt: skip


def segment_containers(
    account: Account, container: str, spread: bool, own: bool = False
) -> list[str]:
    """The segment containers of a store: ``<container>_segments``, and with images
    spread over ``<container>_<id prefix>`` containers, each one's as well; with ``own``
    (multi-tenant: each image in a container of its own, which holds its segments and
    marks too), every ``<container>_<id>``."""
    if own:
        found = list_entries(account, "", f"{container}_")
        return [e["name"] for e in found if is_image_id(e["name"].removeprefix(container + "_"))]
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
    ``<segments>/<image id>/<token>/``, sized by their segments' bytes (or by the image,
    for an add that completed it)."""
    entries = list_entries(account, segments)
    uploads: dict[str, dict[str, Any]] = {}
    for entry in entries:
        match = _SEGMENT.fullmatch(entry["name"])
        if not match:
            continue
        upload = uploads.setdefault(
            match["upload"],
            {"image": match["image"], "token": match["token"], "bytes": 0, "newest": 0.0,
             "marked": False},
        )  # fmt: skip
        upload["bytes"] += int(entry.get("bytes", 0))
        upload["newest"] = max(upload["newest"], _timestamp(entry["last_modified"]))
        upload["marked"] = upload["marked"] or entry["name"].endswith(f"/{MARK}")
    now = time.time()
    container = segments.removesuffix("_segments")
    found = []
    referenced: dict[str, set[str]] = {}
    for prefix, upload in sorted(uploads.items()):
        age = max(0.0, now - upload["newest"])
        if age < older_than:
            continue
        image, size = upload["image"], upload["bytes"]
        if upload["marked"]:  # a dead add
            completed = _image_of_add(account, f"{container}/{image}", upload["token"])
            if completed is not None:
                size = max(size, completed)
        else:
            if image not in referenced:
                referenced[image] = _referenced_uploads(account, container, image, label, segments)
            if prefix in referenced[image]:
                continue
        found.append(Orphan(f"{segments}/{prefix}", size, age))
    return found


def remove_orphan_upload(account: Account, segments: str, orphan: Orphan, label: str) -> None:
    """Delete every object of the orphan upload ``orphan`` (``<segments>/<image>/<token>/``)
    in ``segments``, and the image if that upload's add completed it (it has a mark, the
    image its token); InUse if the mark was refreshed since the orphan was listed (its add
    is alive), or if an unmarked upload's segments are an image's after all."""
    name = orphan.name
    prefix = name.removeprefix(f"{segments}/")
    match = _UPLOAD.fullmatch(prefix)
    if prefix == name or not match:
        raise BadLocation(f"{label}: {name} is not an upload of this store's segments")
    container = segments.removesuffix("_segments")
    image = f"{container}/{match['image']}"
    objects = [entry["name"] for entry in list_entries(account, segments, prefix)]
    mark = f"{prefix}{MARK}"
    if mark in objects:
        # the listing may lag: the mark itself says whether the add is still there
        head = account.request("HEAD", f"{segments}/{mark}", what="checking the mark of "
                               f"{name}", allow=(404,))  # fmt: skip
        if head.status_code == 404:
            return  # its add finished meanwhile (or gc ran already)
        age = _age(head.headers)
        if age < orphan.age - HEARTBEAT:  # refreshed since it was listed (clocks may differ)
            raise InUse(f"{label}: the add of {image} wrote again since gc listed it ({age:.0f} "
                        "s ago); left alone")  # fmt: skip
        if _image_of_add(account, image, match["token"]) is not None:
            delete_object(account, image, label)  # an SLO's segments with it
    elif prefix in _referenced_uploads(account, container, match["image"], label, segments):
        raise InUse(f"{label}: {name} holds the segments of {image}")
    for object_name in sorted(objects, key=lambda n: n == mark):  # the mark last
        path = f"{segments}/{object_name}"
        delete_quietly(account, path, f"removing the orphan segment {path}")


def _age(headers: Any) -> float:
    """Seconds since the object answering with ``headers`` was written, by Swift's clock."""
    try:
        written = float(headers["X-Timestamp"])
        now = parsedate_to_datetime(headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return 0.0  # unknown: as young as can be (nothing is removed)
    return max(0.0, now - written)


def _image_of_add(account: Account, path: str, token: str) -> int | None:
    """The size of the image at ``path`` if the add holding ``token`` wrote it, else None."""
    head = account.request("HEAD", path, what=f"checking {path}", allow=(404,))
    if head.status_code == 404 or head.headers.get(ADD_TOKEN_HEADER) != token:
        return None
    return int(head.headers.get("Content-Length", 0))


def _referenced_uploads(
    account: Account, container: str, image: str, label: str, segments: str
) -> set[str]:
    """The upload prefixes in ``segments`` the SLO manifest of ``container/image`` lists
    (none if there is no such object, or it is not an SLO)."""
    path = f"{container}/{image}"
    what = f"reading the manifest of {path}"
    head = account.request("HEAD", path, what=what, allow=(404,))
    if head.status_code == 404 or head.headers.get("X-Static-Large-Object", "").lower() != "true":
        return set()
    manifest = account.request("GET", path, what=what, query="multipart-manifest=get&format=raw")
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
