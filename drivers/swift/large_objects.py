"""Large objects: Static Large Object uploads, and deleting SLOs and DLOs with their segments.

:class:`SwiftUpload` is the :class:`~glance_store_ng.part_writer.PartUpload`
of one add: the core's PartWriter re-chunks the image into segments, sends
them in parallel with bounded memory and retries each from its buffer. An
image that fits in one segment goes up as one object with its md5 as ETag,
which Swift checks (422 on a mismatch). Otherwise the segments go to
``<container>_segments`` under a prefix of their own, ``<image id>/<random>/``,
so two uploads never share a segment and a failed one is cleaned up by
listing that prefix (which also finds a segment whose PUT reached the server
although its answer was lost). Each segment PUT carries the md5 of its bytes
as ETag; the manifest lists every segment's ETag and size, and Swift checks
them again before it accepts the manifest. A manifest holds at most the
server's ``max_manifest_segments`` segments (1000 by default): beyond,
segments are grouped under sub-manifests, an SLO of SLOs, as Swift allows.

Images glance_store wrote are Dynamic Large Objects: a manifest object with
``X-Object-Manifest: container/prefix`` and segments named by that prefix.
Reads go through Swift's dlo middleware like any object; :func:`delete_object`
removes the manifest, then the segments.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from glance_store_ng.errors import (
    AlreadyExists,
    ChecksumMismatch,
    PermissionDenied,
    Retry,
    StoreError,
)

from .account import Account

__all__ = [
    "ADD_TOKEN_HEADER",
    "SwiftUpload",
    "check_etag",
    "delete_object",
    "delete_quietly",
    "list_entries",
    "list_objects",
    "put_object",
    "segment_container",
]

LOG = logging.getLogger("glance_store_ng.swift")

#: The image object's (or manifest's) metadata naming the add that wrote it (its token).
ADD_TOKEN_HEADER = "X-Object-Meta-Glance-Store-Ng-Add"

DEFAULT_MAX_MANIFEST_SEGMENTS = 1000


def segment_container(container: str) -> str:
    """Where the segments of the images in ``container`` go."""
    return f"{container}_segments"


def list_entries(account: Account, path: str, prefix: str = "") -> list[dict[str, Any]]:
    """Swift's listing of ``path`` (a container, or "" for the account's containers) under
    ``prefix``, all pages: a dict per entry with its ``name``, ``bytes``, ``last_modified``.
    [] if the container does not exist."""
    entries: list[dict[str, Any]] = []
    marker = ""
    while True:
        query = f"format=json&prefix={quote(prefix, safe='')}&marker={quote(marker, safe='')}"
        resp = account.request(
            "GET", path, what=f"listing {path or 'the containers'}", allow=(404,), query=query
        )
        if resp.status_code == 404:
            return entries
        page = json.loads(resp.content or b"[]")
        if not page:
            return entries
        entries.extend(page)
        marker = page[-1]["name"]


def list_objects(account: Account, container: str, prefix: str = "") -> list[str]:
    """Every object name in ``container`` under ``prefix`` (all pages); [] if no container."""
    return [entry["name"] for entry in list_entries(account, container, prefix)]


def delete_quietly(account: Account, path: str, what: str) -> None:
    """Delete ``path``; one already gone is fine (it is retried: a lost answer is no error)."""
    account.request("DELETE", path, what=what, allow=(404,), retry=True)


def put_object(account: Account, path: str, headers: dict[str, str], data: Any, label: str) -> Any:
    """PUT an image object (or manifest) that must not exist yet: AlreadyExists on 409/412,
    a clear error if its container is missing. Sent once: If-None-Match cannot tell a
    retry of our own PUT from someone else's object."""
    headers = {**headers, "If-None-Match": "*"}
    resp = account.request(
        "PUT", path, what=f"writing {path}", allow=(404, 409, 412), headers=headers, data=data
    )
    if resp.status_code in (409, 412):  # 409: a newer PUT of the same name landed first
        raise AlreadyExists(f"{label}: image {path} already exists; nothing was overwritten")
    if resp.status_code == 404:
        raise StoreError(
            f"{label}: container {path.split('/')[0]} does not exist; create it "
            "or set swift_store_create_container_on_put = true"
        )
    return resp


