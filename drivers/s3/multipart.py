"""S3's side of an upload in parts: one PUT, or a multipart upload.

:class:`S3Upload` is the :class:`~glance_store_ng.part_writer.PartUpload` of
one add. The core's PartWriter re-chunks the image, sends the parts in
parallel with bounded memory and retries each from its buffer; this module
says how each request looks on S3. Every body is checked by the server (it
is refused when its bytes do not match) against what ``s3_store_part_checksum``
says: a CRC-32C or CRC32 computed here (``x-amz-checksum-crc32c``/``-crc32``,
the upload declared with that algorithm, the payload unsigned), the SHA-256
that SigV4 signs (``x-amz-content-sha256``, botocore computes it), or a
Content-MD5 computed here; a single PUT also carries the image's md5 as
Content-MD5 when the add computed it. The PUT and the completion ask
the server not to replace an object that appeared meanwhile (If-None-Match),
and an object carries the add's random token in its metadata, so a retried
request can tell its own work from someone else's. :meth:`S3Upload.abort`
aborts the multipart upload and removes an object the add may have created.
Starting an upload is retried like any request: if an answer is lost, the
upload it started is left for ``glance-store-ng gc`` (S3 gives it no token to
find it by).
ETags are only handed back to the server, never compared to an md5 (a
multipart ETag is not one).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from glance_store_ng import native
from glance_store_ng.errors import AlreadyExists
from glance_store_ng.units import MiB

from .errors import error_code

if TYPE_CHECKING:
    from .store import S3Store

__all__ = [
    "ADD_TOKEN",
    "CRC_ALGORITHMS",
    "MAX_PARTS",
    "PROBE_PREFIX",
    "S3Upload",
    "abort_upload",
    "crc_header",
    "part_size_schedule",
]

LOG = logging.getLogger("glance_store_ng.drivers.s3")

MAX_PARTS = 10_000  # S3's limit on the parts of one upload
_GROWTH_EVERY = 1_000  # unknown size: the part size doubles every this many parts
#: Object metadata naming the add that wrote it: a retried request can tell its own work.
ADD_TOKEN = "glance-store-ng-add"
#: The key prefix of the small object that asks a server whether it checks CRC32s.
PROBE_PREFIX = ".glance-store-ng-checksum-probe-"


#: ``s3_store_part_checksum`` value -> (S3's name for it, the function). Both release the
#: GIL (crc32c needs the C module: S3Store refuses it otherwise), so parts are
#: checksummed in parallel on the upload threads.
CRC_ALGORITHMS: dict[str, tuple[str, Callable[[Any], int]]] = {
    "crc32c": ("CRC32C", native.crc32c),
    "crc32": ("CRC32", zlib.crc32),
}


def crc_header(algorithm: str, data: Any, wrong: bool = False) -> dict[str, str]:
    """The request arguments carrying ``data``'s CRC (``algorithm``: a key of
    CRC_ALGORITHMS) as S3 wants it, big-endian in base64; ``wrong``: one that does not
    match, to see whether a server checks it."""
    name, crc = CRC_ALGORITHMS[algorithm]
    value = crc(data) ^ (1 if wrong else 0)
    return {
        "ChecksumAlgorithm": name,
        f"Checksum{name}": base64.b64encode(value.to_bytes(4, "big")).decode(),
    }


def abort_upload(client: Any, bucket: str, key: str, upload_id: str) -> None:
    """Abort one multipart upload. One already gone is not an error: aborting is what
    was wanted, and an upload completed meanwhile is an image, not something to undo."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if error_code(exc)[0] != "NoSuchUpload":
            raise


