"""The Swift store: images as objects in OpenStack Swift, through python-swiftclient.

Options carry glance_store's names and meanings (sizes in MiB, as there):

- credentials: ``swift_store_auth_address``, ``swift_store_user``
  (``project:user`` for Keystone, ``account:user`` for tempauth),
  ``swift_store_key`` (secret), ``swift_store_auth_version`` (``1``: v1 auth
  such as tempauth, tested; ``3``: Keystone v3 through keystoneauth1, not yet
  tested against a real Keystone); or ``swift_store_config_file`` with
  references (INI sections holding ``auth_address``, ``user``, ``key``, and
  optionally ``auth_version``, ``user_domain_id``, ``project_domain_id``,
  ``project_name``) and ``default_swift_reference`` naming the one used for
  writes. Then locations are ``swift+config://REF/...`` and hold no address.
- ``swift_store_container`` and ``swift_store_multiple_containers_seed``
  (images spread over ``<container>_<first N characters of the id>``, as
  glance_store does), ``swift_store_create_container_on_put``.
- ``swift_store_large_object_size`` and ``swift_store_large_object_chunk_size``:
  an image whose declared size is at most the large-object size is streamed
  in one PUT (Content-Length: that size) straight from the ingest's chunks,
  with no copy and no hash of its own: once the stream ends, the pipeline's
  md5 is compared with the ETag Swift returns, and a mismatch deletes the
  object (ChecksumMismatch). A body cut short (source error, size mismatch,
  Ctrl-C) closes the connection, and Swift commits nothing. An image of
  unknown size that fits in one chunk goes up in one PUT carrying its md5 as
  ETag; any other image (unknown size, or over the large-object size) becomes
  a Static Large Object of chunk-sized segments sent
  ``swift_store_upload_concurrency`` at a time. Memory stays within chunk
  size x (concurrency + 1).
- ``swift_store_retry_get_count``: how many times a broken GET resumes.
- ``swift_store_cacert``, ``swift_store_auth_insecure``, ``swift_store_endpoint``
  (overrides the storage URL), ``swift_store_region``,
  ``swift_store_endpoint_type``, ``swift_store_service_type``,
  ``swift_store_timeout``.

No add overwrites an image: the object is checked first, and the final PUT
(the object, or the SLO manifest) carries ``If-None-Match: *``. A failed add
removes the segments it wrote; those of an add whose process died are found
and removed by ``find_orphans``/``remove_orphan`` (``glance-store-ng gc``, see
swift_orphans.py). See swift_large_objects.py for the SLO and DLO details,
swift_reader.py for resumed reads, swift_locations.py for the URIs.
"""

from __future__ import annotations

import configparser
import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from glance_store_ng.errors import (
    AlreadyExists,
    BackendUnavailable,
    BadLocation,
    ChecksumMismatch,
    ConfigError,
    Retry,
    StoreError,
)
from glance_store_ng.locations import Location
from glance_store_ng.pipeline import Ingest
from glance_store_ng.reader import ImageReader
from glance_store_ng.store import Capabilities, Orphan, Store

from .account import Account, ConnectionSettings, Credentials, HTTPError, swift_errors
from .large_objects import (
    DEFAULT_MAX_MANIFEST_SEGMENTS,
    SegmentedUpload,
    delete_object,
)
from .locations import SCHEMES, SwiftLocation, parse_swift_location, strip_scheme
from .options import OPTIONS
from .orphans import find_orphan_uploads, remove_orphan_upload, segment_containers
from .reader import object_size, open_object

__all__ = ["SwiftStore"]

LOG = logging.getLogger("glance_store_ng.swift")
MiB = 1 << 20
_OBJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,254}$")
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,200}$")


