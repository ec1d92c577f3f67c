"""The core ResumingReader over a fake backend (pure logic; the S3 and Swift tests cut real
connections)."""

from __future__ import annotations

import contextlib

import pytest

from glance_store_ng import errors
from glance_store_ng.reader import ResumingReader
from glance_store_ng.retry import RetryPolicy

DATA = bytes(i % 251 for i in range(1000))


class Stream:
    """An answer with ``data`` that breaks (ConnectionResetError) after ``cut`` bytes."""

    def __init__(self, data: bytes, cut: int | None) -> None:
        self.data, self.cut, self.pos, self.closed = data, cut, 0, False

    def read(self, amount: int) -> bytes:
        if self.cut is not None and self.pos >= self.cut:
            raise ConnectionResetError("cut")
        stop = self.pos + amount if self.cut is None else min(self.pos + amount, self.cut)
        piece = self.data[self.pos : stop]
        self.pos += len(piece)
        return piece

    def close(self) -> None:
        self.closed = True


class Backend:
    """``open_range`` over DATA; the n-th answer is cut after ``cuts[n]`` bytes."""

    def __init__(self, cuts=(), etags=None) -> None:
        self.cuts, self.etags, self.opened = list(cuts), etags, []

    def open_range(self, start: int, end: int):
        n = len(self.opened)
        self.opened.append((start, end))
        cut = self.cuts[n] if n < len(self.cuts) else None
        etag = self.etags[n] if self.etags else "e1"
        return Stream(DATA[start:end], cut), etag


@contextlib.contextmanager
def boundary(what: str):
    try:
        yield
    except ConnectionResetError as exc:
        raise errors.BackendUnavailable(f"test: {what}: {exc}") from None


def read(backend, start=0, end=None, attempts=3, **kwargs) -> bytes:
    reader = ResumingReader(
        backend.open_range,
        start,
        len(DATA) if end is None else end,
        chunk_size=64,
        policy=RetryPolicy(attempts=attempts, base=0),
        boundary=boundary,
        what="reading x",
        label="test",
        **kwargs,
    )
    return b"".join(reader.chunks())


def test_a_broken_read_resumes_from_the_last_byte():
    backend = Backend(cuts=[100, 350])
    assert read(backend, 10, 900) == DATA[10:900]
    assert backend.opened == [(10, 900), (110, 900), (460, 900)]


def test_breaks_after_progress_start_the_count_again():
    backend = Backend(cuts=[50] * 15)  # far more breaks than attempts, each after progress
    assert read(backend, attempts=2) == DATA


def test_breaks_in_a_row_are_exhausted():
    backend = Backend(cuts=[100, 0, 0, 0])
    with pytest.raises(errors.BackendUnavailable) as caught:
        read(backend, attempts=3, exhausted_hint="option x limits it")
    assert caught.value.retry is errors.Retry.EXHAUSTED
    assert "option x limits it" in str(caught.value)
    assert len(backend.opened) == 3  # 3 failures in a row: the break, then 2 empty tries


def test_a_total_cap_limits_the_requests_of_a_read():
    backend = Backend(cuts=[100, 100, 100])
    with pytest.raises(errors.BackendUnavailable) as caught:
        read(backend, attempts=10, max_requests=3)
    assert caught.value.retry is errors.Retry.EXHAUSTED and len(backend.opened) == 3


def test_a_changed_etag_is_refused():
    backend = Backend(cuts=[100], etags=["e1", "e2"])
    with pytest.raises(errors.StoreError, match="changed while it was being read"):
        read(backend)


def test_an_answer_that_ends_early_is_resumed():
    class Short(Backend):
        def open_range(self, start, end):
            stream, etag = super().open_range(start, end)
            if len(self.opened) == 1:
                stream.data = stream.data[:30]  # ends cleanly, but short
            return stream, etag

    backend = Short()
    assert read(backend) == DATA and backend.opened[1] == (30, len(DATA))


def test_a_permanent_error_is_not_retried():
    def denied(start, end):
        raise errors.PermissionDenied("no")

    with pytest.raises(errors.PermissionDenied):
        b"".join(
            ResumingReader(
                denied,
                0,
                10,
                chunk_size=4,
                policy=RetryPolicy(attempts=5, base=0),
                boundary=boundary,
                what="reading",
                label="test",
            ).chunks()
        )


def test_closing_early_releases_the_stream():
    backend = Backend()
    reader = ResumingReader(
        backend.open_range,
        0,
        len(DATA),
        chunk_size=64,
        policy=RetryPolicy(attempts=3, base=0),
        boundary=boundary,
        what="reading",
        label="test",
    )
    chunks = reader.chunks()
    next(chunks)
    stream = reader._stream
    chunks.close()
    assert stream.closed and reader._stream is None
