"""The S3 store: images as objects in one bucket of an S3 server (AWS, radosgw, Swift s3api).

Options (glance_store's names and meanings; sizes in MB as glance_store takes them):

- ``s3_store_host``: the endpoint, ``https://s3.example.com`` or ``host:port``
  (no scheme: http, as glance_store);
- ``s3_store_access_key``, ``s3_store_secret_key`` (secret), ``s3_store_bucket``;
- ``s3_store_create_bucket_on_put``: create the bucket on the first add;
- ``s3_store_bucket_url_format``: ``auto``, ``path`` or ``virtual`` addressing;
- ``s3_store_region_name``, ``s3_store_cacert``;
- ``s3_store_large_object_size`` (MB, default 100): images from this size go
  up as multipart uploads; ``s3_store_large_object_chunk_size`` (MB, default
  10, at least 5): the part size; ``s3_store_thread_pools`` (default 10): parts
  sent at once; ``s3_store_chunk_size`` (bytes, default 1 MiB): reads from the
  source and from the server;
- ``s3_store_max_attempts``, ``s3_store_retry_backoff``,
  ``s3_store_retry_max_backoff``: retries of what may succeed when sent again;
  ``s3_store_connect_timeout``, ``s3_store_read_timeout``;
- ``s3_store_part_checksum``: ``sha256`` (default) or ``md5``, see below.

An add refuses an existing image id, then sends the image as one PUT when it
fits in one part (or is declared smaller than the large-object size), else as
a multipart upload (:mod:`.s3_multipart`). The server checks every request
body: against its SHA-256, which SigV4 signs (``s3_store_part_checksum =
sha256``, the default), or against a Content-MD5 (``md5``); a single PUT
carries the image's Content-MD5 too (the md5 the add computes anyway). The
PUT and the multipart completion ask the server not to replace an object that
appeared meanwhile (If-None-Match),
and a failed or interrupted add aborts the upload and removes an object it may
have created: nothing is left behind. An add killed mid-upload (kill -9, a
crash) cannot abort; :meth:`S3Store.find_orphans` finds its upload, which
holds storage until aborted, and :meth:`S3Store.remove_orphan` aborts it.

Locations are ``s3://host[:port]/bucket/<id>`` (``s3+https://`` for an https
endpoint), as glance_store writes them, without credentials. glance_store's
older form with credentials (``s3://KEY:SECRET@host/bucket/<id>``) is read too;
those credentials are ignored (the store's own are used) and never shown.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from glance_store_ng.errors import (
    AlreadyExists,
    BadLocation,
    ConfigError,
    InvalidArgument,
    NotFound,
    StoreError,
)
from glance_store_ng.locations import Location, mask_uri
from glance_store_ng.pipeline import Ingest
from glance_store_ng.reader import ImageReader
from glance_store_ng.store import Capabilities, Orphan, Store, check_image_id, clamp_range

from .errors import RetriesExhausted, RetryPolicy, S3Context, error_code, is_retryable
from .multipart import MultipartUpload, PartBuffers, abort_upload, part_size_schedule
from .options import OPTIONS

__all__ = ["S3Store"]

LOG = logging.getLogger("glance_store_ng.drivers.s3")
T = TypeVar("T")
MiB = 1 << 20
SCHEMES = ("s3", "s3+http", "s3+https")
#: Object metadata naming the add that wrote it: a retried request can tell its own work.
ADD_TOKEN = "glance-store-ng-add"
#: Between the image's URI and the upload id in an orphan's name (as S3's API addresses it).
UPLOAD_ID_QUERY = "?uploadId="
_UPLOAD_ID = re.compile(r"[!-~]{1,1024}")  # printable ASCII, no spaces: prints and parses whole


@dataclass(frozen=True)
class S3Object:
    """An image in this store's bucket."""

    key: str
    uri: str  # as written by this store (never with credentials)


def _endpoint(host: str) -> tuple[str, str]:
    """``(endpoint_url, service)`` for ``s3_store_host``; service is host[:port][/path]."""
    url = host if "://" in host else "http://" + host
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected http(s)://host[:port] or host[:port]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("no credentials, query or fragment in the host, please")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}", _service(
        parts.scheme, parts.netloc, parts.path
    )