class SwiftStore(Store):
    """Images as objects in OpenStack Swift (single-tenant: one account holds every image)."""

    schemes = SCHEMES
    OPTIONS = OPTIONS

    # -- configuration ---------------------------------------------------------------------

    def configure(self) -> None:
        c = self.conf
        self.settings = ConnectionSettings(
            cacert=c["swift_store_cacert"] or None,
            insecure=c["swift_store_auth_insecure"],
            timeout=c["swift_store_timeout"],
            endpoint=(c["swift_store_endpoint"] or "").rstrip("/") or None,
            region=c["swift_store_region"] or None,
            endpoint_type=c["swift_store_endpoint_type"],
            service_type=c["swift_store_service_type"],
        )
        self.references: dict[str, Credentials] = {}
        inline = [
            name
            for name in ("swift_store_auth_address", "swift_store_user", "swift_store_key")
            if c[name]
        ]
        if c["swift_store_config_file"]:
            if inline:
                raise ConfigError(
                    f"{self.label}: set the credentials in swift_store_config_file or in "
                    f"{', '.join(inline)}, not both"
                )
            self.references = self._read_references(c["swift_store_config_file"])
            reference = c["default_swift_reference"]
            if reference not in self.references:
                raise ConfigError(
                    f"{self.label}: default_swift_reference {reference!r} is not a section of "
                    f"{c['swift_store_config_file']} (it has: {', '.join(self.references)})"
                )
            self.reference: str | None = reference
            credentials = self.references[reference]
        else:
            missing = [
                name
                for name in ("swift_store_auth_address", "swift_store_user", "swift_store_key")
                if not c[name]
            ]
            if missing:
                raise ConfigError(
                    f"{self.label}: option {missing[0]} is required (or swift_store_config_file "
                    "with credential references)"
                )
            self.reference = None
            credentials = Credentials(
                c["swift_store_auth_address"],
                c["swift_store_user"],
                c["swift_store_key"],
                c["swift_store_auth_version"],
            )
        if not credentials.auth_address.startswith(("http://", "https://")):
            raise ConfigError(
                f"{self.label}: auth address {credentials.auth_address!r} must start with "
                "http:// or https://"
            )
        container = c["swift_store_container"]
        if not _CONTAINER_NAME.match(container):
            raise ConfigError(
                f"{self.label}: swift_store_container {container!r} is not a valid container "
                "name (letters, digits, '.', '_', '~', '-')"
            )
        self.container = container
        self.segment_size = c["swift_store_large_object_chunk_size"] * MiB
        self.large_object_size = c["swift_store_large_object_size"] * MiB
        self.single_put_limit = min(self.large_object_size, self.segment_size)
        self._accounts: dict[tuple[str, ...], Account] = {}
        self._accounts_lock = threading.Lock()
        self.account = self._account_for(credentials)
        self._ready_containers: set[str] = set()
        self._max_manifest_segments: int | None = None

    def _read_references(self, path: str) -> dict[str, Credentials]:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except (OSError, configparser.Error) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(
                f"{self.label}: cannot read swift_store_config_file {path}: {reason}"
            ) from None
        references = {}
        for name in parser.sections():
            section = parser[name]
            missing = [k for k in ("auth_address", "user", "key") if not section.get(k)]
            if missing:
                raise ConfigError(
                    f"{self.label}: reference [{name}] of {path} lacks {', '.join(missing)}"
                )
            references[name] = Credentials(
                auth_address=section["auth_address"].strip(),
                user=section["user"].strip(),
                key=section["key"].strip(),
                auth_version=section.get("auth_version", self.conf["swift_store_auth_version"]),
                user_domain_id=section.get("user_domain_id", "default"),
                project_domain_id=section.get("project_domain_id", "default"),
                project_name=section.get("project_name"),
            )
        if not references:
            raise ConfigError(f"{self.label}: swift_store_config_file {path} has no reference")
        return references

    def _account_for(self, credentials: Credentials) -> Account:
        with self._accounts_lock:
            account = self._accounts.get(credentials.identity())
            if account is None:
                account = Account(credentials, self.settings, self.label)
                self._accounts[credentials.identity()] = account
            return account

    @property
    def credentials(self) -> Credentials:
        """The credentials adds write with (the inline options, or the default reference)."""
        return self.account.credentials

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(read_range=True, unknown_size=True, thin=False)

    def close(self) -> None:
        for account in self._accounts.values():
            account.close()

    # -- locations -------------------------------------------------------------------------

    def container_for(self, image_id: str) -> str:
        """The container of ``image_id``: glance_store's rule for the multiple-containers seed."""
        seed = self.conf["swift_store_multiple_containers_seed"]
        if not seed:
            return self.container
        lowered = image_id.lower()
        return f"{self.container}_{lowered[: seed + lowered[:seed].count('-')]}"

    def _location_of(self, container: str, image_id: str) -> str:
        if self.reference:
            return f"swift+config://{self.reference}/{container}/{image_id}"
        auth = self.account.credentials.auth_address
        scheme = "swift+https" if auth.startswith("https://") else "swift+http"
        return f"{scheme}://{strip_scheme(auth)}/{container}/{image_id}"

    def _parse_location(self, location: Location) -> tuple[Account, SwiftLocation]:
        """The account that reaches ``location`` and its parts; BadLocation if not ours."""
        parsed = parse_swift_location(location, self.label)
        if not (
            parsed.container == self.container or parsed.container.startswith(self.container + "_")
        ) or parsed.container.endswith("_segments"):
            raise BadLocation(
                f"{self.label}: {parsed.masked} is not in container {self.container} "
                "(option swift_store_container)"
            )
        if not _OBJECT_NAME.match(parsed.obj):
            raise BadLocation(f"{self.label}: {parsed.masked} does not name an image object")
        if parsed.is_reference:
            credentials = self.references.get(parsed.address)
            if credentials is None:
                raise BadLocation(
                    f"{self.label}: {parsed.masked}: no reference {parsed.address!r} in "
                    "swift_store_config_file"
                )
            return self._account_for(credentials), parsed
        known = [self.account.credentials, *self.references.values()]
        for credentials in known:
            if strip_scheme(credentials.auth_address) == parsed.address:
                if parsed.user and parsed.key:  # glance_store's legacy form: its own credentials
                    credentials = replace(credentials, user=parsed.user, key=parsed.key)
                return self._account_for(credentials), parsed
        storage = self.settings.endpoint or self.account.known_storage_url
        if storage and strip_scheme(storage) == parsed.address:
            return self.account, parsed
        raise BadLocation(
            f"{self.label}: {parsed.masked} is not at this store's auth address or storage URL "
            f"({strip_scheme(self.account.credentials.auth_address)})"
        )

    # -- add -------------------------------------------------------------------------------

    def _prepare_container(self, container: str) -> None:
        create = self.conf["swift_store_create_container_on_put"]
        if container in self._ready_containers or not create:
            return
        with swift_errors(self.label, f"creating container {container}"):
            self.account.request("PUT", container)
        self._ready_containers.add(container)

    def _max_segments(self) -> int:
        """The server's max_manifest_segments (GET /info), once per store."""
        if self._max_manifest_segments is None:
            limit = DEFAULT_MAX_MANIFEST_SEGMENTS
            with contextlib.suppress(Exception):
                info = self.account.cluster_info()
                limit = int(info.get("slo", {}).get("max_manifest_segments", limit))
            self._max_manifest_segments = limit
        return self._max_manifest_segments

    def _add(self, image_id: str, ingest: Ingest) -> str:
        container = self.container_for(image_id)
        path = f"{container}/{image_id}"
        location = self._location_of(container, image_id)
        self._prepare_container(container)
        with swift_errors(self.label, f"checking {path}"):
            try:
                self.account.request("HEAD", path)
            except HTTPError as exc:
                if exc.status != 404:
                    raise
            else:
                raise AlreadyExists(f"{self.label}: image {image_id} already exists at {location}")
        declared = ingest.declared_size
        if declared is not None and declared <= self.large_object_size:
            self._put_stream(path, ingest, declared)
            return location
        upload = SegmentedUpload(
            self.account,
            container,
            image_id,
            segment_size=self.segment_size,
            concurrency=self.conf["swift_store_upload_concurrency"],
            max_manifest_segments=self._max_segments(),
            label=self.label,
        )
        try:
            self._send(path, ingest, upload)
        except BaseException:
            try:
                upload.abort()
            except Exception as exc:  # the original error matters more; say what is left
                LOG.error(
                    "%s: could not remove the segments %s/%s* of a failed add: %s",
                    self.label,
                    upload.segments,
                    upload.prefix,
                    exc,
                )
            raise
        return location

    def _send(self, path: str, ingest: Ingest, upload: SegmentedUpload) -> None:
        size = self.segment_size
        declared = ingest.declared_size
        segmented = False
        buffer: bytearray | None = None
        filled = 0
        full: bytearray | None = None  # a full buffer, sent once more data shows it is not last
        for chunk in ingest:  # errors of the caller's source propagate unchanged
            view = chunk.data
            while len(view):
                if full is not None:
                    upload.submit(full, len(full))
                    full, segmented = None, True
                if buffer is None:
                    first = not segmented and declared is not None and declared < size
                    buffer, filled = upload.buffer(declared if first else None), 0
                count = min(len(view), len(buffer) - filled)
                buffer[filled : filled + count] = view[:count]
                filled += count
                view = view[count:]
                if filled == len(buffer):
                    full, buffer = buffer, None
        last, length = (full, len(full)) if full is not None else (buffer, filled)
        if not segmented and ingest.size <= self.single_put_limit:
            try:
                self._put_whole(path, last, length, ingest.checksum)
            finally:
                if last is not None:
                    upload.release(last)
            return
        if last is not None and length:
            upload.submit(last, length)
        elif last is not None:
            upload.release(last)
        upload.commit()

    def _put_stream(self, path: str, ingest: Ingest, size: int) -> None:
        """One PUT of ``size`` bytes streamed from the ingest's chunks; then its md5 checked.

        The body has a Content-Length, so a body cut short (a source error, a
        size mismatch, Ctrl-C: the connection is closed) is never committed.
        The md5 is the pipeline's, final once the stream ends: it is compared
        with the ETag Swift computed, and a mismatch deletes the object.
        """
        body = _StreamedBody(ingest, size)
        try:
            resp = self._put(path, {"If-None-Match": "*"}, body)
        except _BodyFailed:
            resp = None
        if resp is None:
            # the source's own error (or the pipeline's SizeMismatch), raised as it came (out
            # of the except block: no chaining); urllib3 closed the connection mid-body, and
            # Swift does not commit a body shorter than its Content-Length
            error, body.error = body.error, None
            assert error is not None
            raise error
        if not ingest.finished:  # answered before the whole body was sent
            with contextlib.suppress(StoreError, HTTPError):
                self.account.request("DELETE", path)
            raise BackendUnavailable(
                f"{self.label}: Swift answered the PUT of {path} before receiving all of it"
            )
        self._check_etag(path, resp, ingest.checksum)

    def _put_whole(self, path: str, buffer: bytearray | None, length: int, md5: str) -> None:
        """One PUT of the whole image, with its md5 as ETag (Swift checks it: 422 if not)."""
        headers = {"ETag": md5, "If-None-Match": "*", "Content-Length": str(length)}
        whole = memoryview(buffer if buffer is not None else b"")
        with whole, whole[:length] as view:
            resp = self._put(path, headers, view if length else b"")
        self._check_etag(path, resp, md5)

    def _put(self, path: str, headers: dict[str, str], data: Any) -> Any:
        """PUT the image object; AlreadyExists on 409/412, a clear error if no container."""
        with swift_errors(self.label, f"writing {path}"):
            try:
                return self.account.request("PUT", path, headers=headers, data=data)
            except HTTPError as exc:
                if exc.status in (409, 412):  # 409: a newer PUT of the same name landed first
                    raise AlreadyExists(f"{self.label}: {path} already exists") from None
                if exc.status == 404:
                    raise StoreError(
                        f"{self.label}: container {path.split('/')[0]} does not exist; create it "
                        "or set swift_store_create_container_on_put = true"
                    ) from None
                raise

    def _check_etag(self, path: str, resp: Any, md5: str) -> None:
        """Swift's ETag of a plain object is the md5 of what it stored: delete it if not ours."""
        returned = resp.headers.get("Etag", "").strip('"')
        if returned != md5:
            with contextlib.suppress(StoreError, HTTPError):
                self.account.request("DELETE", path)
            raise ChecksumMismatch(
                f"{self.label}: Swift stored {path} with ETag {returned}, expected {md5}",
                retry=Retry.TEMPORARY,
            )

    # -- orphans ---------------------------------------------------------------------------

    def find_orphans(self, older_than: float = 3600.0) -> list[Orphan]:
        """Segments of SLO uploads that never got their manifest (the process died mid-add),
        one Orphan per upload: ``<container>_segments/<image id>/<token>/``."""
        spread = bool(self.conf["swift_store_multiple_containers_seed"])
        with swift_errors(self.label, f"listing the containers of {self.container}"):
            containers = segment_containers(self.account, self.container, spread)
        return [
            orphan
            for segments in containers
            for orphan in find_orphan_uploads(self.account, segments, older_than, self.label)
        ]

    def remove_orphan(self, orphan: Orphan) -> None:
        segments = orphan.name.split("/", 1)[0]
        spread = bool(self.conf["swift_store_multiple_containers_seed"])
        ours = segments == f"{self.container}_segments" or (
            spread and segments.startswith(f"{self.container}_") and segments.endswith("_segments")
        )
        if not ours:
            raise BadLocation(
                f"{self.label}: {orphan.name} is not in a segment container of {self.container}"
            )
        remove_orphan_upload(self.account, segments, orphan.name, self.label)

    # -- get, get_size, delete -------------------------------------------------------------

    def _get(
        self, location: tuple[Account, SwiftLocation], offset: int, length: int | None
    ) -> ImageReader:
        account, parsed = location
        return open_object(
            account,
            parsed.path,
            offset,
            length,
            retries=self.conf["swift_store_retry_get_count"],
            chunk_size=self.chunk_size,
            label=self.label,
        )

    def _get_size(self, location: tuple[Account, SwiftLocation]) -> int:
        account, parsed = location
        return object_size(account, parsed.path, self.label)

    def _delete(self, location: tuple[Account, SwiftLocation]) -> None:
        account, parsed = location
        delete_object(account, parsed.path, self.label)


