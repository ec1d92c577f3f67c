"""S3 orphans: what adds that died (kill -9, a crash, a lost host) left in the bucket.

Three kinds, all listed and removed by ``glance-store-ng gc`` through these
functions (:meth:`S3Store.find_orphans`, :meth:`S3Store.remove_orphan`):

- **Dead adds**, found by their mark. An add puts a small object, its mark
  (:class:`AddMark`, ``.glance-store-ng-adding/<id>/<token>``), before it writes
  anything; refreshes it while its data flows (at most
  :data:`~glance_store_ng.heartbeat.HEARTBEAT` seconds apart); records in it the id
  of its multipart upload once it starts one; and deletes it as its very last
  step, once the image is complete (an add that cannot delete its mark fails and
  removes its image). So an image whose add returned has no mark, and a mark that
  aged ``older_than`` belongs to an add that died: if the image carries the add's
  token (its objects' ``glance-store-ng-add`` metadata) that add completed it but
  never returned its location, else it left at most a pending upload. gc removes
  either, then the mark. Named ``s3://host/bucket/<id>?adding=<token>``.
- **Abandoned multipart uploads** no mark records (a lost answer to the request
  that started one, an add of an older version): named
  ``s3://host/bucket/<id>?uploadId=<upload id>``.
- **Checksum probes**: the small object a store's first add PUTs to learn whether
  the server checks CRCs, when the add was killed before removing it (a server that
  accepts the probe keeps it): named ``s3://host/bucket/<probe key>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from glance_store_ng.errors import BadLocation, InUse, NotFound
from glance_store_ng.heartbeat import HEARTBEAT
from glance_store_ng.locations import mask_uri
from glance_store_ng.overlapping import ADDING, OtherAdd, StatedMark
from glance_store_ng.store import Orphan, is_image_id

from .multipart import ADD_TOKEN, PROBE_PREFIX, abort_upload

if TYPE_CHECKING:
    from .store import S3Store

__all__ = ["MARK_PREFIX", "AddMark", "find_orphans", "remove_orphan"]

LOG = logging.getLogger("glance_store_ng.drivers.s3")

#: Between the image's URI and the upload id in an orphan's name (as S3's API addresses it).
UPLOAD_ID_QUERY = "?uploadId="
#: Where marks are kept in the bucket: not an image id (which starts with a letter or digit).
MARK_PREFIX = ".glance-store-ng-adding/"
#: Between the image's URI and the add's token in a dead add's name.
ADDING_QUERY = "?adding="
_TOKEN = re.compile(r"[0-9a-f]{32}")
_PROBE = re.compile(re.escape(PROBE_PREFIX) + r"[0-9a-f]{16}")
_UPLOAD_ID = re.compile(r"[!-~]{1,1024}")  # printable ASCII, no spaces: prints and parses whole


class AddMark(StatedMark):
    """The mark of the add of ``key`` by the add holding ``token`` (see the module); its
    body records the add's upload id and state (glance_store_ng.overlapping)."""

    def __init__(self, store: S3Store, key: str, token: str) -> None:
        self.store = store
        self.key = key
        self.token = token
        self.name = f"{MARK_PREFIX}{key}/{token}"
        self.upload_id: str | None = None
        super().__init__(f"the mark {self.name}")

    def put(self) -> None:
        """Write (or refresh) the mark."""
        body = json.dumps({"upload": self.upload_id, "state": self.state}).encode()
        self.store.bucket_call(
            f"marking the add of {self.store.uri_of(self.key)}",
            lambda: self.store.client.put_object(
                Bucket=self.store.bucket, Key=self.name, Body=body
            ),
        )

    def record_upload(self, upload_id: str) -> None:
        """The add started multipart upload ``upload_id``: gc aborts it if the add dies."""
        self.upload_id = upload_id
        self.put()

    def others(self) -> list[OtherAdd]:
        """The marks of the other adds of this key: one listing, then one GET per other."""
        marks, _ = _objects(self.store, f"{MARK_PREFIX}{self.key}/")
        found = []
        for mark in marks:
            if mark["Key"] == self.name or _parse_mark_key(mark["Key"]) is None:
                continue
            try:
                _, state, age = _read_mark(self.store, mark["Key"])
            except NotFound:
                continue  # its add ended meanwhile
            found.append(OtherAdd(mark["Key"], state, age))
        return found

    def remove(self) -> None:
        """The add is done: delete the mark (an error here fails the add)."""
        self.heartbeat.stop()
        self.store.call(
            f"removing the mark of the add of {self.store.uri_of(self.key)}",
            lambda: self.store.client.delete_object(Bucket=self.store.bucket, Key=self.name),
        )

    def remove_quietly(self) -> None:
        """The add failed and removed its work: delete the mark; log, never raise."""
        try:
            self.remove()
        except Exception as exc:
            LOG.warning(
                "%s: could not remove the mark %s of a failed add (gc removes it): %s",
                self.store.label,
                self.name,
                self.store.context.scrub(str(exc)),
            )


