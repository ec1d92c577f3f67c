"""S3 orphans: the multipart uploads of adds that died mid-upload (kill -9, a crash).

The server keeps their parts, and the storage they take, until they are
aborted; ``glance-store-ng gc`` lists and aborts them through these functions
(:meth:`S3Store.find_orphans`, :meth:`S3Store.remove_orphan`). An orphan's
name is ``s3://host/bucket/<id>?uploadId=<upload id>``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from glance_store_ng.errors import BadLocation, NotFound
from glance_store_ng.locations import mask_uri
from glance_store_ng.store import Orphan, is_image_id

from .multipart import abort_upload

if TYPE_CHECKING:
    from .store import S3Store

__all__ = ["abort_abandoned_upload", "find_abandoned_uploads"]

LOG = logging.getLogger("glance_store_ng.drivers.s3")

#: Between the image's URI and the upload id in an orphan's name (as S3's API addresses it).
UPLOAD_ID_QUERY = "?uploadId="
_UPLOAD_ID = re.compile(r"[!-~]{1,1024}")  # printable ASCII, no spaces: prints and parses whole


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


def find_abandoned_uploads(store: S3Store, older_than: float) -> list[Orphan]:
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


def abort_abandoned_upload(store: S3Store, orphan: Orphan) -> None:
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
    """``(key, upload id)`` from a name :func:`find_abandoned_uploads` gives; else BadLocation."""
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