def part_size_schedule(part_size: int, declared_size: int | None) -> Callable[[int], int]:
    """The size of part ``n`` (1-based) so that an image never needs more than 10,000 parts.

    A known size gets equal parts, larger than ``part_size`` only when the
    image needs it. An unknown size starts at ``part_size`` and doubles every
    1,000 parts (10 MiB parts reach 10 TiB), so small images keep small buffers.
    """
    if declared_size:
        needed = -(-declared_size // MAX_PARTS)
        uniform = max(part_size, -(-needed // MiB) * MiB)
        return lambda number: uniform
    return lambda number: part_size << ((number - 1) // _GROWTH_EVERY)


def _body(data: memoryview) -> bytes | bytearray:
    """What botocore sends (it takes no memoryview): the buffer itself when whole."""
    whole = data.obj
    if isinstance(whole, (bytes, bytearray)) and len(whole) == data.nbytes:
        return whole
    return bytes(data)


class S3Upload:
    """The upload of one image, ``key``, by the add holding ``token``.

    ``md5_hex()`` is the image's md5, known once the data has all been read (None when
    the add does not compute it); ``part_checksum`` is crc32c, crc32, sha256 or md5 (see
    the module's text); ``on_start(upload_id)`` is told of a multipart upload once it is
    started (the add's mark records it); ``on_publish()`` is called just before the
    request that makes the object (its PUT, or the completion) is first sent.
    """

    def __init__(
        self,
        store: S3Store,
        key: str,
        token: str,
        md5_hex: Callable[[], str | None],
        part_checksum: str,
        on_start: Callable[[str], None] | None = None,
        on_publish: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.client = store.client
        self.bucket = store.bucket
        self.key = key
        self.uri = store.uri_of(key)
        self.token = token
        self.md5_hex = md5_hex
        self.crc = part_checksum if part_checksum in CRC_ALGORITHMS else None
        self.content_md5 = part_checksum == "md5"
        self.upload_id: str | None = None
        self.on_start = on_start
        self.on_publish = on_publish or (lambda: None)
        self._committing = False

    # -- one PUT -----------------------------------------------------------------------------

    def write_once(self, data: memoryview) -> None:
        body = _body(data)
        md5_hex = self.md5_hex()
        checks = {} if md5_hex and self.content_md5 else self._checksums(body)
        if md5_hex is not None:  # computed for the image anyway: the server checks it too
            checks["ContentMD5"] = base64.b64encode(bytes.fromhex(md5_hex)).decode()
        tries = 0

        def put() -> None:
            nonlocal tries
            tries += 1
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=body,
                    Metadata={ADD_TOKEN: self.token},
                    **checks,
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if error_code(exc)[1] != 412:
                    raise
                if tries > 1 and self.store.is_ours(self.key, self.token):
                    return  # an earlier try stored it and its answer was lost
                raise AlreadyExists(
                    f"{self.store.label}: image {self.key} was stored by someone else meanwhile "
                    f"at {self.uri}; nothing was overwritten"
                ) from None

        try:
            self.on_publish()
            self.store.bucket_call(f"storing {self.uri}", put)
        except BaseException:
            self.store.remove_if_ours(self.key, self.token)
            raise

    # -- a multipart upload --------------------------------------------------------------

    def start(self) -> None:
        created = self.store.bucket_call(
            f"starting the upload of {self.uri}",
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                Metadata={ADD_TOKEN: self.token},
                **({"ChecksumAlgorithm": CRC_ALGORITHMS[self.crc][0]} if self.crc else {}),
            ),
        )
        self.upload_id = created["UploadId"]
        if self.on_start:
            self.on_start(self.upload_id)
        LOG.debug(
            "%s: multipart upload %s of %s started", self.store.label, self.upload_id, self.key
        )

    def send_part(self, number: int, data: memoryview) -> dict[str, Any]:
        extra = self._checksums(data)
        with self.store.context.errors(f"uploading part {number} of {self.key}"):
            answer = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=_body(data),
                **extra,
            )
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        if self.crc:  # the completion lists each part's checksum
            name = f"Checksum{CRC_ALGORITHMS[self.crc][0]}"
            part[name] = extra[name]
        return part

    def _checksums(self, data: Any) -> dict[str, str]:
        """The request arguments by which the server checks the body ``data`` (none with
        sha256: botocore signs the body's SHA-256)."""
        if self.crc:
            return crc_header(self.crc, data)
        if self.content_md5:
            return {"ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode()}
        return {}

    def commit(self, parts: list[dict[str, Any]]) -> None:
        """Join the parts into the object, unless an image of this id appeared meanwhile.

        The completion carries If-None-Match where the server supports it; a
        retried completion that finds the upload gone or the object present
        checks the object's token: the first try may have succeeded.
        """
        self._committing = True
        if self.store.head(self.key, f"checking whether {self.uri} exists") is not None:
            raise AlreadyExists(
                f"{self.store.label}: image {self.key} was stored by someone else meanwhile "
                f"at {self.uri}; nothing was overwritten"
            )
        tries = 0

        def complete() -> None:
            nonlocal tries
            tries += 1
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                code, status = error_code(exc)
                gone = code in ("NoSuchUpload", "PreconditionFailed") or status == 412
                if tries > 1 and gone and self.store.is_ours(self.key, self.token):
                    return
                raise

        self.on_publish()
        self.store.call(f"completing the upload of {self.key}", complete)

    def abort(self) -> None:
        """Abort the multipart upload, and remove the object if a completion created it.
        Never raises: a failure is logged, naming the upload a garbage collector removes."""
        assert self.upload_id is not None
        upload_id = self.upload_id
        try:
            self.store.call(
                f"aborting the upload of {self.key}",
                lambda: abort_upload(self.client, self.bucket, self.key, upload_id),
            )
        except Exception as exc:
            LOG.warning(
                "%s: could not abort multipart upload %s of %s (glance-store-ng gc removes it): %s",
                self.store.label,
                upload_id,
                self.key,
                self.store.context.scrub(str(exc)),
            )
        if self._committing:
            self.store.remove_if_ours(self.key, self.token)