def find_orphans(store: S3Store, older_than: float) -> list[Orphan]:
    """Dead adds, abandoned uploads no mark records, then the part-checksum probes of
    adds killed while probing (see the module)."""
    dead, marked_uploads = _find_dead_adds(store, older_than)
    return (
        dead
        + [
            orphan
            for orphan in _find_abandoned_uploads(store, older_than)
            if _parse_orphan_name(store, orphan.name)[1] not in marked_uploads
        ]
        + _find_probes(store, older_than)
    )


def remove_orphan(store: S3Store, orphan: Orphan) -> None:
    """Remove what :func:`find_orphans` listed; one already gone is fine."""
    if ADDING_QUERY in orphan.name:
        _remove_dead_add(store, orphan)
    elif orphan.name.startswith(store.uri_of(PROBE_PREFIX)):
        key = orphan.name.removeprefix(store.uri_of(""))
        if not _PROBE.fullmatch(key):
            raise BadLocation(f"{store.label}: {orphan.name} is not a probe of this store")
        store.call(
            f"removing {orphan.name}",
            lambda: store.client.delete_object(Bucket=store.bucket, Key=key),
        )
    else:
        _abort_abandoned_upload(store, orphan)


def _find_probes(store: S3Store, older_than: float) -> list[Orphan]:
    """The small objects that asked the server whether it checks CRCs, left by an add
    killed before it removed its probe (``s3://host/bucket/<probe key>``)."""
    probes, now = _objects(store, PROBE_PREFIX)
    found = []
    for item in probes:
        age = max(0.0, now - item["LastModified"].timestamp())
        if _PROBE.fullmatch(item["Key"]) and age >= older_than:
            found.append(Orphan(store.uri_of(item["Key"]), int(item.get("Size", 0)), age))
    return found


def _server_time(answer: dict[str, Any]) -> float:
    """The server's clock when it answered (its Date header), else ours.

    Ages of uploads are the server's times against the server's time, so a skewed
    clock on the host running gc cannot make a running add's upload look old.
    """
    date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return time.time()


def _find_abandoned_uploads(store: S3Store, older_than: float) -> list[Orphan]:
    """Multipart uploads of adds that died mid-upload (kill -9, a crash, a lost host).

    The server keeps their parts, and the storage they take, until they are
    aborted. Listed: uploads of keys this store names images with (an image
    id at the bucket's root) started and sent no part for ``older_than``
    seconds, by the server's clock. A running add sends parts all along, so
    even a long one is left alone.
    The name is ``s3://host/bucket/<id>?uploadId=<upload id>``.
    """
    found = []
    for upload, now in _pending_uploads(store):
        key, upload_id = upload["Key"], upload["UploadId"]
        started = upload["Initiated"].timestamp()
        if not (is_image_id(key) and _UPLOAD_ID.fullmatch(upload_id)):
            continue  # not an upload this driver starts
        if max(0.0, now - started) < older_than:
            continue  # recent: the add may be running (no need to list its parts)
        try:
            size, last_part = _parts(store, key, upload_id)
        except NotFound:
            continue  # completed or aborted meanwhile
        age = max(0.0, now - max(started, last_part))
        if age >= older_than:
            found.append(Orphan(_orphan_name(store, key, upload_id), size, age))
    return found


