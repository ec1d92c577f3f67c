"""S3 multipart uploads: parts sent in parallel, memory bounded, aborted on any failure.

:class:`PartBuffers` hands out at most ``limit`` reusable part buffers: the add
fills one while the others are on their way to the server, so memory stays at
``limit x part size`` whatever the image size, and a slow server makes the
reader wait instead of buffering more.

:class:`MultipartUpload` sends each part from a thread pool with a digest the
server checks (the part is refused when its bytes do not match): the SHA-256
that SigV4 signs (``x-amz-content-sha256``, botocore computes it) or, with
``content_md5``, a Content-MD5 computed here. A failed part is retried from the
buffer it still holds, never from the consumed stream. Its
:meth:`~MultipartUpload.abort` stops the pool, waits for the parts in flight
and aborts the upload, so a failed add leaves neither an object nor a pending
upload. ETags are only handed back to the server, never compared to an md5
(a multipart ETag is not one).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

from botocore.exceptions import ClientError

from glance_store_ng.errors import StoreError

from .errors import RetryPolicy, S3Context, error_code

__all__ = ["MAX_PARTS", "MultipartUpload", "PartBuffers", "abort_upload", "part_size_schedule"]

LOG = logging.getLogger("glance_store_ng.drivers.s3")

MiB = 1 << 20
MAX_PARTS = 10_000  # S3's limit on the parts of one upload
_GROWTH_EVERY = 1_000  # unknown size: the part size doubles every this many parts


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


class PartBuffers:
    """At most ``limit`` reusable bytearrays; :meth:`get` waits for one to come back."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._made = 0
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()

    def get(self, size: int) -> bytearray:
        """A buffer of exactly ``size`` bytes, reused when one is free."""
        if self._made < self.limit:
            self._made += 1
            return bytearray(size)
        buffer = self._free.get()
        return buffer if len(buffer) == size else bytearray(size)

    def put(self, buffer: bytearray) -> None:
        """Give ``buffer`` back (from any thread)."""
        self._free.put(buffer)


class MultipartUpload:
    """One multipart upload of ``key``: started by the constructor, then submit, complete/abort."""

    def __init__(
        self,
        client: Any,
        context: S3Context,
        policy: RetryPolicy,
        *,
        key: str,
        metadata: dict[str, str],
        threads: int,
        buffers: PartBuffers,
        start: Callable[[Callable[[], Any]], Any],
        content_md5: bool = False,
    ) -> None:
        self.client = client
        self.context = context
        self.policy = policy
        self.bucket = context.bucket
        self.key = key
        self.buffers = buffers
        self.content_md5 = content_md5
        self.parts: list[Future[dict[str, Any]]] = []
        self.error: BaseException | None = None
        self._cancelled = threading.Event()
        created = start(
            lambda: client.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=metadata)
        )
        self.upload_id: str = created["UploadId"]
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="glance_store_ng-s3-part")
        LOG.debug("%s: multipart upload %s of %s started", context.label, self.upload_id, key)

    def submit(self, number: int, buffer: bytearray, length: int) -> None:
        """Send the first ``length`` bytes of ``buffer`` as part ``number``; the buffer goes
        back to the PartBuffers once sent. Raises the error of a part that already failed."""
        self.raise_failure()
        try:
            self.parts.append(self._pool.submit(self._send_part, number, buffer, length))
        except BaseException:
            self.buffers.put(buffer)
            raise

    def raise_failure(self) -> None:
        """Raise the first error a part met, if any."""
        if self.error is not None:
            raise self.error

    def _send_part(self, number: int, buffer: bytearray, length: int) -> dict[str, Any]:
        try:
            if self._cancelled.is_set():
                raise StoreError(f"{self.context.label}: upload of {self.key} cancelled")
            view = memoryview(buffer)[:length]
            extra = {}
            if self.content_md5:
                extra["ContentMD5"] = base64.b64encode(hashlib.md5(view).digest()).decode()
            body = buffer if length == len(buffer) else bytes(view)  # botocore takes no views
            with self.context.errors(f"uploading part {number} of {self.key}"):
                answer = self.policy.call(
                    lambda: self.client.upload_part(
                        Bucket=self.bucket,
                        Key=self.key,
                        UploadId=self.upload_id,
                        PartNumber=number,
                        Body=body,
                        **extra,
                    ),
                    f"part {number} of {self.key}",
                )
            return {"PartNumber": number, "ETag": answer["ETag"]}
        except BaseException as exc:
            if self.error is None:
                self.error = exc
            raise
        finally:
            self.buffers.put(buffer)

    def complete(self, *, if_none_match: bool, is_ours: Callable[[], bool]) -> None:
        """Wait for every part, then join them into the object.

        With ``if_none_match`` the server refuses to replace an object that
        appeared meanwhile (where it supports the condition). A retried
        completion that finds the upload gone or the object present checks
        ``is_ours()``: the first try may have succeeded.
        """
        wait(self.parts, return_when=FIRST_EXCEPTION)
        self.raise_failure()
        parts = [future.result() for future in self.parts]
        extra = {"IfNoneMatch": "*"} if if_none_match else {}
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
                    **extra,
                )
            except ClientError as exc:
                code, status = error_code(exc)
                gone = code in ("NoSuchUpload", "PreconditionFailed") or status == 412
                if tries > 1 and gone and is_ours():
                    return
                raise

        with self.context.errors(f"completing the upload of {self.key}"):
            self.policy.call(complete, f"completion of {self.key}")
        self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Stop sending parts, wait for those in flight, abort the upload. Never raises
        (a failure is logged, naming the upload id a garbage collector would remove)."""
        self._cancelled.set()
        for future in self.parts:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            with self.context.errors(f"aborting the upload of {self.key}"):
                self.policy.call(
                    lambda: abort_upload(self.client, self.bucket, self.key, self.upload_id),
                    f"abort of {self.key}",
                )
        except Exception as exc:
            LOG.warning(
                "%s: could not abort multipart upload %s of %s (glance-store-ng gc removes it): %s",
                self.context.label,
                self.upload_id,
                self.key,
                self.context.scrub(str(exc)),
            )
