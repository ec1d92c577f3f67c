"""Large objects: Static Large Object uploads, and deleting SLOs and DLOs with their segments.

An SLO upload puts its segments in ``<container>_segments`` under a prefix of
its own, ``<image id>/<random>/``, so two uploads never share a segment and a
failed one is cleaned up by listing that prefix (which also finds a segment
whose PUT reached the server although its answer was lost). Segments are
copied into a fixed pool of ``concurrency + 1`` buffers and go up on
``concurrency`` threads, each PUT with the md5 of its bytes as ETag, which
Swift checks (422 on a mismatch). The manifest lists every segment's ETag and
size, and Swift checks them again against what it holds before it accepts the
manifest. A manifest holds at most the server's ``max_manifest_segments``
segments (1000 by default): beyond, segments are grouped under
sub-manifests, an SLO of SLOs, as Swift allows.

Images glance_store wrote are Dynamic Large Objects: a manifest object with
``X-Object-Manifest: container/prefix`` and segments named by that prefix.
Reads go through Swift's dlo middleware like any object; :func:`delete_object`
removes the manifest, then the segments.
"""

from __future__ import annotations

import hashlib
import json
import queue
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, unquote

from glance_store_ng.errors import AlreadyExists, ChecksumMismatch, Retry, StoreError

from .account import Account, HTTPError, swift_errors

__all__ = [
    "SegmentedUpload",
    "delete_object",
    "list_entries",
    "list_objects",
    "segment_container",
]

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
        try:
            resp = account.request("GET", path, query=query)
        except HTTPError as exc:
            if exc.status == 404:
                return entries
            raise
        page = json.loads(resp.content or b"[]")
        if not page:
            return entries
        entries.extend(page)
        marker = page[-1]["name"]


def list_objects(account: Account, container: str, prefix: str = "") -> list[str]:
    """Every object name in ``container`` under ``prefix`` (all pages); [] if no container."""
    return [entry["name"] for entry in list_entries(account, container, prefix)]


def _delete_quietly(account: Account, path: str) -> None:
    try:
        account.request("DELETE", path)
    except HTTPError as exc:
        if exc.status != 404:
            raise


