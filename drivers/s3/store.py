"""The S3 store: images as objects in one bucket of an S3 server (AWS, radosgw, Swift s3api).

Options carry glance_store's names and meanings (sizes in MB, as there);
``glance-store-ng drivers`` lists them with their help (see options.py).

An add refuses an existing image id, then sends the image as one PUT when it
fits in one part (or is declared smaller than ``s3_store_large_object_size``),
else as a multipart upload, through the core's PartWriter (see multipart.py
for what the server checks). Of two adds of one id whose final requests (the
PUT, the completion) overlap on a server that checks If-None-Match only when a
request starts (Swift's s3api), the add's mark makes exactly one win, the one
whose object the server kept (glance_store_ng.overlapping). A failed or
interrupted add aborts the upload and removes an object it may have created:
nothing is left behind. An add killed
(kill -9, a crash) cannot clean up: its mark (orphans.py) lets
:meth:`S3Store.find_orphans` find its upload, which holds storage until aborted,
or the image it completed without returning, and :meth:`S3Store.remove_orphan`
removes them. Reads are ranged GETs that resume
where a broken one stopped (the core's ResumingReader); every request goes
through the store's RetryPolicy (``s3_store_max_attempts``).

Locations are ``s3://host[:port]/bucket/<id>`` (``s3+https://`` for an https
endpoint), as glance_store writes them, without credentials. glance_store's
older form with credentials (``s3://KEY:SECRET@host/bucket/<id>``) is read too;
those credentials are ignored (the store's own are used) and never shown.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from glance_store_ng import native
from glance_store_ng.errors import (
    AlreadyExists,
    BadLocation,
    ConfigError,
    InvalidArgument,
    NotFound,
    StoreError,
)
from glance_store_ng.locations import Location, mask_url
from glance_store_ng.overlapping import PUBLISHED, outcome, settle
from glance_store_ng.part_writer import PartWriter
from glance_store_ng.pipeline import Ingest
from glance_store_ng.reader import ImageReader, ResumingReader
from glance_store_ng.retry import RetryPolicy
from glance_store_ng.store import Capabilities, Orphan, Store, check_image_id, clamp_range
from glance_store_ng.units import MiB

from . import orphans
from .errors import DIGEST_CODES, S3Context, error_code
from .multipart import (
    ADD_TOKEN,
    PROBE_PREFIX,
    S3Upload,
    crc_header,
    part_size_schedule,
)
from .options import OPTIONS

__all__ = ["S3Store"]

LOG = logging.getLogger("glance_store_ng.drivers.s3")
T = TypeVar("T")
SCHEMES = ("s3", "s3+http", "s3+https")


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
        raise ValueError(
            "no credentials, query or fragment in the host, please (the keys go in "
            "s3_store_access_key and s3_store_secret_key)"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}", _service(
        parts.scheme, parts.netloc, parts.path
    )


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
                f"{self.label}: option s3_store_host = {mask_url(conf['s3_store_host'])!r} is "
                f"not valid: {exc}"
            ) from None
        self.bucket: str = conf["s3_store_bucket"]
        if not self.bucket or "/" in self.bucket:
            raise ConfigError(f"{self.label}: option s3_store_bucket must be a bucket name")
        self.scheme = "s3+https" if self.endpoint.startswith("https://") else "s3"
        self.large_object_size = conf["s3_store_large_object_size"] * MiB
        self.part_size = conf["s3_store_large_object_chunk_size"] * MiB
        self.threads: int = conf["s3_store_thread_pools"]
        self.part_checksum: str = conf["s3_store_part_checksum"]  # "auto" until probed
        if self.part_checksum == "crc32c" and native.IMPLEMENTATION != "native":
            raise ConfigError(
                f"{self.label}: s3_store_part_checksum = crc32c needs the C module "
                f"({native.NATIVE_UNAVAILABLE_REASON}); set crc32 or auto, or build it"
            )
        self._probing = threading.Lock()
        self._old_clients: list[Any] = []  # replaced by resolve_part_checksum
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
        self.client = self._make_client(signed=self.part_checksum == "sha256")

    def _make_client(self, signed: bool) -> Any:
        """A boto3 client; ``signed``: SigV4 signs every body's SHA-256 (the server checks
        it), else the bodies carry a CRC or a Content-MD5 the server checks instead."""
        conf = self.conf
        integrity = conf["s3_store_enable_data_integrity_protection"]
        config = Config(
            s3={
                "addressing_style": conf["s3_store_bucket_url_format"],
                "payload_signing_enabled": signed,
            },
            signature_version="s3v4",
            connect_timeout=conf["s3_store_connect_timeout"],
            read_timeout=conf["s3_store_read_timeout"],
            retries={"total_max_attempts": 1},  # ours: glance_store_ng.retry.RetryPolicy
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
            return session.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=conf["s3_store_access_key"],
                aws_secret_access_key=conf["s3_store_secret_key"],
                region_name=conf["s3_store_region_name"] or "us-east-1",
                verify=conf["s3_store_cacert"] or None,
                config=config,
            )

    def resolve_part_checksum(self) -> str:
        """``s3_store_part_checksum``, with ``auto`` settled once: a CRC if the server
        refuses a body whose CRC is wrong (crc32c with the C module, which computes it
        nearly for free, else zlib's crc32), else sha256 (``client`` is then replaced by
        one that signs bodies). The first add calls it."""
        with self._probing:
            if self.part_checksum == "auto":
                crc = "crc32c" if native.IMPLEMENTATION == "native" else "crc32"
                checked = self._server_checks(crc)
                if not checked:  # a new client (reads in flight keep the old one)
                    self._old_clients.append(self.client)
                    self.client = self._make_client(signed=True)
                self.part_checksum = crc if checked else "sha256"
                LOG.info(
                    "%s: %s checks x-amz-checksum-%s: %s; parts carry %s",
                    self.label,
                    self.endpoint,
                    crc,
                    "yes" if checked else "no",
                    f"a {crc.upper()}" if checked else "a signed SHA-256",
                )
            return self.part_checksum

    def _server_checks(self, crc: str) -> bool:
        """PUT a small object with a wrong ``crc``: refused as damaged if the server checks
        it; accepted (then removed) if it ignores it, refused as a bad request if it does
        not take the header at all."""
        key = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
        body = f"glance-store-ng: does this server check x-amz-checksum-{crc}?".encode()

        def put() -> bool:
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, **crc_header(crc, body, wrong=True)
                )
            except ClientError as exc:
                code, status = error_code(exc)
                if code in DIGEST_CODES:
                    return True
                if status in (400, 501):  # the header itself refused (B2, R2): not checked
                    LOG.info(
                        "%s: %s refuses x-amz-checksum-%s: %s", self.label, self.endpoint, crc, code
                    )
                    return False
                raise
            # accepted: the server ignores the header; the probe is not an image, remove it
            with contextlib.suppress(ClientError):
                self.client.delete_object(Bucket=self.bucket, Key=key)
            return False

        return self.bucket_call(f"probing {self.endpoint} for {crc.upper()} checks", put)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(thin=False, max_image_size=5 << 40)  # S3's largest object

    def close(self) -> None:
        for client in (*self._old_clients, self.client):
            with contextlib.suppress(Exception):
                client.close()

    # -- locations -----------------------------------------------------------------------

    @property
    def location_prefix(self) -> str:
        return self.uri_of("")

    def uri_of(self, key: str) -> str:
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
        return S3Object(key=key, uri=self.uri_of(key))

    # -- requests ------------------------------------------------------------------------

    # These serve the multipart upload (multipart.py) too.

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` inside the error boundary, retried by the store's policy."""

        def once() -> T:
            with self.context.errors(what):
                return fn()

        return self.policy.call(once, what)

    def head(self, key: str, what: str) -> dict[str, Any] | None:
        """The object's HEAD answer, or None when there is no such object."""
        try:
            return self.call(what, lambda: self.client.head_object(Bucket=self.bucket, Key=key))
        except FileNotFoundError:
            return None

    def bucket_call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` that writes into the bucket, creating the bucket first if it is missing
        and s3_store_create_bucket_on_put allows it."""
        try:
            return self.call(what, fn)
        except FileNotFoundError:
            if not self.conf["s3_store_create_bucket_on_put"]:
                raise
        self._create_bucket()
        return self.call(what, fn)

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

        self.call(f"creating bucket {self.bucket}", create)
        LOG.info("%s: created bucket %s at %s", self.label, self.bucket, self.endpoint)

    def is_ours(self, key: str, token: str) -> bool:
        head = self.head(key, f"checking {self.uri_of(key)}")
        return head is not None and head.get("Metadata", {}).get(ADD_TOKEN) == token

    # -- add -----------------------------------------------------------------------------

    def _add(self, image_id: str, ingest: Ingest) -> str:
        key, uri = image_id, self.uri_of(image_id)
        if self.head(key, f"checking whether {uri} exists") is not None:
            raise AlreadyExists(f"{self.label}: image {image_id} already exists at {uri}")
        declared = ingest.declared_size
        single = declared is not None and declared < self.large_object_size
        token = secrets.token_hex(16)
        mark = orphans.AddMark(self, key, token)
        mark.put()  # before any byte: gc finds this add if it dies (orphans.py)
        upload = S3Upload(
            self,
            key,
            token,
            lambda: ingest.checksum,
            self.resolve_part_checksum(),
            on_start=mark.record_upload,
            on_publish=mark.publish,
        )
        writer = PartWriter(
            upload,
            part_size=part_size_schedule(self.part_size, declared),
            concurrency=self.threads,
            policy=self.policy,
            label=f"{self.label}: {uri}",
            first_size=declared if single else None,
        )
        try:
            writer.write(mark.heartbeat.beating(ingest))  # the source's errors as they come
            loss = self._settle(mark)
            if loss is None:
                mark.remove()  # the add is done: an ordinary image from here on
                return uri
        except BaseException:
            self.remove_if_ours(key, token)  # complete, but its mark could not go
            mark.remove_quietly()
            raise
        mark.remove_quietly()  # another add's object replaced ours: nothing else is ours
        raise loss

    def _settle(self, mark: orphans.AddMark) -> StoreError | None:
        """The image is written: once no overlapping add of its key can replace it, None if
        it is ours, else the error to fail with (glance_store_ng.overlapping; a server that
        checks If-None-Match when a write starts, as Swift's s3api, lets both write)."""
        uri = self.uri_of(mark.key)

        def owner() -> str | None:  # the token of the add that wrote the image
            head = self.head(mark.key, f"checking {uri}")
            return None if head is None else head.get("Metadata", {}).get(ADD_TOKEN, "")

        token = settle(mark.others, lambda: mark.say(PUBLISHED), owner, f"{self.label}: {uri}")
        return outcome(token, mark.token, self.label, mark.key, uri)

    def remove_if_ours(self, key: str, token: str) -> None:
        """Delete ``key`` if this add wrote it (an add that failed after its object appeared)."""
        try:
            if self.is_ours(key, token):
                self.call(
                    f"removing {self.uri_of(key)}",
                    lambda: self.client.delete_object(Bucket=self.bucket, Key=key),
                )
        except Exception as exc:
            LOG.warning(
                "%s: could not check or remove %s after a failed add: %s",
                self.label,
                self.uri_of(key),
                self.context.scrub(str(exc)),
            )

    # -- orphans: multipart uploads that no add will complete or abort (orphans.py) ---------

    def find_orphans(self, older_than: float = 3600.0) -> list[Orphan]:
        """What adds that died left, idle for ``older_than`` seconds by the server's clock
        (orphans.py): ``s3://host/bucket/<id>?adding=<token>`` for an add found by its mark
        (its pending upload, or the image it completed without returning it), and
        ``s3://host/bucket/<id>?uploadId=<upload id>`` for an upload no mark records."""
        return orphans.find_orphans(self, older_than)

    def remove_orphan(self, orphan: Orphan) -> None:
        """Remove what ``orphan`` names; one already gone is fine."""
        orphans.remove_orphan(self, orphan)

    # -- get, get_size, delete -----------------------------------------------------------

    def _stat(self, obj: S3Object) -> dict[str, Any]:
        head = self.head(obj.key, f"reading {obj.uri}")
        if head is None:
            raise NotFound(f"{self.label}: no image at {obj.uri}")
        return head

    def _get(self, location: S3Object, offset: int, length: int | None) -> ImageReader:
        head = self._stat(location)
        size = int(head["ContentLength"])
        count = clamp_range(size, offset, length, f"{self.label}: {location.uri}")
        etag = head.get("ETag")

        def open_range(start: int, end: int) -> tuple[Any, str | None]:
            # If-Match the ETag seen first: a replaced object is never spliced in.
            extra = {"IfMatch": etag} if etag else {}
            try:
                answer = self.client.get_object(
                    Bucket=self.bucket, Key=location.key, Range=f"bytes={start}-{end - 1}", **extra
                )
            except ClientError as exc:
                if error_code(exc)[1] != 412:
                    raise
                raise StoreError(
                    f"{self.label}: {location.uri} was replaced while being read; read it again"
                ) from None
            if not str(answer.get("ContentRange", "")).startswith(f"bytes {start}-"):
                answer["Body"].close()
                raise StoreError(
                    f"{self.label}: {location.uri}: the server did not answer with bytes {start}-"
                )
            return answer["Body"], answer.get("ETag")

        reader = ResumingReader(
            open_range,
            offset,
            offset + count,
            chunk_size=self.chunk_size,
            policy=self.policy,
            boundary=self.context.errors,
            what=f"reading {location.uri}",
            label=self.label,
            exhausted_hint="option s3_store_max_attempts limits the resumed reads",
        )
        return ImageReader(reader.chunks(), count, close=reader.close)

    def _get_size(self, location: S3Object) -> int:
        return int(self._stat(location)["ContentLength"])

    def _delete(self, location: S3Object) -> None:
        self._stat(location)
        self.call(
            f"deleting {location.uri}",
            lambda: self.client.delete_object(Bucket=self.bucket, Key=location.key),
        )