def _is_image_key(key: str) -> bool:
    """True for a key this driver names images with: an image id, at the bucket's root."""
    try:
        check_image_id(key)
    except InvalidArgument:
        return False
    return True


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


def _service(scheme: str, netloc: str, path: str) -> str:
    """host[:port][/path], lower-cased host, without the scheme's default port."""
    netloc = netloc.lower()
    default = ":443" if scheme == "https" else ":80"
    if netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return (netloc + "/" + path.strip("/")).rstrip("/")


class S3Store(Store):
    """Images as objects in an S3 bucket."""

    schemes = SCHEMES
    CHUNK_SIZE_OPTION = "s3_store_chunk_size"
    OPTIONS = OPTIONS

    def configure(self) -> None:
        conf = self.conf
        try:
            self.endpoint, self.service = _endpoint(conf["s3_store_host"])
        except ValueError as exc:
            raise ConfigError(
                f"{self.label}: option s3_store_host = {conf['s3_store_host']!r} is not valid: "
                f"{exc}"
            ) from None
        self.bucket: str = conf["s3_store_bucket"]
        if not self.bucket or "/" in self.bucket:
            raise ConfigError(f"{self.label}: option s3_store_bucket must be a bucket name")
        self.scheme = "s3+https" if self.endpoint.startswith("https://") else "s3"
        self.large_object_size = conf["s3_store_large_object_size"] * MiB
        self.part_size = conf["s3_store_large_object_chunk_size"] * MiB
        self.threads: int = conf["s3_store_thread_pools"]
        self.content_md5 = conf["s3_store_part_checksum"] == "md5"
        self.policy = RetryPolicy(
            attempts=conf["s3_store_max_attempts"],
            base=conf["s3_store_retry_backoff"],
            cap=conf["s3_store_retry_max_backoff"],
        )
        self.context = S3Context(
            label=self.label,
            endpoint=self.endpoint,
            bucket=self.bucket,
            access_key=conf["s3_store_access_key"],
            secret_key=conf["s3_store_secret_key"],
        )
        integrity = conf["s3_store_enable_data_integrity_protection"]
        config = Config(
            s3={
                "addressing_style": conf["s3_store_bucket_url_format"],
                # The server checks every body against its signed SHA-256, or against
                # the Content-MD5 sent instead (s3_store_part_checksum = md5).
                "payload_signing_enabled": self.content_md5 is False,
            },
            signature_version="s3v4",
            connect_timeout=conf["s3_store_connect_timeout"],
            read_timeout=conf["s3_store_read_timeout"],
            retries={"total_max_attempts": 1},  # ours: see s3_errors.RetryPolicy
            max_pool_connections=max(10, 2 * self.threads),
            request_checksum_calculation=(
                conf["s3_store_request_checksum_calculation"] if integrity else "when_required"
            ),
            response_checksum_validation=(
                conf["s3_store_response_checksum_validation"] if integrity else "when_required"
            ),
        )
        session = boto3.session.Session()
        with self.context.errors("creating the S3 client"):
            self.client = session.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=conf["s3_store_access_key"],
                aws_secret_access_key=conf["s3_store_secret_key"],
                region_name=conf["s3_store_region_name"] or "us-east-1",
                verify=conf["s3_store_cacert"] or None,
                config=config,
            )

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(thin=False, max_image_size=5 << 40)  # S3's largest object

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    # -- locations -----------------------------------------------------------------------

    def _uri(self, key: str) -> str:
        return f"{self.scheme}://{self.service}/{self.bucket}/{key}"

    def _parse_location(self, location: Location) -> S3Object:
        """The object at ``location`` if it is in this store's bucket on this host."""
        if location.scheme not in SCHEMES:
            raise BadLocation(f"{self.label}: {location.masked} is not an s3:// location")
        rest = location.uri.split("://", 1)[1]
        if "://" in rest or "?" in rest or "#" in rest:
            raise BadLocation(
                f"{self.label}: {location.masked} is not s3://host/bucket/<id> (for an https "
                "endpoint write s3+https://host/bucket/<id>)"
            )
        if "@" in rest:  # glance_store's legacy form: s3://KEY:SECRET@host/bucket/id
            rest = rest.rsplit("@", 1)[1]
        netloc, _, path = rest.partition("/")
        parts = path.strip("/").split("/")
        if len(parts) < 2 or not netloc:
            raise BadLocation(f"{self.label}: {location.masked} is not s3://host/bucket/<id>")
        key, bucket = parts[-1], parts[-2]
        scheme = "https" if location.scheme == "s3+https" else "http"
        service = _service(scheme, netloc, "/".join(parts[:-2]))
        if service != self.service or bucket != self.bucket:
            raise BadLocation(
                f"{self.label}: {location.masked} is not in this store (bucket {self.bucket!r} "
                f"at {self.service})"
            )
        try:
            check_image_id(key)
        except InvalidArgument:
            raise BadLocation(f"{self.label}: {location.masked} names no valid image") from None
        return S3Object(key=key, uri=self._uri(key))

    # -- requests ------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` with retries, inside the error boundary."""
        with self.context.errors(what):
            return self.policy.call(fn, what)

    def _head(self, key: str, what: str) -> dict[str, Any] | None:
        """The object's HEAD answer, or None when there is no such object."""
        try:
            return self._call(what, lambda: self.client.head_object(Bucket=self.bucket, Key=key))
        except FileNotFoundError:
            return None

    def _bucket_call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` that writes into the bucket, creating the bucket first if it is missing
        and s3_store_create_bucket_on_put allows it."""
        try:
            with self.context.errors(what):
                return self.policy.call(fn, what)
        except FileNotFoundError:
            if not self.conf["s3_store_create_bucket_on_put"]:
                raise
        self._create_bucket()
        return self._call(what, fn)

    def _create_bucket(self) -> None:
        region = self.conf["s3_store_region_name"]
        extra = (
            {"CreateBucketConfiguration": {"LocationConstraint": region}}
            if region and region != "us-east-1"
            else {}
        )

        def create() -> None:
            try:
                self.client.create_bucket(Bucket=self.bucket, **extra)
            except ClientError as exc:
                if error_code(exc)[0] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

        self._call(f"creating bucket {self.bucket}", create)
        LOG.info("%s: created bucket %s at %s", self.label, self.bucket, self.endpoint)

    def _is_ours(self, key: str, token: str) -> bool:
        head = self._head(key, f"checking {self._uri(key)}")
        return head is not None and head.get("Metadata", {}).get(ADD_TOKEN) == token

    # -- add -----------------------------------------------------------------------------

    def _add(self, image_id: str, ingest: Ingest) -> str:
        key, uri = image_id, self._uri(image_id)
        if self._head(key, f"checking whether {uri} exists") is not None:
            raise AlreadyExists(f"{self.label}: image {image_id} already exists at {uri}")
        token = secrets.token_hex(16)
        declared = ingest.declared_size
        single = declared is not None and declared < self.large_object_size
        part_size = part_size_schedule(self.part_size, declared)
        buffers = PartBuffers(self.threads + 1)
        upload: MultipartUpload | None = None
        sent = False  # a request that may create the object was sent
        try:
            buffer = buffers.get(declared if single else part_size(1))
            filled, number = 0, 1
            for chunk in ingest:  # errors of the caller's source propagate unchanged
                data = chunk.data
                while data:
                    if filled == len(buffer):  # full, and more is coming: a multipart upload
                        if upload is None:
                            upload = self._start_upload(key, token, buffers)
                        upload.submit(number, buffer, filled)
                        number += 1
                        buffer = buffers.get(part_size(number))
                        upload.raise_failure()
                        filled = 0
                    count = min(len(buffer) - filled, len(data))
                    buffer[filled : filled + count] = data[:count]
                    filled += count
                    data = data[count:]
            sent = True
            if upload is None:
                self._put(key, token, buffer, filled, ingest.checksum)
            else:
                upload.submit(number, buffer, filled)
                if self._head(key, f"checking whether {uri} exists") is not None:
                    raise AlreadyExists(
                        f"{self.label}: image {image_id} was stored by someone else meanwhile "
                        f"at {uri}; nothing was overwritten"
                    )
                upload.complete(if_none_match=True, is_ours=lambda: self._is_ours(key, token))
        except BaseException:
            if upload is not None:
                upload.abort()
            if sent:
                self._remove_if_ours(key, token)
            raise
        return uri

    def _start_upload(self, key: str, token: str, buffers: PartBuffers) -> MultipartUpload:
        return MultipartUpload(
            self.client,
            self.context,
            self.policy,
            key=key,
            metadata={ADD_TOKEN: token},
            threads=self.threads,
            buffers=buffers,
            content_md5=self.content_md5,
            start=lambda fn: self._bucket_call(f"starting the upload of {self._uri(key)}", fn),
        )

    def _put(self, key: str, token: str, buffer: bytearray, length: int, md5_hex: str) -> None:
        body = buffer if length == len(buffer) else bytes(memoryview(buffer)[:length])
        md5 = base64.b64encode(bytes.fromhex(md5_hex)).decode()
        tries = 0

        def put() -> None:
            nonlocal tries
            tries += 1
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentMD5=md5,
                    Metadata={ADD_TOKEN: token},
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if error_code(exc)[1] != 412:
                    raise
                if tries > 1 and self._is_ours(key, token):
                    return  # an earlier try stored it and its answer was lost
                raise AlreadyExists(
                    f"{self.label}: image {key} was stored by someone else meanwhile at "
                    f"{self._uri(key)}; nothing was overwritten"
                ) from None

        self._bucket_call(f"storing {self._uri(key)}", put)

    def _remove_if_ours(self, key: str, token: str) -> None:
        """Delete ``key`` if this add wrote it (an add that failed after its object appeared)."""
        try:
            if self._is_ours(key, token):
                self._call(
                    f"removing {self._uri(key)}",
                    lambda: self.client.delete_object(Bucket=self.bucket, Key=key),
                )
        except Exception as exc:
            LOG.warning(
                "%s: could not check or remove %s after a failed add: %s",
                self.label,
                self._uri(key),
                self.context.scrub(str(exc)),
            )

    # -- orphans: multipart uploads that no add will complete or abort --------------------

    def find_orphans(self, older_than: float = 3600.0) -> list[Orphan]:
        """Multipart uploads of adds that died mid-upload (kill -9, a crash, a lost host).

        The server keeps their parts, and the storage they take, until they are
        aborted. Listed: uploads of keys this store names images with (an image
        id at the bucket's root) started and sent no part for ``older_than``
        seconds, by the server's clock. A running add sends parts all along, so
        even a long one is left alone.
        The name is ``s3://host/bucket/<id>?uploadId=<upload id>``.
        """
        found = []
        for upload, now in self._pending_uploads():
            key, upload_id = upload["Key"], upload["UploadId"]
            started = upload["Initiated"].timestamp()
            if not (_is_image_key(key) and _UPLOAD_ID.fullmatch(upload_id)):
                continue  # not an upload this driver starts
            if max(0.0, now - started) < older_than:
                continue  # recent: the add may be running (no need to list its parts)
            try:
                size, last_part = self._parts(key, upload_id)
            except NotFound:
                continue  # completed or aborted meanwhile
            age = max(0.0, now - max(started, last_part))
            if age >= older_than:
                found.append(Orphan(self._orphan_name(key, upload_id), size, age))
        return found

    def remove_orphan(self, orphan: Orphan) -> None:
        """Abort the multipart upload ``orphan`` names; one already gone is fine."""
        key, upload_id = self._parse_orphan_name(orphan.name)
        self._call(
            f"aborting {orphan.name}",
            lambda: abort_upload(self.client, self.bucket, key, upload_id),
        )
        LOG.info("%s: aborted abandoned multipart upload %s", self.label, orphan.name)

    def _orphan_name(self, key: str, upload_id: str) -> str:
        return f"{self._uri(key)}{UPLOAD_ID_QUERY}{upload_id}"

    def _parse_orphan_name(self, name: str) -> tuple[str, str]:
        """``(key, upload id)`` from a name :meth:`find_orphans` gives; else BadLocation."""
        prefix = self._uri("")
        key, query, upload_id = name.removeprefix(prefix).partition(UPLOAD_ID_QUERY)
        if not (
            name.startswith(prefix)
            and query
            and _is_image_key(key)
            and _UPLOAD_ID.fullmatch(upload_id)
        ):
            raise BadLocation(
                f"{self.label}: {self.context.scrub(mask_uri(name))} is not a multipart upload "
                f"of this store (expected {prefix}<id>{UPLOAD_ID_QUERY}<upload id>)"
            )
        return key, upload_id

    def _pending_uploads(self) -> Iterator[tuple[dict[str, Any], float]]:
        """Every multipart upload pending in the bucket (all pages), with the server's time."""
        what = f"listing the multipart uploads in bucket {self.bucket}"
        markers: dict[str, str] = {}
        while True:
            page = self._call(
                what, partial(self.client.list_multipart_uploads, Bucket=self.bucket, **markers)
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

    def _parts(self, key: str, upload_id: str) -> tuple[int, float]:
        """The bytes in an upload's parts, and when its latest part was written (0 if none)."""
        what = f"listing the parts of {self._orphan_name(key, upload_id)}"
        size, last, marker = 0, 0.0, 0
        while True:
            page = self._call(
                what,
                partial(
                    self.client.list_parts,
                    Bucket=self.bucket,
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

    # -- get, get_size, delete -----------------------------------------------------------

    def _stat(self, obj: S3Object) -> dict[str, Any]:
        head = self._head(obj.key, f"reading {obj.uri}")
        if head is None:
            raise NotFound(f"{self.label}: no image at {obj.uri}")
        return head

    def _get(self, location: S3Object, offset: int, length: int | None) -> ImageReader:
        head = self._stat(location)
        size = int(head["ContentLength"])
        count = clamp_range(size, offset, length, f"{self.label}: {location.uri}")
        reader = _RangeReader(self, location, head.get("ETag"), offset, offset + count)
        return ImageReader(reader.chunks(), count, close=reader.close)

    def _get_size(self, location: S3Object) -> int:
        return int(self._stat(location)["ContentLength"])

    def _delete(self, location: S3Object) -> None:
        self._stat(location)
        self._call(
            f"deleting {location.uri}",
            lambda: self.client.delete_object(Bucket=self.bucket, Key=location.key),
        )


class _RangeReader:
    """Bytes ``start``..``end`` of one object through ranged GETs.

    A connection that drops mid-stream is picked up where it stopped with a new
    ranged GET (If-Match the ETag seen first, so a replaced object is never
    spliced in), within the store's retry policy.
    """

    def __init__(
        self, store: S3Store, obj: S3Object, etag: str | None, start: int, end: int
    ) -> None:
        self.store = store
        self.obj = obj
        self.etag = etag
        self.pos = start
        self.end = end
        self.body: Any = None
        self.failing_since = time.monotonic()

    def _open(self) -> Any:
        extra = {"IfMatch": self.etag} if self.etag else {}
        answer = self.store.client.get_object(
            Bucket=self.store.bucket,
            Key=self.obj.key,
            Range=f"bytes={self.pos}-{self.end - 1}",
            **extra,
        )
        return answer["Body"]

    def chunks(self) -> Iterator[bytes]:
        store, step = self.store, self.store.chunk_size
        failures = 0
        what = f"reading {self.obj.uri}"
        with store.context.errors(what):
            while self.pos < self.end:
                try:
                    if self.body is None:
                        self.body = self._open()
                    piece = self.body.read(min(step, self.end - self.pos))
                    if not piece:
                        raise ConnectionResetError("the server ended the answer early")
                except ClientError as exc:
                    if error_code(exc)[1] == 412:
                        raise StoreError(
                            f"{store.label}: {self.obj.uri} was replaced while being read"
                        ) from None
                    failures = self._retry_or_raise(exc, failures, what)
                    continue
                except Exception as exc:
                    failures = self._retry_or_raise(exc, failures, what)
                    continue
                failures = 0
                self.pos += len(piece)
                yield piece
        self.close()

    def _retry_or_raise(self, exc: Exception, failures: int, what: str) -> int:
        self.close()
        failures += 1
        if not is_retryable(exc):
            raise exc
        if failures == 1:
            self.failing_since = time.monotonic()
        if failures >= self.store.policy.attempts:
            raise RetriesExhausted(exc, failures, time.monotonic() - self.failing_since) from exc
        time.sleep(self.store.policy.delay(failures))
        LOG.debug("%s: resuming at byte %d after %s", what, self.pos, type(exc).__name__)
        return failures

    def close(self) -> None:
        body, self.body = self.body, None
        if body is not None:
            with contextlib.suppress(Exception):
                body.close()