class SegmentedUpload:
    """One SLO upload: segments submitted in order, the manifest committed last.

    Use :meth:`buffer` to get a buffer to fill, :meth:`submit` to send it as
    the next segment, :meth:`commit` to write the manifest, and
    :meth:`abort` (on any failure) to remove every segment written.
    """

    def __init__(
        self,
        account: Account,
        container: str,
        image_id: str,
        *,
        segment_size: int,
        concurrency: int,
        max_manifest_segments: int,
        label: str,
    ) -> None:
        self.account = account
        self.container = container
        self.image_id = image_id
        self.segments = segment_container(container)
        self.prefix = f"{image_id}/{secrets.token_hex(8)}/"
        self.segment_size = segment_size
        self.max_manifest_segments = max_manifest_segments
        self.label = label
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._buffers = 0
        self._buffers_lock = threading.Lock()
        self._max_buffers = concurrency + 1
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="gsn-swift-segment")
        self._futures: list[Future[dict[str, Any]]] = []
        self._failed = threading.Event()
        self._segments_container_ready = False

    # -- segments ----------------------------------------------------------------------

    def buffer(self, size: int | None = None) -> bytearray:
        """A free buffer of ``segment_size`` bytes (or ``size`` for a first, smaller one)."""
        while True:
            self._raise_failure()
            try:
                return self._free.get_nowait()
            except queue.Empty:
                pass
            with self._buffers_lock:
                grow = self._buffers < self._max_buffers
                if grow:
                    self._buffers += 1
            if grow:
                return bytearray(size or self.segment_size)
            try:
                return self._free.get(timeout=0.2)
            except queue.Empty:
                continue

    def release(self, buffer: bytearray) -> None:
        """Give back a buffer that will not be submitted."""
        if len(buffer) == self.segment_size:
            self._free.put(buffer)
        else:
            with self._buffers_lock:
                self._buffers -= 1

    def submit(self, buffer: bytearray, length: int) -> None:
        """Send ``buffer[:length]`` as the next segment; the buffer comes back to the pool."""
        self._raise_failure()
        if not self._segments_container_ready:
            self._ensure_segments_container()
        index = len(self._futures) + 1
        name = f"{self.prefix}{index:08d}"
        self._futures.append(self._executor.submit(self._put_segment, name, buffer, length))

    def _ensure_segments_container(self) -> None:
        with swift_errors(self.label, f"creating segment container {self.segments}"):
            self.account.request("PUT", self.segments)
        self._segments_container_ready = True

    def _put_segment(self, name: str, buffer: bytearray, length: int) -> dict[str, Any]:
        try:
            with memoryview(buffer) as whole, whole[:length] as view:
                etag = hashlib.md5(view).hexdigest()
                with swift_errors(self.label, f"writing segment {self.segments}/{name}"):
                    resp = self.account.request(
                        "PUT",
                        f"{self.segments}/{name}",
                        headers={"ETag": etag, "Content-Length": str(length)},
                        data=view if length else b"",
                    )
            returned = resp.headers.get("Etag", "").strip('"')
            if returned != etag:
                raise ChecksumMismatch(
                    f"{self.label}: segment {name}: Swift stored ETag {returned}, sent {etag}"
                )
            return {"path": f"/{self.segments}/{name}", "etag": etag, "size_bytes": length}
        except BaseException:
            self._failed.set()
            raise
        finally:
            self.release(buffer)

    def _raise_failure(self) -> None:
        if not self._failed.is_set():
            return
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def _wait(self) -> list[dict[str, Any]]:
        return [future.result() for future in self._futures]

    # -- the manifest ------------------------------------------------------------------

    def commit(self) -> None:
        """Write the manifest once every segment is stored; AlreadyExists if the id was taken."""
        entries = self._wait()
        self._executor.shutdown()
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
        self._put_manifest(f"{self.container}/{self.image_id}", entries, exclusive=True)

    def _put_manifest(self, path: str, entries: list[dict[str, Any]], exclusive: bool) -> None:
        headers = {"Content-Type": "application/octet-stream", "ETag": slo_etag(entries)}
        if exclusive:
            headers["If-None-Match"] = "*"
        body = json.dumps(entries).encode()
        with swift_errors(self.label, f"writing the manifest of {path}"):
            try:
                self.account.request(
                    "PUT", path, query="multipart-manifest=put", headers=headers, data=body
                )
            except HTTPError as exc:
                if exc.status in (409, 412):  # 409: a newer PUT of the same name landed first
                    raise AlreadyExists(
                        f"{self.label}: image {self.image_id} already exists at {path}"
                    ) from None
                if exc.status in (400, 422):
                    raise ChecksumMismatch(
                        f"{self.label}: Swift refused the manifest of {path}: {exc.detail}",
                        retry=Retry.TEMPORARY,
                    ) from None
                raise

    def abort(self) -> None:
        """Stop the uploads and delete every segment (and sub-manifest) written so far."""
        for future in self._futures:
            future.cancel()
        self._executor.shutdown(wait=True)
        if not self._futures:
            return  # no segment was sent
        with swift_errors(self.label, f"removing the segments of {self.image_id}"):
            for name in list_objects(self.account, self.segments, self.prefix):
                _delete_quietly(self.account, f"{self.segments}/{name}")


def slo_etag(entries: list[dict[str, Any]]) -> str:
    """The ETag Swift gives an SLO: the md5 of its segments' ETags, concatenated."""
    return hashlib.md5("".join(e["etag"] for e in entries).encode()).hexdigest()


def delete_object(account: Account, path: str, label: str) -> None:
    """Delete the object at ``container/object``: a plain object, an SLO or a DLO, whole."""
    with swift_errors(label, f"no image at {path}"):
        head = account.request("HEAD", path).headers
    if head.get("X-Static-Large-Object", "").lower() == "true":
        with swift_errors(label, f"deleting {path} and its segments"):
            resp = account.request(
                "DELETE",
                path,
                query="multipart-manifest=delete",
                headers={"Accept": "application/json"},
            )
        _check_bulk_delete(resp.content, path, label)
        return
    with swift_errors(label, f"deleting {path}"):
        account.request("DELETE", path)
    manifest = head.get("X-Object-Manifest")
    if manifest:
        container, _, prefix = unquote(manifest).partition("/")
        with swift_errors(label, f"deleting the segments {container}/{prefix}* of {path}"):
            for name in list_objects(account, container, prefix):
                _delete_quietly(account, f"{container}/{name}")


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
        raise StoreError(f"{label}: deleting {path} and its segments failed: {status} {shown}")