def check_etag(account: Account, path: str, resp: Any, md5: str, label: str) -> None:
    """Swift's ETag of a plain object is the md5 of what it stored: delete it if not ours."""
    returned = resp.headers.get("Etag", "").strip('"')
    if returned != md5:
        with contextlib.suppress(StoreError):
            account.request("DELETE", path, what=f"removing the damaged {path}")
        raise ChecksumMismatch(
            f"{label}: Swift stored {path} with ETag {returned}, expected {md5}",
            retry=Retry.TEMPORARY,
        )


class SwiftUpload:
    """The upload of image ``image_id`` into ``container``: one object, or an SLO.

    ``md5_hex()`` is the image's md5, known once the data has all been read. ``token``
    (16 hex digits) names the upload: its segments' prefix, the image's metadata.
    ``on_publish()`` is called just before the PUT that makes the image (the object or
    the manifest) starts.
    """

    def __init__(
        self,
        account: Account,
        container: str,
        image_id: str,
        *,
        md5_hex: Callable[[], str],
        max_manifest_segments: int,
        label: str,
        token: str,
        on_publish: Callable[[], None],
        segments: str | None = None,
    ) -> None:
        self.account = account
        self.container = container
        self.image_id = image_id
        self.path = f"{container}/{image_id}"
        self.md5_hex = md5_hex
        self.segments = segments or segment_container(container)
        self.token = token
        self.prefix = f"{image_id}/{token}/"
        self.max_manifest_segments = max_manifest_segments
        self.label = label
        self.on_publish = on_publish
        self._committing = False

    def write_once(self, data: memoryview) -> None:
        """One PUT of the whole image, with its md5 as ETag (Swift checks it: 422 if not)."""
        md5 = self.md5_hex()
        headers = {"ETag": md5, "Content-Length": str(len(data)), ADD_TOKEN_HEADER: self.token}
        self.on_publish()
        resp = put_object(self.account, self.path, headers, data if len(data) else b"", self.label)
        check_etag(self.account, self.path, resp, md5, self.label)

    # -- segments ----------------------------------------------------------------------

    def start(self) -> None:
        self.account.request(
            "PUT", self.segments, what=f"creating segment container {self.segments}", retry=True
        )

    def send_part(self, number: int, data: memoryview) -> dict[str, Any]:
        name = f"{self.prefix}{number:08d}"
        etag = hashlib.md5(data).hexdigest()
        resp = self.account.request(
            "PUT",
            f"{self.segments}/{name}",
            what=f"writing segment {self.segments}/{name}",
            retry=False,  # the part writer retries it
            headers={"ETag": etag, "Content-Length": str(len(data))},
            data=data if len(data) else b"",
        )
        returned = resp.headers.get("Etag", "").strip('"')
        if returned != etag:
            raise ChecksumMismatch(
                f"{self.label}: segment {name}: Swift stored ETag {returned}, sent {etag}",
                retry=Retry.TEMPORARY,
            )
        return {"path": f"/{self.segments}/{name}", "etag": etag, "size_bytes": len(data)}

    # -- the manifest ------------------------------------------------------------------

    def commit(self, entries: list[dict[str, Any]]) -> None:
        """Write the manifest once every segment is stored; AlreadyExists if the id was taken."""
        group = 0
        while len(entries) > self.max_manifest_segments:
            grouped = []
            for start in range(0, len(entries), self.max_manifest_segments):
                group += 1
                part = entries[start : start + self.max_manifest_segments]
                name = f"{self.prefix}manifest-{group:06d}"
                self._put_manifest(f"{self.segments}/{name}", part, exclusive=False)
                grouped.append(
                    {
                        "path": f"/{self.segments}/{name}",
                        "etag": slo_etag(part),
                        "size_bytes": sum(e["size_bytes"] for e in part),
                    }
                )
            entries = grouped
        self._committing = True
        self.on_publish()
        self._put_manifest(self.path, entries, exclusive=True)

    def _put_manifest(self, path: str, entries: list[dict[str, Any]], exclusive: bool) -> None:
        headers = {"Content-Type": "application/octet-stream", "ETag": slo_etag(entries)}
        body = json.dumps(entries).encode()
        what = f"writing the manifest of {path}"
        if exclusive:
            resp = self.account.request(
                "PUT",
                path,
                what=what,
                allow=(400, 409, 412, 422),
                query="multipart-manifest=put",
                headers={**headers, "If-None-Match": "*", ADD_TOKEN_HEADER: self.token},
                data=body,
            )
        else:  # a sub-manifest: a name of this upload's own, the same PUT twice is harmless
            resp = self.account.request(
                "PUT",
                path,
                what=what,
                allow=(400, 422),
                retry=True,
                query="multipart-manifest=put",
                headers=headers,
                data=body,
            )
        if resp.status_code in (409, 412):  # 409: a newer PUT of the same name landed first
            raise AlreadyExists(f"{self.label}: image {self.image_id} already exists at {path}")
        if resp.status_code in (400, 422):
            detail = resp.content[:200].decode("utf-8", "replace").strip()
            raise ChecksumMismatch(
                f"{self.label}: Swift refused the manifest of {path}: HTTP "
                f"{resp.status_code} {detail}",
                retry=Retry.TEMPORARY,
            )

    def abort(self) -> None:
        """Delete every segment (and sub-manifest) of this upload; log what is left.

        A manifest PUT whose answer was lost may have made the image: if the
        image's manifest lists this upload's segments, it is deleted with them.
        """
        try:
            if self._committing and self._manifest_is_ours():
                delete_object(self.account, self.path, self.label)
        except Exception as exc:  # the add's own error matters more; say what is left
            LOG.error("%s: could not check or remove %s after a failed add: %s",
                      self.label, self.path, exc)  # fmt: skip
        self.remove_segments()

    def remove_segments(self) -> None:
        """Delete every segment (and sub-manifest) of this upload; log, never raise."""
        try:
            for name in list_objects(self.account, self.segments, self.prefix):
                delete_quietly(
                    self.account,
                    f"{self.segments}/{name}",
                    f"removing segment {self.segments}/{name} of a failed add",
                )
        except Exception as exc:  # the add's own error matters more; say what is left
            LOG.error(
                "%s: could not remove the segments %s/%s* of a failed add "
                "(glance-store-ng gc removes them): %s",
                self.label,
                self.segments,
                self.prefix,
                exc,
            )

    def _manifest_is_ours(self) -> bool:
        what = f"checking the manifest of {self.path}"
        newest = {"X-Newest": "true"}
        head = self.account.request("HEAD", self.path, what=what, allow=(404,), headers=newest)
        if head.status_code == 404:
            return False
        if head.headers.get("X-Static-Large-Object", "").lower() != "true":
            return False
        manifest = self.account.request(
            "GET", self.path, what=what, query="multipart-manifest=get&format=raw", headers=newest
        )
        ours = f"/{self.segments}/{self.prefix}"
        return any(item.get("path", "").startswith(ours) for item in json.loads(manifest.content))


