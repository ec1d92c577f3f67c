"""The Swift store: images as objects in OpenStack Swift, through python-swiftclient.

Options carry glance_store's names and meanings (sizes in MiB, as there);
``glance-store-ng drivers`` lists them with their help (see options.py).
Credentials come from the options (``swift_store_auth_address``, ``_user``,
``_key``, ``_auth_version``: 1 for tempauth, 3 for Keystone v3) or from
references in ``swift_store_config_file``; then locations are
``swift+config://REF/...`` and hold no address (see locations.py).

Multi-tenant (``swift_store_multi_tenant``): the store holds no credentials.
Each call acts as the requesting user, with the token of the context the
caller passes (glance_store_ng.context): the image goes to the user's account
(from their catalog), in a container of its own, ``<container>_<id>``, as
glance_store puts it; its location is ``swift+http(s)://STORAGE_URL/<container>_<id>/<id>``.
``swift_store_admin_tenants`` may read and write every image; ``set_acls``
shares one. The token is sent only to the Swift of the user's catalog.

An image whose declared size is at most ``swift_store_large_object_size`` is
streamed in one PUT (Content-Length: that size) straight from the ingest's
chunks, with no copy and no hash of its own: once the stream ends, the
pipeline's md5 is compared with the ETag Swift returns, and a mismatch
deletes the object (ChecksumMismatch). A body cut short (source error, size
mismatch, Ctrl-C) closes the connection, and Swift commits nothing. Any other
image goes through the core's PartWriter: one PUT when it fits in one
segment, else a Static Large Object of segments sent
``swift_store_upload_concurrency`` at a time (large_objects.py); memory stays
within segment size x (concurrency + 1).

No add overwrites an image: the object is checked first, and the final PUT
(the object, or the SLO manifest) carries ``If-None-Match: *``. Swift checks it
when the PUT starts, so of two adds of one id whose final PUTs overlap both are
told 201: the add's mark then makes exactly one win, the one whose image Swift
kept (glance_store_ng.overlapping); the other fails AlreadyExists. A failed add
removes the segments it wrote; those of an add whose process died are found
and removed by ``find_orphans``/``remove_orphan`` (``glance-store-ng gc``,
orphans.py). Reads resume where a broken GET stopped (reader.py). Requests
that do the same thing when sent twice go through the RetryPolicy.
"""

from __future__ import annotations

import configparser
import contextlib
import logging
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from glance_store_ng.context import current_context, using_context
from glance_store_ng.errors import (
    AlreadyExists,
    BackendUnavailable,
    BadLocation,
    ConfigError,
    InvalidArgument,
    StoreError,
)
from glance_store_ng.locations import Location, has_userinfo, mask_url, parse_location
from glance_store_ng.overlapping import PUBLISHED, outcome, settle
from glance_store_ng.part_writer import PartWriter
from glance_store_ng.pipeline import Chunk, Ingest
from glance_store_ng.reader import ImageReader
from glance_store_ng.retry import RetryPolicy
from glance_store_ng.store import Capabilities, Orphan, Store, is_image_id
from glance_store_ng.units import MiB

from .account import Account, ConnectionPools, ConnectionSettings, Credentials, UserAccount
from .large_objects import (
    ADD_TOKEN_HEADER,
    DEFAULT_MAX_MANIFEST_SEGMENTS,
    SwiftUpload,
    check_etag,
    delete_object,
    put_object,
    segment_container,
)
from .locations import SCHEMES, SwiftLocation, parse_swift_location, strip_scheme
from .options import OPTIONS
from .orphans import AddMark, find_orphan_uploads, remove_orphan_upload, segment_containers
from .reader import object_size, open_object

__all__ = ["SwiftStore"]

LOG = logging.getLogger("glance_store_ng.swift")
_CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,200}")
#: A Swift account in a storage URL (``AUTH_<project id>``): no dots, slashes or escapes.
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
#: Swift's requests that may pass when sent again (5xx, timeouts, dropped connections).
RETRY_POLICY = RetryPolicy(attempts=3, base=0.2, cap=2.0)


