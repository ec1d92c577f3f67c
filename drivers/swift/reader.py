"""Reading an object: ranged GETs that resume where a broken one stopped.

A GET that breaks mid-stream (the connection reset, a short body, a read
timeout) is sent again from the first byte not yet received, with a Range
header, up to ``swift_store_retry_get_count`` times per read; the caller sees
one uninterrupted stream. The resumed answer must carry the same ETag as the
first: if the object was replaced meanwhile, the read fails rather than mix
two images.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from glance_store_ng.errors import BackendUnavailable, Retry, StoreError
from glance_store_ng.reader import ImageReader
from glance_store_ng.store import clamp_range

from .account import _CONNECTION_ERRORS, Account, HTTPError, StreamedResponse, swift_errors

__all__ = ["open_object"]

LOG = logging.getLogger("glance_store_ng.swift")


def _range_header(start: int, end: int | None) -> dict[str, str]:
    """``Range`` for bytes ``start`` to ``end`` (exclusive; None: to the end of the object)."""
    return {"Range": f"bytes={start}-" + ("" if end is None else str(end - 1))}


def _total_size(resp: StreamedResponse) -> int | None:
    content_range = resp.headers.get("Content-Range", "")
    if resp.status_code == 206 and "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    length = resp.headers.get("Content-Length")
    return int(length) if length is not None else None


def object_size(account: Account, path: str, label: str) -> int:
    """The size of the object at ``path`` (a manifest's: the whole large object's)."""
    with swift_errors(label, f"no image at {path}"):
        return int(account.request("HEAD", path).headers.get("Content-Length", 0))


def open_object(
    account: Account,
    path: str,
    offset: int,
    length: int | None,
    *,
    retries: int,
    chunk_size: int,
    label: str,
) -> ImageReader:
    """An ImageReader over ``length`` bytes of ``path`` from ``offset``."""
    what = f"reading {path}"
    if length == 0:
        count = clamp_range(object_size(account, path, label), offset, 0, f"{label}: {path}")
        return ImageReader(iter(()), count)
    ranged = offset > 0 or length is not None
    end = None if length is None else offset + length
    with swift_errors(label, what):
        try:
            resp = account.request(
                "GET", path, headers=_range_header(offset, end) if ranged else {}, stream=True
            )
        except HTTPError as exc:
            if exc.status != 416:
                raise
            # Past the end, or an empty object: the size tells which.
            size = object_size(account, path, label)
            count = clamp_range(size, offset, length, f"{label}: {path}")
            return ImageReader(iter(()), count)
    try:
        size = _total_size(resp)
        if size is None:
            size = object_size(account, path, label)
        count = clamp_range(size, offset, length, f"{label}: {path}")
        if resp.status_code == 200 and offset:  # the server ignored the range: skip to it
            _skip(resp, offset)
    except BaseException:
        resp.close()
        raise
    reader = _ResumingRead(account, path, resp, offset, count, retries, chunk_size, label)
    return ImageReader(reader.chunks(), count, close=reader.close)


def _skip(resp: StreamedResponse, count: int) -> None:
    while count:
        piece = resp.read(min(count, 1 << 20))
        if not piece:
            raise StoreError("the object ended before the requested offset")
        count -= len(piece)


class _ResumingRead:
    def __init__(
        self,
        account: Account,
        path: str,
        resp: StreamedResponse,
        start: int,
        count: int,
        retries: int,
        chunk_size: int,
        label: str,
    ) -> None:
        self.account = account
        self.path = path
        self.resp: StreamedResponse | None = resp
        self.etag = resp.headers.get("Etag")
        self.pos = start
        self.end = start + count
        self.retries_left = retries
        self.retries = retries
        self.chunk_size = chunk_size
        self.label = label

    def chunks(self) -> Iterator[bytes]:
        while self.pos < self.end:
            try:
                if self.resp is None:
                    self._resume()
                    continue
                piece = self.resp.read(min(self.chunk_size, self.end - self.pos))
                if not piece:
                    raise ConnectionError("the body ended early")
            except _CONNECTION_ERRORS as exc:
                if isinstance(exc, StoreError) and not isinstance(exc, BackendUnavailable):
                    raise  # NotFound, PermissionDenied: a resume cannot help
                self._broken(exc)
                continue
            self.pos += len(piece)
            yield piece
        self.close(reusable=True)

    def _broken(self, exc: BaseException) -> None:
        if self.resp is not None:
            self.resp.close()
            self.resp = None
        if self.retries_left <= 0:
            raise BackendUnavailable(
                f"{self.label}: reading {self.path} broke at byte {self.pos} "
                f"({type(exc).__name__}) after {self.retries} resumed GETs "
                "(option swift_store_retry_get_count)",
                retry=Retry.EXHAUSTED if self.retries else Retry.TEMPORARY,
            ) from None
        self.retries_left -= 1
        time.sleep(min(0.1 * 2 ** (self.retries - self.retries_left - 1), 2.0))
        LOG.warning(
            "%s: reading %s broke at byte %d (%s); resuming from there",
            self.label,
            self.path,
            self.pos,
            type(exc).__name__,
        )

    def _resume(self) -> None:
        with swift_errors(self.label, f"resuming the read of {self.path}"):
            resp = self.account.request(
                "GET", self.path, headers=_range_header(self.pos, self.end), stream=True
            )
        etag = resp.headers.get("Etag")
        if self.etag and etag and etag != self.etag:
            resp.close()
            raise StoreError(
                f"{self.label}: {self.path} changed while it was being read (ETag {self.etag} "
                f"then {etag}); read it again"
            )
        self.resp = resp

    def close(self, reusable: bool = False) -> None:
        if self.resp is not None:
            self.resp.close(reusable=reusable)
            self.resp = None