class _BodyFailed(BaseException):
    """Carries a body's failure through requests and urllib3, which catch (and wrap, or even
    ignore: ECONNRESET) OSErrors raised while sending; a BaseException only closes the
    connection on its way out."""


class _StreamedBody:
    """The image's chunks as a request body of known length: a Content-Length body, not chunked.

    requests sends an iterable with ``__len__`` under ``Content-Length``, and
    urllib3 hands each chunk's memoryview to ``sendall`` as is, before asking
    for the next one: no copy. An error of the source (or a 401 asking to send
    the body again) is kept in ``error`` and :class:`_BodyFailed` raised in its
    place, which stops the body short of its length.
    """

    def __init__(self, ingest: Ingest, size: int) -> None:
        self._ingest = ingest
        self._size = size
        self._started = False
        self.error: BaseException | None = None

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[memoryview]:
        if self._started:  # a 401, then a new token: the data cannot be sent twice
            self.error = BackendUnavailable(
                f"{self._ingest.label}: Swift refused the token while the image was being "
                "sent; nothing was stored"
            )
            raise _BodyFailed
        self._started = True
        chunks = iter(self._ingest)
        try:
            for chunk in chunks:
                yield chunk.data
        except GeneratorExit:
            raise
        except BaseException as exc:
            self.error = exc
            raise _BodyFailed from None
        finally:
            chunks.close()  # type: ignore[attr-defined]
