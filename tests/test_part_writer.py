"""The core PartWriter over a fake PartUpload (pure logic; the S3 and Swift tests run it
against real servers)."""

from __future__ import annotations

import threading

import pytest

from glance_store_ng import errors
from glance_store_ng.part_writer import PartWriter
from glance_store_ng.pipeline import Chunk
from glance_store_ng.retry import RetryPolicy


class FakeUpload:
    """Records what a PartWriter asks of a backend; ``fail(number, try)`` decides failures."""

    def __init__(self, fail=lambda number, attempt: None) -> None:
        self.fail = fail
        self.once: bytes | None = None
        self.started = False
        self.parts: dict[int, bytes] = {}
        self.tries: dict[int, int] = {}
        self.committed: list[int] | None = None
        self.aborted = False
        self.lock = threading.Lock()

    def write_once(self, data: memoryview) -> None:
        self.once = bytes(data)

    def start(self) -> None:
        self.started = True

    def send_part(self, number: int, data: memoryview) -> int:
        with self.lock:
            self.tries[number] = self.tries.get(number, 0) + 1
            attempt = self.tries[number]
        error = self.fail(number, attempt)
        if error is not None:
            raise error
        self.parts[number] = bytes(data)
        return number

    def commit(self, parts: list[int]) -> None:
        self.committed = parts

    def abort(self) -> None:
        self.aborted = True


def chunks(data: bytes, size: int):
    for offset in range(0, len(data), size):
        yield Chunk(offset, memoryview(data)[offset : offset + size], [])


def writer(upload: FakeUpload, part: int = 10, **kwargs) -> PartWriter:
    return PartWriter(
        upload,
        part_size=lambda number: part,
        concurrency=2,
        policy=RetryPolicy(attempts=3, base=0),
        label="test",
        **kwargs,
    )


@pytest.mark.parametrize("size", [0, 1, 10])
def test_what_fits_in_one_part_goes_up_once(size):
    upload = FakeUpload()
    data = bytes(range(size))
    writer(upload).write(chunks(data, 3))
    assert upload.once == data and not upload.started and not upload.aborted


@pytest.mark.parametrize("size, piece", [(11, 3), (95, 7), (100, 100), (23, 1)])
def test_parts_are_rechunked_in_order(size, piece):
    upload = FakeUpload()
    data = bytes(i % 251 for i in range(size))
    writer(upload).write(chunks(data, piece))
    assert upload.once is None and upload.started
    assert upload.committed == list(range(1, -(-size // 10) + 1))
    assert b"".join(upload.parts[n] for n in upload.committed) == data
    assert all(len(upload.parts[n]) == 10 for n in upload.committed[:-1])


def test_over_the_one_shot_limit_a_single_part_is_a_multipart_upload():
    upload = FakeUpload()
    writer(upload, one_shot_limit=5).write(chunks(b"x" * 8, 8))
    assert upload.once is None and upload.committed == [1] and upload.parts[1] == b"x" * 8


def test_a_first_size_holds_a_declared_image_in_one_request():
    upload = FakeUpload()
    writer(upload, first_size=35).write(chunks(b"y" * 35, 4))
    assert upload.once == b"y" * 35 and not upload.started


def test_a_temporary_part_failure_is_sent_again_from_its_buffer():
    upload = FakeUpload(
        lambda number, attempt: errors.BackendUnavailable("reset") if attempt == 1 else None
    )
    data = bytes(range(45))
    writer(upload).write(chunks(data, 6))
    assert b"".join(upload.parts[n] for n in upload.committed) == data
    assert set(upload.tries.values()) == {2}


def test_a_failed_part_aborts_the_upload_and_raises_its_error():
    denied = errors.PermissionDenied("no")
    upload = FakeUpload(lambda number, attempt: denied if number == 2 else None)
    with pytest.raises(errors.PermissionDenied) as caught:
        writer(upload).write(chunks(bytes(200), 10))
    assert caught.value is denied and upload.aborted and upload.committed is None
    assert upload.tries[2] == 1  # permanent: not retried


def test_spent_retries_are_exhausted_and_abort():
    upload = FakeUpload(lambda number, attempt: errors.BackendUnavailable("down"))
    with pytest.raises(errors.BackendUnavailable) as caught:
        writer(upload).write(chunks(bytes(50), 10))
    assert caught.value.retry is errors.Retry.EXHAUSTED and upload.aborted


class Boom(Exception):
    pass


def test_a_source_error_aborts_and_propagates_unchanged():
    def source():
        yield from chunks(bytes(35), 5)
        raise Boom

    upload = FakeUpload()
    with pytest.raises(Boom):
        writer(upload).write(source())
    assert upload.aborted and upload.committed is None


def test_a_source_error_before_the_first_part_leaves_nothing_to_abort():
    def source():
        yield from chunks(bytes(5), 5)
        raise Boom

    upload = FakeUpload()
    with pytest.raises(Boom):
        writer(upload).write(source())
    assert not upload.started and not upload.aborted and upload.once is None


def test_memory_stays_within_concurrency_plus_one_buffers():
    release = threading.Event()
    in_flight = []

    def slow(number, attempt):
        in_flight.append(number)
        release.wait(5)

    upload = FakeUpload(slow)
    part_writer = writer(upload)
    done = threading.Thread(target=part_writer.write, args=(chunks(bytes(1000), 10),))
    done.start()
    threading.Event().wait(0.3)
    assert part_writer.buffers._made == part_writer.buffers.limit == 3
    release.set()
    done.join(10)
    assert upload.committed == list(range(1, 101))