def _abort_abandoned_upload(store: S3Store, orphan: Orphan) -> None:
    """Abort the multipart upload ``orphan`` names; one already gone is fine."""
    key, upload_id = _parse_orphan_name(store, orphan.name)
    store.call(
        f"aborting {orphan.name}",
        lambda: abort_upload(store.client, store.bucket, key, upload_id),
    )
    LOG.info("%s: aborted abandoned multipart upload %s", store.label, orphan.name)


def _orphan_name(store: S3Store, key: str, upload_id: str) -> str:
    return f"{store.uri_of(key)}{UPLOAD_ID_QUERY}{upload_id}"


def _parse_orphan_name(store: S3Store, name: str) -> tuple[str, str]:
    """``(key, upload id)`` from a name :func:`_find_abandoned_uploads` gives; else BadLocation."""
    prefix = store.uri_of("")
    key, query, upload_id = name.removeprefix(prefix).partition(UPLOAD_ID_QUERY)
    if not (
        name.startswith(prefix) and query and is_image_id(key) and _UPLOAD_ID.fullmatch(upload_id)
    ):
        raise BadLocation(
            f"{store.label}: {store.context.scrub(mask_uri(name))} is not a multipart upload "
            f"of this store (expected {prefix}<id>{UPLOAD_ID_QUERY}<upload id>)"
        )
    return key, upload_id


def _pending_uploads(store: S3Store) -> Iterator[tuple[dict[str, Any], float]]:
    """Every multipart upload pending in the bucket (all pages), with the server's time."""
    what = f"listing the multipart uploads in bucket {store.bucket}"
    markers: dict[str, str] = {}
    while True:
        page = store.call(
            what, partial(store.client.list_multipart_uploads, Bucket=store.bucket, **markers)
        )
        uploads = page.get("Uploads", [])
        now = _server_time(page)
        for upload in uploads:
            yield upload, now
        if not (page.get("IsTruncated") and uploads):
            return
        markers = {
            "KeyMarker": page.get("NextKeyMarker") or uploads[-1]["Key"],
            "UploadIdMarker": page.get("NextUploadIdMarker") or uploads[-1]["UploadId"],
        }


def _parts(store: S3Store, key: str, upload_id: str) -> tuple[int, float]:
    """The bytes in an upload's parts, and when its latest part was written (0 if none)."""
    what = f"listing the parts of {_orphan_name(store, key, upload_id)}"
    size, last, marker = 0, 0.0, 0
    while True:
        page = store.call(
            what,
            partial(
                store.client.list_parts,
                Bucket=store.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumberMarker=marker,
            ),
        )
        parts = page.get("Parts", [])
        size += sum(int(part["Size"]) for part in parts)
        last = max([last, *(part["LastModified"].timestamp() for part in parts)])
        if not (page.get("IsTruncated") and parts):
            return size, last
        marker = int(page.get("NextPartNumberMarker") or parts[-1]["PartNumber"])


def _find_dead_adds(store: S3Store, older_than: float) -> tuple[list[Orphan], set[str]]:
    """The orphans of adds whose mark is at least ``older_than`` seconds old (by the
    server's clock), and the ids of every upload a mark records (a running add's too:
    those uploads are not orphans of their own)."""
    found: list[Orphan] = []
    marked_uploads: set[str] = set()
    marks, now = _objects(store, MARK_PREFIX)
    for mark in marks:
        parsed = _parse_mark_key(mark["Key"])
        if parsed is None:
            continue
        key, token = parsed
        try:
            upload_id, _, _ = _read_mark(store, mark["Key"])
        except NotFound:
            continue  # its add finished meanwhile
        if upload_id:
            marked_uploads.add(upload_id)
        age = max(0.0, now - mark["LastModified"].timestamp())
        if age < older_than:
            continue
        size = 0
        head = store.head(key, f"checking {store.uri_of(key)}")
        if head is not None and head.get("Metadata", {}).get(ADD_TOKEN) == token:
            size = int(head["ContentLength"])  # complete, its location never returned
        elif upload_id:
            with contextlib.suppress(NotFound):  # else completed or aborted meanwhile
                size = _parts(store, key, upload_id)[0]
        found.append(Orphan(f"{store.uri_of(key)}{ADDING_QUERY}{token}", size, age))
    return found, marked_uploads


