"""The ingest pipeline: property tests against hashlib, and its checks."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from glance_store_ng import errors, open_store
from glance_store_ng.native import zero_extents
from glance_store_ng.pipeline import DEPTH, Ingest
from glance_store_ng.testing.conformance import new_id

BLOCK = 4096


@st.composite
def images_with_zero_runs(draw) -> bytes:
    """Bytes made of random runs: zeros (often block-sized) and random data."""
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            size = draw(st.sampled_from([1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 40000]))
            parts.append(bytes(size))
        else:
            parts.append(draw(st.binary(min_size=1, max_size=9000)))
    return b"".join(parts)


@st.composite
def chunked(draw, data: bytes) -> list[bytes]:
    """``data`` cut at random places."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def naive_zero_extents(data: bytes, block: int) -> list[tuple[int, int]]:
    extents: list[tuple[int, int]] = []
    for start in range(0, len(data), block):
        end = min(start + block, len(data))
        if data[start:end] == bytes(end - start):
            if extents and extents[-1][1] == start:
                extents[-1] = (extents[-1][0], end)
            else:
                extents.append((start, end))
    return extents


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(), image=images_with_zero_runs(), chunk_size=st.sampled_from([4096, 5000, 65536])
)
def test_ingest_equals_hashlib_whatever_the_chunking(data, image, chunk_size):
    pieces = data.draw(chunked(image))
    algo = data.draw(st.sampled_from(["sha512", "sha256", "xxh3_64", "xxh3_128"]))
    ingest = Ingest(iter(pieces), hashing_algo=algo, chunk_size=chunk_size, zero_block_size=BLOCK)
    out = bytearray()
    zero_bytes = 0
    for chunk in ingest:
        assert chunk.offset == len(out)
        assert len(chunk.data) <= chunk_size
        out += chunk.data
        zero_bytes += sum(e - s for s, e in chunk.zero_extents)
        # The chunk's zero extents are exactly its all-zero blocks.
        assert chunk.zero_extents == naive_zero_extents(bytes(chunk.data), BLOCK)
        data_bytes = sum(e - s for s, e in chunk.data_extents())
        assert data_bytes + sum(e - s for s, e in chunk.zero_extents) == len(chunk.data)
    assert bytes(out) == image
    assert ingest.finished and ingest.size == len(image) and ingest.zero_bytes == zero_bytes
    assert ingest.checksum == hashlib.md5(image).hexdigest()
    expected = (
        getattr(xxhash, algo)(image).hexdigest()
        if algo.startswith("xxh")
        else hashlib.new(algo, image).hexdigest()
    )
    assert ingest.multihash == expected


@settings(max_examples=40, deadline=None)
@given(data=st.data(), image=images_with_zero_runs())
def test_filesystem_store_round_trip(tmp_path_factory, data, image):
    root = tmp_path_factory.mktemp("images")
    options = {
        "filesystem_store_datadir": str(root),
        "filesystem_store_chunk_size": 8192,
        "image_inspection": "off",  # any bytes here, some may look like a damaged MBR
    }
    store = open_store("file", options)
    pieces = data.draw(chunked(image))
    result = store.add(new_id(), iter(pieces))
    assert result.checksum == hashlib.md5(image).hexdigest()
    assert result.multihash == hashlib.sha512(image).hexdigest()
    with store.get(result.location) as reader:
        assert b"".join(reader) == image
    offset = data.draw(st.integers(0, len(image)))
    length = data.draw(st.one_of(st.none(), st.integers(0, len(image))))
    end = len(image) if length is None else offset + length
    with store.get(result.location, offset, length) as reader:
        assert b"".join(reader) == image[offset:end]


@given(image=images_with_zero_runs())
def test_zero_extents_match_a_naive_scan(image):
    assert zero_extents(image, BLOCK) == naive_zero_extents(image, BLOCK)
    view = memoryview(image)[1:]
    assert zero_extents(view, BLOCK) == naive_zero_extents(image[1:], BLOCK)


def test_file_sources_are_read_into_a_bounded_ring_of_buffers():
    ingest = Ingest(io.BytesIO(b"a" * 100_000), chunk_size=4096)
    buffers = {id(chunk.data.obj) for chunk in ingest}
    assert 1 <= len(buffers) <= DEPTH


def test_refilled_mutable_chunks_are_hashed_as_they_were_given():
    """A source that refills one bytearray between yields (hashing runs on other threads)."""
    expected = hashlib.sha512()

    def refilling():
        buffer = bytearray(50_000)
        for i in range(40):
            buffer[:] = bytes([i]) * len(buffer)
            expected.update(buffer)
            yield buffer

    ingest = Ingest(refilling(), chunk_size=65536)
    for _ in ingest:
        pass
    assert ingest.multihash == expected.hexdigest()


def test_refilled_read_only_views_are_hashed_as_they_were_given():
    """A read-only view does not make the data immutable: the caller may refill the buffer."""
    expected = hashlib.md5()

    def refilling_views():
        buffer = bytearray(70_000)
        for i in range(20):
            buffer[:] = bytes([i + 1]) * len(buffer)
            expected.update(buffer)
            yield memoryview(buffer).toreadonly()

    ingest = Ingest(refilling_views(), chunk_size=65536)
    for _ in ingest:
        pass
    assert ingest.checksum == expected.hexdigest()


def test_hashing_threads_end_when_the_driver_stops_early():
    before = threading.active_count()
    ingest = Ingest(io.BytesIO(bytes(10 << 20)), chunk_size=65536)
    chunks = iter(ingest)
    next(chunks)
    chunks.close()  # the driver failed and dropped the stream
    assert threading.active_count() == before
    assert not ingest.finished


def test_bytes_sources_are_not_copied():
    data = bytearray(b"b" * 10000)
    assert all(chunk.data.obj is data for chunk in Ingest(data, chunk_size=4096))


def test_declared_size_over_cap_fails_before_reading():
    class Untouchable(io.RawIOBase):
        def readinto(self, buffer):
            raise AssertionError("read although the declared size is over the cap")

    with pytest.raises(errors.SizeLimitExceeded, match="image_size_cap"):
        Ingest(Untouchable(), size=2000, size_cap=1000)


def test_longer_stream_stops_before_the_excess_is_handed_on():
    ingest = Ingest(iter([b"x" * 100, b"y" * 100]), size=150)
    handed = []
    with pytest.raises(errors.SizeMismatch, match="longer than its declared size of 150"):
        for chunk in ingest:
            handed.append(bytes(chunk.data))
    assert handed == [b"x" * 100]


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_bad_size_argument(bad):
    with pytest.raises(errors.InvalidArgument, match="size"):
        Ingest(b"", size=bad)


@pytest.mark.parametrize("bad", [12, object(), [b"ok", "text"]])
def test_bad_data_types(bad):
    with pytest.raises(errors.InvalidArgument, match="data"):
        list(Ingest(bad))


def test_a_backend_limit_below_the_size_cap_is_enforced_and_named(tmp_path):
    from glance_store_ng.drivers.filesystem import FilesystemStore

    from glance_store_ng.store import Capabilities

    class Small(FilesystemStore):
        @property
        def capabilities(self):
            return Capabilities(thin=True, max_image_size=1000)

    store = Small({"filesystem_store_datadir": str(tmp_path)})
    with pytest.raises(errors.SizeLimitExceeded, match="the largest image"):
        store.add("big", iter([b"x" * 600, b"y" * 600]))
    assert store.add("small", b"z" * 1000).size == 1000