def slo_etag(entries: list[dict[str, Any]]) -> str:
    """The ETag Swift gives an SLO: the md5 of its segments' ETags, concatenated."""
    return hashlib.md5("".join(e["etag"] for e in entries).encode()).hexdigest()


def delete_object(account: Account, path: str, label: str) -> None:
    """Delete the object at ``container/object``: a plain object, an SLO or a DLO, whole."""
    head = account.request("HEAD", path, what=f"deleting {path}").headers
    if head.get("X-Static-Large-Object", "").lower() == "true":
        resp = account.request(
            "DELETE",
            path,
            what=f"deleting {path} and its segments",
            query="multipart-manifest=delete",
            headers={"Accept": "application/json"},
        )
        _check_bulk_delete(resp.content, path, label)
        return
    account.request("DELETE", path, what=f"deleting {path}")
    manifest = head.get("X-Object-Manifest")
    if manifest:
        container, _, prefix = unquote(manifest).partition("/")
        for name in list_objects(account, container, prefix):
            delete_quietly(
                account,
                f"{container}/{name}",
                f"deleting segment {container}/{name} of {path}",
            )


def _check_bulk_delete(body: bytes, path: str, label: str) -> None:
    """SLO deletes answer 200 at once and report the real outcome in the body."""
    try:
        report = json.loads(body or b"{}")
    except ValueError:
        report = {}
    status = str(report.get("Response Status", "200"))
    errors = report.get("Errors") or []
    if not status.startswith("2") or errors:
        shown = "; ".join(f"{name}: {why}" for name, why in errors[:3])
        denied = errors and all(str(why).startswith("403") for _, why in errors)
        kind = PermissionDenied if denied else StoreError  # e.g. a reader not allowed to write
        raise kind(f"{label}: deleting {path} and its segments failed: {status} {shown}")