def _remove_dead_add(store: S3Store, orphan: Orphan) -> None:
    """Remove what the dead add ``orphan`` names left: its image (only if the image carries
    its token), its pending upload, its mark. One already gone is fine; InUse if the mark
    was refreshed since ``orphan`` was listed (its add is alive after all)."""
    key, token = _parse_dead_add_name(store, orphan.name)
    mark = f"{MARK_PREFIX}{key}/{token}"
    try:
        upload_id, _, age = _read_mark(store, mark)
    except NotFound:
        return
    if age < orphan.age - HEARTBEAT:  # refreshed since it was listed: the add is alive
        raise InUse(
            f"{store.label}: the add of {store.uri_of(key)} wrote again since gc listed it "
            f"({age:.0f} s ago); left alone"
        )
    if store.is_ours(key, token):
        store.call(
            f"removing {store.uri_of(key)}",
            lambda: store.client.delete_object(Bucket=store.bucket, Key=key),
        )
        LOG.info("%s: removed %s, completed by an add that never returned", store.label, key)
    if upload_id:
        store.call(
            f"aborting the upload {upload_id} of {store.uri_of(key)}",
            lambda: abort_upload(store.client, store.bucket, key, upload_id),
        )
    store.call(
        f"removing the mark {mark}",
        lambda: store.client.delete_object(Bucket=store.bucket, Key=mark),
    )


def _objects(store: S3Store, prefix: str) -> tuple[list[dict[str, Any]], float]:
    """Every object whose key starts with ``prefix``, and the server's time."""
    what = f"listing {prefix}* in bucket {store.bucket}"
    found: list[dict[str, Any]] = []
    token: dict[str, str] = {}
    while True:
        page = store.call(
            what,
            partial(store.client.list_objects_v2, Bucket=store.bucket, Prefix=prefix, **token),
        )
        found += page.get("Contents", [])
        if not page.get("IsTruncated"):
            return found, _server_time(page)
        token = {"ContinuationToken": page["NextContinuationToken"]}


def _parse_mark_key(name: str) -> tuple[str, str] | None:
    key, _, token = name.removeprefix(MARK_PREFIX).rpartition("/")
    if not (name.startswith(MARK_PREFIX) and is_image_id(key) and _TOKEN.fullmatch(token)):
        return None
    return key, token


def _read_mark(store: S3Store, mark: str) -> tuple[str | None, str, float]:
    """The upload id a mark records (None: none yet), the state it says (ADDING for a mark
    of an older version) and its age by the server's clock; NotFound if the mark is gone."""
    answer = store.call(
        f"reading the mark {mark}",
        lambda: store.client.get_object(Bucket=store.bucket, Key=mark),
    )
    age = max(0.0, _server_time(answer) - answer["LastModified"].timestamp())
    try:
        body = json.loads(answer["Body"].read())
        upload_id, state = body.get("upload"), body.get("state", ADDING)
    except (ValueError, AttributeError):
        return None, ADDING, age
    return (upload_id if isinstance(upload_id, str) else None), str(state), age


def _parse_dead_add_name(store: S3Store, name: str) -> tuple[str, str]:
    prefix = store.uri_of("")
    key, query, token = name.removeprefix(prefix).partition(ADDING_QUERY)
    if not (name.startswith(prefix) and query and is_image_id(key) and _TOKEN.fullmatch(token)):
        raise BadLocation(
            f"{store.label}: {store.context.scrub(mask_uri(name))} is not an add of this "
            f"store (expected {prefix}<id>{ADDING_QUERY}<token>)"
        )
    return key, token