class SwiftStore(Store):
    """Images as objects in OpenStack Swift: in the store's own account (single-tenant), or in
    each requesting user's (``swift_store_multi_tenant``)."""

    schemes = SCHEMES
    OPTIONS = OPTIONS
    MD5_FOR_TRANSFERS = True  # the single PUT is checked against it; the SLO manifest too

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
        self.reference: str | None = None
        self.multi_tenant = bool(c["swift_store_multi_tenant"])
        inline = [
            name
            for name in (
                "swift_store_auth_address",
                "swift_store_user",
                "swift_store_key",
                *(f"swift_store_{kind}_domain_{by}" for kind in ("user", "project")
                  for by in ("id", "name")),
            )
            if c[name]
        ]  # fmt: skip
        credentials: Credentials | None = None
        if self.multi_tenant:
            given = inline + ["swift_store_config_file"] * bool(c["swift_store_config_file"])
            if given:
                raise ConfigError(
                    f"{self.label}: swift_store_multi_tenant stores act with the requesting "
                    f"user's token and take no credentials of their own: remove {', '.join(given)}"
                )
            if c["swift_store_multiple_containers_seed"]:
                raise ConfigError(
                    f"{self.label}: swift_store_multiple_containers_seed spreads a single-tenant "
                    "store's images; multi-tenant, each has a container of its own: remove it"
                )
        elif c["swift_store_config_file"]:
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
            self.reference = reference
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
            credentials = Credentials(
                c["swift_store_auth_address"],
                c["swift_store_user"],
                c["swift_store_key"],
                c["swift_store_auth_version"],
                **{f"{kind}_domain_{by}": c[f"swift_store_{kind}_domain_{by}"] or None
                   for kind in ("user", "project") for by in ("id", "name")},
            )  # fmt: skip
        if self.settings.endpoint and has_userinfo(self.settings.endpoint):
            raise ConfigError(
                f"{self.label}: swift_store_endpoint {mask_url(self.settings.endpoint)!r} holds "
                "credentials; remove them (the store authenticates with its user and key, or "
                "multi-tenant with the requesting user's token)"
            )
        for each in self.references.values() or ([credentials] if credentials else []):
            self._check_credentials(each)
        container = c["swift_store_container"]
        if not _CONTAINER_NAME.fullmatch(container):
            raise ConfigError(
                f"{self.label}: swift_store_container {container!r} is not a valid container "
                "name (letters, digits, '.', '_', '~', '-')"
            )
        self.container = container
        self.segment_size = c["swift_store_large_object_chunk_size"] * MiB
        self.large_object_size = c["swift_store_large_object_size"] * MiB
        self.single_put_limit = min(self.large_object_size, self.segment_size)
        self._accounts: dict[tuple[str | None, ...], Account] = {}
        self._accounts_lock = threading.Lock()
        self._user_pools = ConnectionPools()  # multi-tenant: per user storage URL
        self.account = None if credentials is None else self._account_for(credentials)
        self._ready_containers: set[str] = set()  # made already (single-tenant: one account)
        self._max_manifest_segments: int | None = None

    def _check_credentials(self, credentials: Credentials) -> None:
        self._check_auth_address(credentials.auth_address)
        keystone = credentials.auth_version.startswith("3")
        if keystone and not (credentials.project_name or ":" in credentials.user):
            raise ConfigError(
                f"{self.label}: Keystone v3 needs the project: write the user as "
                f"project:user ({credentials.origin})"
            )

    def _check_auth_address(self, address: str) -> None:
        if has_userinfo(address):
            raise ConfigError(
                f"{self.label}: auth address {mask_url(address)!r} holds credentials; put the "
                "user and key in swift_store_user and swift_store_key (or in the reference)"
            )
        if not address.startswith(("http://", "https://")):
            raise ConfigError(
                f"{self.label}: auth address {mask_url(address)!r} must start with http:// or "
                "https://"
            )

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
                project_name=section.get("project_name"),
                **{f"{kind}_domain_{by}": section.get(f"{kind}_domain_{by}") or None
                   for kind in ("user", "project") for by in ("id", "name")},
                origin=f"reference [{name}] of {path}",
            )  # fmt: skip
        if not references:
            raise ConfigError(f"{self.label}: swift_store_config_file {path} has no reference")
        return references

    def _account_for(self, credentials: Credentials) -> Account:
        with self._accounts_lock:
            account = self._accounts.get(credentials.identity())
            if account is None:
                account = Account(credentials, self.settings, self.label, RETRY_POLICY)
                self._accounts[credentials.identity()] = account
            return account

    @property
    def credentials(self) -> Credentials | None:
        """The credentials adds write with (the inline options, or the default reference);
        None in multi-tenant mode."""
        return None if self.account is None else self.account.credentials

    def _user_account(self, address: str | None = None) -> Account:
        """Multi-tenant: the requesting user's account, from the call's context: at their
        storage URL (from their catalog, or ``swift_store_endpoint``), or at ``address``
        (a location's storage URL, without scheme) when it is another account of that
        same Swift. The scheme, host, port and path come from the catalog; a location
        gives only its account's name: the token goes to no other server or path."""
        context = current_context()
        if context is None:
            raise InvalidArgument(
                f"{self.label}: swift_store_multi_tenant is set, so every call needs the "
                "requesting user's context (context=RequestContext(...) or Glance's)"
            )
        s = self.settings
        endpoint = s.endpoint or context.endpoint(s.service_type, s.endpoint_type, s.region)
        if not endpoint:
            raise ConfigError(
                f"{self.label}: the request context's catalog has no {s.service_type} "
                f"endpoint of interface {s.endpoint_type} in region {s.region or '(any)'}; "
                "check swift_store_region, swift_store_endpoint_type and "
                "swift_store_service_type, or set swift_store_endpoint"
            )
        url = endpoint.rstrip("/")
        if address is not None:
            swift = url.rsplit("/", 1)[0]  # scheme://host:port/v1, without the account
            account = address.removeprefix(strip_scheme(swift) + "/")
            if account == address or not _ACCOUNT_NAME.fullmatch(account):
                raise BadLocation(
                    f"{self.label}: {address}/... is not an account of the Swift of the "
                    f"request's catalog ({strip_scheme(swift)}/<account>): the user's token "
                    "is sent to no other server or path"
                )
            url = f"{swift}/{account}"
        pool = self._user_pools.pool(url)
        return UserAccount(url, context.auth_token, s, self.label, RETRY_POLICY, pool)

    def _writer(self) -> Account:
        """The account adds write to: the store's, or the requesting user's."""
        return self._user_account() if self.account is None else self.account

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            read_range=True, unknown_size=True, thin=False, acts_as_user=self.multi_tenant
        )

    def close(self) -> None:
        for account in self._accounts.values():
            account.close()
        self._user_pools.close()

    # -- locations -------------------------------------------------------------------------

    def container_for(self, image_id: str) -> str:
        """The container of ``image_id``: one of its own in multi-tenant mode, else glance_store's
        rule for the multiple-containers seed."""
        if self.multi_tenant:
            return f"{self.container}_{image_id}"
        seed = self.conf["swift_store_multiple_containers_seed"]
        if not seed:
            return self.container
        lowered = image_id.lower()
        return f"{self.container}_{lowered[: seed + lowered[:seed].count('-')]}"

    @property
    def location_prefix(self) -> str | None:
        """Up to the container (its name only, without the slash, when images are spread
        over ``<container>_<prefix>`` containers); None in multi-tenant mode (each user's
        images are in their own account)."""
        if self.account is None:
            return None
        prefix = self._location_of(self.account, self.container, "")
        return prefix[:-1] if self.conf["swift_store_multiple_containers_seed"] else prefix

    def _location_of(self, account: Account, container: str, image_id: str) -> str:
        if self.reference:
            return f"swift+config://{self.reference}/{container}/{image_id}"
        # the auth address; in multi-tenant mode the user's storage URL, as glance_store
        address = account.storage_url if self.multi_tenant else account.credentials.auth_address
        scheme = "swift+https" if address.startswith("https://") else "swift+http"
        return f"{scheme}://{strip_scheme(address)}/{container}/{image_id}"

    def _parse_location(self, location: Location) -> tuple[Account | None, SwiftLocation]:
        """The account that reaches ``location`` (None: the requesting user's, multi-tenant)
        and its parts; BadLocation if not ours."""
        parsed = parse_swift_location(location, self.label)
        if self.multi_tenant:
            return None, self._multi_tenant_location(parsed)
        assert self.account is not None
        if not (
            parsed.container == self.container or parsed.container.startswith(self.container + "_")
        ) or parsed.container.endswith("_segments"):
            raise BadLocation(
                f"{self.label}: {parsed.masked} is not in container {self.container} "
                "(option swift_store_container)"
            )
        if not is_image_id(parsed.obj):
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
                    credentials = replace(
                        credentials,
                        user=parsed.user,
                        key=parsed.key,
                        project_name=None,  # the location's project:user says it
                        origin="the user and key inside the location",
                    )
                return self._account_for(credentials), parsed
        storage = self.settings.endpoint or self.account.known_storage_url
        if storage and strip_scheme(storage) == parsed.address:
            return self.account, parsed
        raise BadLocation(
            f"{self.label}: {parsed.masked} is not at this store's auth address or storage URL "
            f"({strip_scheme(self.account.credentials.auth_address)})"
        )

    def _multi_tenant_location(self, parsed: SwiftLocation) -> SwiftLocation:
        """``parsed`` if it is a multi-tenant location of this store: at a storage URL, in
        the image's own container ``<container>_<id>``."""
        if parsed.is_reference or parsed.user:
            raise BadLocation(
                f"{self.label}: {parsed.masked}: a multi-tenant store reads locations at a "
                "storage URL, with no credentials (swift+https://HOST/v1/AUTH_x/C/ID)"
            )
        if not is_image_id(parsed.obj) or parsed.container != f"{self.container}_{parsed.obj}":
            raise BadLocation(
                f"{self.label}: {parsed.masked} is not an image in its own container "
                f"{self.container}_<id> (option swift_store_container)"
            )
        return parsed

    def _reached(self, location: tuple[Account | None, SwiftLocation]) -> Account:
        """The account holding a parsed location (the user's in multi-tenant mode)."""
        account, parsed = location
        if account is None:
            return self._user_account(parsed.address)
        return account

    # -- add -------------------------------------------------------------------------------

    def _prepare_container(self, account: Account, container: str) -> None:
        """Create the container when asked to (always in multi-tenant mode: one per image,
        readable and writable by ``swift_store_admin_tenants``)."""
        if not (self.multi_tenant or self.conf["swift_store_create_container_on_put"]):
            return
        if container in self._ready_containers:
            return
        account.request(
            "PUT",
            container,
            what=f"creating container {container}",
            retry=True,
            headers=self._admin_acls(),
        )
        if not self.multi_tenant:  # its containers are made once per image
            self._ready_containers.add(container)

    def _admin_acls(self) -> dict[str, str]:
        """Multi-tenant: the ACL headers that let ``swift_store_admin_tenants`` read and
        write an image's containers."""
        admins = self.conf["swift_store_admin_tenants"] if self.multi_tenant else []
        if not admins:
            return {}
        return {"X-Container-Read": _acl(admins), "X-Container-Write": _acl(admins)}

    def _max_segments(self, account: Account) -> int:
        """The server's max_manifest_segments (GET /info), once per store."""
        if self._max_manifest_segments is None:
            limit = DEFAULT_MAX_MANIFEST_SEGMENTS
            with contextlib.suppress(Exception):
                info = account.cluster_info()
                limit = int(info.get("slo", {}).get("max_manifest_segments", limit))
            self._max_manifest_segments = limit
        return self._max_manifest_segments

    def _add(self, image_id: str, ingest: Ingest) -> str:
        account = self._writer()
        container = self.container_for(image_id)
        path = f"{container}/{image_id}"
        location = self._location_of(account, container, image_id)
        head = account.request("HEAD", path, what=f"checking {path}", allow=(404,))
        if head.status_code != 404:  # checked first: a container is never changed for naught
            raise AlreadyExists(f"{self.label}: image {image_id} already exists at {location}")
        self._prepare_container(account, container)
        token = secrets.token_hex(8)
        segments = self._segments_of(container)
        self._prepare_segment_container(account, segments)
        mark = AddMark(account, segments, image_id, token)
        try:
            if self._streams(ingest):
                mark.publish()  # before any byte, and its one PUT starts with the first one
            else:
                mark.put()  # before any byte: gc finds this add if it dies (orphans.py)
            upload = self._write(account, container, image_id, mark, ingest, token)
            loss = self._settle(account, path, mark)
            if loss is None:
                mark.remove()  # the add is done: an ordinary image from here on
                return location
        except BaseException:
            self._remove_if_ours(account, path, token)  # complete, but its mark could not go
            mark.remove_quietly()
            self._remove_empty(account, container)
            raise
        # another add's image replaced ours: remove only what is surely ours
        if upload is not None:
            upload.remove_segments()
        mark.remove_quietly()
        raise loss

    def _streams(self, ingest: Ingest) -> bool:
        """Whether the image goes up in one PUT streamed from the ingest (else through the
        part writer: one PUT or an SLO)."""
        declared = ingest.declared_size
        return declared is not None and declared <= self.large_object_size

    def _write(
        self,
        account: Account,
        container: str,
        image_id: str,
        mark: AddMark,
        ingest: Ingest,
        token: str,
    ) -> SwiftUpload | None:
        """Store the image: one streamed PUT when its size is known and small enough,
        else an SLO (its upload returned); both carry the add's ``token``, and ``mark``
        says PUBLISHING before the PUT that makes the image starts."""
        path = f"{container}/{image_id}"
        chunks = mark.heartbeat.beating(ingest)
        if self._streams(ingest):
            self._put_stream(account, path, chunks, ingest, ingest.declared_size or 0, token)
            return None
        upload = SwiftUpload(
            account,
            container,
            image_id,
            md5_hex=lambda: ingest.checksum,
            max_manifest_segments=self._max_segments(account),
            label=self.label,
            token=token,
            on_publish=mark.publish,
            segments=self._segments_of(container),
        )
        segment_size = self.segment_size
        declared = ingest.declared_size
        writer = PartWriter(
            upload,
            part_size=lambda number: segment_size,
            concurrency=self.conf["swift_store_upload_concurrency"],
            policy=RETRY_POLICY,
            label=f"{self.label}: {path}",
            first_size=declared if declared is not None and declared < segment_size else None,
            one_shot_limit=self.single_put_limit,
        )
        writer.write(chunks)  # errors of the caller's source propagate unchanged
        return upload

    def _settle(self, account: Account, path: str, mark: AddMark) -> StoreError | None:
        """The image is written: once no overlapping add of its id can replace it, None if
        it is ours, else the error to fail with (glance_store_ng.overlapping)."""

        def owner() -> str | None:  # the token of the add that wrote the image
            head = account.request(
                "HEAD", path, what=f"checking {path}", allow=(404,), headers={"X-Newest": "true"}
            )
            return None if head.status_code == 404 else head.headers.get(ADD_TOKEN_HEADER, "")

        token = settle(mark.others, lambda: mark.say(PUBLISHED), owner, f"{self.label}: {path}")
        return outcome(token, mark.token, self.label, mark.image_id, path)

    def _segments_of(self, container: str) -> str:
        """The container of the segments and marks of the adds into ``container``: its
        ``_segments`` twin; in multi-tenant mode the image's own container (so that
        deleting the image leaves it empty, for glance_store's delete too)."""
        return container if self.multi_tenant else segment_container(container)

    def _prepare_segment_container(self, account: Account, segments: str) -> None:
        """The segment container holds the add's mark (and its segments): made once."""
        if not self.multi_tenant and segments not in self._ready_containers:
            what = f"creating segment container {segments}"
            account.request("PUT", segments, what=what, retry=True)
            self._ready_containers.add(segments)

    def _remove_empty(self, account: Account, container: str) -> None:
        """Multi-tenant: remove an image's container if empty, once the image is deleted
        (as glance_store does) or its add failed. Another project's user (an admin tenant)
        may not remove containers: it stays, empty. Log, never raise."""
        if not self.multi_tenant:
            return
        try:
            resp = account.request(
                "DELETE", container, what=f"removing container {container}", allow=(403, 404, 409)
            )
            if resp.status_code == 403:
                LOG.info("%s: %s stays: not the owner's request", self.label, container)
        except StoreError as exc:
            LOG.warning("%s: could not remove the empty %s: %s", self.label, container, exc)

    def _remove_if_ours(self, account: Account, path: str, token: str) -> None:
        """Delete the image at ``path`` if the add holding ``token`` wrote it; log, never raise."""
        try:
            head = account.request(
                "HEAD", path, what=f"checking {path}", allow=(404,), headers={"X-Newest": "true"}
            )
            if head.status_code != 404 and head.headers.get(ADD_TOKEN_HEADER) == token:
                delete_object(account, path, self.label)
        except Exception as exc:  # the add's own error is the one to report
            LOG.error("%s: could not check or remove %s after a failed add: %s",
                      self.label, path, exc)  # fmt: skip

    def _put_stream(
        self,
        account: Account,
        path: str,
        chunks: Iterator[Chunk],
        ingest: Ingest,
        size: int,
        token: str,
    ) -> None:
        """One PUT of ``size`` bytes streamed from the ingest's chunks; then its md5 checked.

        The body has a Content-Length, so a body cut short (a source error, a
        size mismatch, Ctrl-C: the connection is closed) is never committed.
        The md5 is the pipeline's, final once the stream ends: it is compared
        with the ETag Swift computed, and a mismatch deletes the object.
        """
        body = _StreamedBody(chunks, size, ingest.label)
        try:
            resp = put_object(account, path, {ADD_TOKEN_HEADER: token}, body, self.label)
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
            with contextlib.suppress(StoreError):
                account.request("DELETE", path, what=f"removing the incomplete {path}")
            raise BackendUnavailable(
                f"{self.label}: Swift answered the PUT of {path} before receiving all of it"
            )
        check_etag(account, path, resp, ingest.checksum, self.label)

    # -- sharing (multi-tenant) ------------------------------------------------------------

    def set_acls(
        self,
        location: str | Location,
        public: bool = False,
        read_projects: list[str] | None = None,
        write_projects: list[str] | None = None,
        context: Any = None,
    ) -> None:
        """Multi-tenant: who may read and write the image at ``location``, as glance_store
        sets it when Glance shares an image: anyone authenticated (``public``) or
        ``read_projects``, plus ``swift_store_admin_tenants``, who may also write, as
        ``write_projects``. Set on the image's container (which holds its segments too), by
        the owner (``context``)."""
        if not self.multi_tenant:
            raise InvalidArgument(
                f"{self.label}: set_acls shares images kept in their owners' accounts: "
                "only with swift_store_multi_tenant"
            )
        admins = list(self.conf["swift_store_admin_tenants"])
        readers = ["*"] if public else [*(read_projects or []), *admins]
        writers = [*(write_projects or []), *admins]
        headers = {"X-Container-Read": _acl(readers), "X-Container-Write": _acl(writers)}
        parsed = parse_location(location)
        with using_context(context):
            where = self._parse_location(parsed)
            account, container = self._reached(where), where[1].container
            account.request(
                "POST", container, what=f"setting the ACLs of {container}", headers=headers,
                retry=True,
            )  # fmt: skip

    # -- orphans ---------------------------------------------------------------------------

    def find_orphans(self, older_than: float = 3600.0) -> list[Orphan]:
        """Segments of SLO uploads that never got their manifest (the process died mid-add),
        one Orphan per upload: ``<container>_segments/<image id>/<token>/``. In multi-tenant
        mode, those in the current context's account (``using_context``), in the images'
        own containers: ``<container>_<id>/<id>/<token>/``."""
        account = self._writer()
        spread = bool(self.conf["swift_store_multiple_containers_seed"])
        containers = segment_containers(account, self.container, spread, self.multi_tenant)
        return [
            orphan
            for segments in containers
            for orphan in find_orphan_uploads(account, segments, older_than, self.label)
        ]

    def remove_orphan(self, orphan: Orphan) -> None:
        segments = orphan.name.split("/", 1)[0]
        spread = bool(self.conf["swift_store_multiple_containers_seed"])
        if self.multi_tenant:  # in the image's own container
            ours = is_image_id(segments.removeprefix(f"{self.container}_"))
        else:
            ours = segments == f"{self.container}_segments" or (
                spread
                and segments.startswith(f"{self.container}_")
                and segments.endswith("_segments")
            )
        if not ours:
            raise BadLocation(
                f"{self.label}: {orphan.name} is not in a segment container of {self.container}"
            )
        account = self._writer()
        remove_orphan_upload(account, segments, orphan, self.label)
        self._remove_empty(account, segments)  # multi-tenant: the image's, if it went too

    # -- get, get_size, delete -------------------------------------------------------------

    def _get(
        self, location: tuple[Account | None, SwiftLocation], offset: int, length: int | None
    ) -> ImageReader:
        parsed = location[1]
        return open_object(
            self._reached(location),
            parsed.path,
            offset,
            length,
            retries=self.conf["swift_store_retry_get_count"],
            chunk_size=self.chunk_size,
            label=self.label,
        )

    def _get_size(self, location: tuple[Account | None, SwiftLocation]) -> int:
        return object_size(self._reached(location), location[1].path)

    def _delete(self, location: tuple[Account | None, SwiftLocation]) -> None:
        account, parsed = self._reached(location), location[1]
        delete_object(account, parsed.path, self.label)
        self._remove_empty(account, parsed.container)  # multi-tenant: as glance_store


def _acl(projects: list[str]) -> str:
    """A Swift container ACL granting every user of ``projects`` (keystoneauth's form)."""
    return ",".join(f"{project}:*" for project in projects)


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

    def __init__(self, chunks: Iterator[Chunk], size: int, label: str) -> None:
        self._chunks = chunks
        self._size = size
        self._label = label
        self._started = False
        self.error: BaseException | None = None

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[memoryview]:
        if self._started:  # a 401, then a new token: the data cannot be sent twice
            self.error = BackendUnavailable(
                f"{self._label}: Swift refused the token while the image was being "
                "sent; nothing was stored"
            )
            raise _BodyFailed
        self._started = True
        chunks = iter(self._chunks)
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
