"""Reading an object: ranged GETs that resume where a broken one stopped.

The first GET asks for the range wanted (the whole object: no Range) and
tells the object's size (it is retried under the account's RetryPolicy, as
every GET); the core's ResumingReader then reads it, and a GET
that breaks mid-stream (the connection reset, a short body, a read timeout)
is sent again from the first byte not yet received, with a Range header, up
to ``swift_store_retry_get_count`` times per read; the caller sees one
uninterrupted stream. The resumed answer must carry the same ETag as the
first: if the object was replaced meanwhile, the read fails rather than mix
two images.
"""

from __future__ import annotations

from glance_store_ng.errors import StoreError
from glance_store_ng.reader import ImageReader, RangeStream, ResumingReader
from glance_store_ng.retry import RetryPolicy
from glance_store_ng.store import clamp_range

from .account import Account, StreamedResponse, swift_errors

__all__ = ["object_size", "open_object"]


def _range_header(start: int, end: int | None) -> dict[str, str]:
    """``Range`` for bytes ``start`` to ``end`` (exclusive; None: to the end of the object)."""
    return {"Range": f"bytes={start}-" + ("" if end is None else str(end - 1))}


def _total_size(resp: StreamedResponse) -> int | None:
    content_range = resp.headers.get("Content-Range", "")
    if resp.status_code == 206 and "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    length = resp.headers.get("Content-Length")
    return int(length) if length is not None else None


def object_size(account: Account, path: str) -> int:
    """The size of the object at ``path`` (a manifest's: the whole large object's)."""
    resp = account.request("HEAD", path, what=f"reading the size of {path}")
    return int(resp.headers.get("Content-Length", 0))


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
    """An ImageReader over ``length`` bytes of ``path`` from ``offset`` (None: to the end)."""
    what = f"reading {path}"
    if length == 0:
        count = clamp_range(object_size(account, path), offset, 0, f"{label}: {path}")
        return ImageReader(iter(()), count)
    ranged = offset > 0 or length is not None
    end = None if length is None else offset + length
    resp = account.request(
        "GET",
        path,
        what=what,
        allow=(416,),
        headers=_range_header(offset, end) if ranged else {},
        stream=True,
    )
    if resp.status_code == 416:  # past the end, or an empty object: the size tells which
        count = clamp_range(object_size(account, path), offset, length, f"{label}: {path}")
        return ImageReader(iter(()), count)
    try:
        size = _total_size(resp)
        if size is None:
            size = object_size(account, path)
        count = clamp_range(size, offset, length, f"{label}: {path}")
        if resp.status_code == 200 and offset:  # the server ignored the range: skip to it
            with swift_errors(label, what):
                _skip(resp, offset)
    except BaseException:
        resp.close()
        raise

    def open_range(start: int, stop: int) -> tuple[RangeStream, str | None]:
        what = f"resuming the read of {path} at byte {start}"
        again = account.request(
            "GET",
            path,
            what=what,
            retry=False,  # the reader retries
            headers=_range_header(start, stop),
            stream=True,
        )
        if again.status_code != 206 or not again.headers.get("Content-Range", "").startswith(
            f"bytes {start}-"
        ):
            again.close()
            raise StoreError(f"{label}: {what}: Swift did not answer with that range")
        return again, again.headers.get("Etag")

    reader = ResumingReader(
        open_range,
        offset,
        offset + count,
        chunk_size=chunk_size,
        policy=RetryPolicy(attempts=retries + 1, base=0.1, cap=2.0),
        max_requests=retries + 1,  # glance_store's meaning: resumes per read, in all
        boundary=lambda doing: swift_errors(label, doing),
        what=what,
        label=label,
        first=(resp, resp.headers.get("Etag")),
        exhausted_hint="option swift_store_retry_get_count limits the resumed reads",
    )
    return ImageReader(reader.chunks(), count, close=reader.close)


def _skip(resp: StreamedResponse, count: int) -> None:
    while count:
        piece = resp.read(min(count, 1 << 20))
        if not piece:
            raise StoreError("the object ended before the requested offset")
        count -= len(piece)
