"""The contract of :class:`glance_store_ng.Store`, as tests. See the package docstring."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
import xxhash

from glance_store_ng import errors, open_store
from glance_store_ng.locations import Location, parse_location
from glance_store_ng.store import AddResult, Orphan, Store
from glance_store_ng.verify import Expected

from ..units import MiB

__all__ = ["StoreConformance", "StoreFixture"]


def new_id() -> str:
    """A fresh image id, as Glance makes them."""
    return str(uuid.uuid4())


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Reproducible incompressible bytes."""
    return random.Random(seed).randbytes(size)


def mostly_zero(size: int, block: int = 4096, seed: int = 0) -> bytes:
    """An image where 3 blocks in 4 are all zero (as a freshly installed VM disk)."""
    rng = random.Random(seed)
    out = bytearray(size)
    for offset in range(0, size, block):
        if rng.random() < 0.25:
            out[offset : offset + block] = rng.randbytes(min(block, size - offset))
    return bytes(out)


def hostile_qcow2(data_size: int) -> bytes:
    """A qcow2 image whose header names a backing file on the host (what CVE-2024-32498's
    kind of image does), then ``data_size`` bytes of data: any inspection must refuse it."""
    name = b"/etc/passwd"
    # magic, version 2, backing file offset and size, cluster bits, virtual size
    header = struct.pack(">4sIQIIQ", b"QFI\xfb", 2, 512, len(name), 16, 1 << 30)
    return header.ljust(512, b"\0") + name.ljust(512, b"\0") + random_bytes(data_size, 11)


class _Boom(Exception):
    """What a failing source raises in these tests."""


def failing_source(data: bytes, fail_at: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    """Yields ``data`` in pieces, then raises _Boom once ``fail_at`` bytes were given."""
    for offset in range(0, len(data), piece):
        if offset >= fail_at:
            raise _Boom(f"source failed at byte {offset}")
        yield data[offset : offset + piece]


class StoreFixture:
    """What a driver's test class supplies: a ``make_store`` fixture and a backend listing."""

    @pytest.fixture
    def make_store(self) -> Callable[..., Store]:
        """A factory: ``make_store(**options)`` -> a Store with these options added."""
        raise NotImplementedError("the driver's fixture class must define make_store")

    def backend_listing(self, store: Store) -> set[str]:
        """Every object, file or upload the backend holds under this store's root.

        The suite compares it before and after a failed add: nothing may remain.
        """
        raise NotImplementedError("the driver's fixture class must define backend_listing")

    def allocated_bytes(self, store: Store, location: str) -> int:
        """Bytes the backend allocated for the image (needed when the store is thin)."""
        raise NotImplementedError("a thin store's fixture class must define allocated_bytes")

    #: The granularity at which ``allocated_bytes`` can see unwritten regions: 4 KiB for
    #: sparse files. A backend that reports allocation per object (an RBD image on
    #: Ceph's memstore OSD counts a written object whole) sets its object size, and the
    #: thin test then spreads its zero and data blocks at that granularity.
    thin_block_size: int = 4096

    @pytest.fixture
    def store(self, make_store: Callable[..., Store]) -> Store:
        return make_store()

    # -- what OrphanTests needs: adds killed in another process ------------------------------

    def open_store_args(self, **options: Any) -> tuple[str, dict[str, Any]]:
        """``(driver, options)`` such that ``open_store(driver, options)`` opens, in another
        process, the store ``make_store(**options)`` opens; the options JSON-serialisable."""
        raise NotImplementedError("OrphanTests needs the fixture class's open_store_args")

    def store_factory(self) -> Iterator[Callable[..., Store]]:
        """A ``make_store`` built on :meth:`open_store_args`, for a ``make_store`` fixture to
        ``yield from``: it opens stores with ``open_store`` and closes them after the test."""
        stores: list[Store] = []

        def make(**options: Any) -> Store:
            store = open_store(*self.open_store_args(**options))
            stores.append(store)
            return store

        try:
            yield make
        finally:
            for store in stores:
                store.close()

    def damage(self, store: Store, location: str, offset: int) -> None:
        """Change the byte at ``offset`` of the stored image behind the driver's back, keeping
        its size: bit rot on a disk, or the object overwritten by someone else."""
        raise NotImplementedError(
            "VerifyTests needs the fixture class's damage(store, location, offset)"
        )

    def orphan_of(self, store: Store, image_id: str) -> Orphan | None:
        """What an add of ``image_id`` left in the backend so far (None: nothing yet), looked at
        behind the driver's back, named and sized as ``find_orphans`` must list it (its
        ``age`` is not compared). None once the add completed."""
        raise NotImplementedError("OrphanTests needs the fixture class's orphan_of")

    def release_killed_add(self, store: Store, orphan: Orphan) -> None:
        """Called after an add was killed, before its orphan is removed: make the backend let
        go of what the dead process still holds, as an operator would (an RBD watch lasts
        until the OSD times it out). Nothing by default."""

    def location_forms(self, store: Store, location: str) -> list[str]:
        """Every location form that names the image at ``location`` (legacy short forms
        too): none may serve an image whose add has not returned. ``[location]`` by
        default."""
        return [location]

    #: Two adds of one id at the same moment: exactly one creates it. False for a driver
    #: whose backend checks only when a write starts (Swift's If-None-Match: of two
    #: overlapping uploads both succeed, the newest replaces the other) and that does not
    #: settle the race itself (glance_store_ng.overlapping); the race test then asks only
    #: that the image be one winner's, whole.
    exclusive_adds: ClassVar[bool] = True
    #: Where an add is once its image is complete, before it returns: ``("module:Name.attr",
    #: "before" or "after")``; OrphanTests kills an add there (instead of calling it, or once
    #: it returned) to check that gc finds the image no location was returned for.
    commit_kill_point: ClassVar[tuple[str, str] | None] = None
    #: Options of the stores whose adds are killed: parts, segments or objects small enough
    #: that ``orphan_sent`` bytes leave some written.
    orphan_options: ClassVar[dict[str, Any]] = {}
    #: Bytes the killed add's source gives (in random 1 MiB pieces) before it stalls.
    orphan_sent: int = 3 * MiB
    #: Bytes of the add the backend holds once its source stalled (all it writes of
    #: ``orphan_sent``, so none is in flight when it is killed): ``orphan_of``'s size then.
    orphan_written: int = 3 * MiB


def _read(store: Store, location: str, offset: int = 0, length: int | None = None) -> bytes:
    with store.get(location, offset, length) as reader:
        data = b"".join(reader)
    assert len(data) == reader.size
    return data


class AddTests:
    """add: bytes stored as given, checksums as hashlib's, every source type."""

    @pytest.mark.parametrize(
        "kind",
        ["bytes", "bytearray", "memoryview", "file", "read-only file", "iterable", "generator"],
    )
    def test_round_trip_every_source_type(self, store: Store, kind: str) -> None:
        data = random_bytes(store.chunk_size * 2 + 12345, seed=1)
        source: Any = {
            "bytes": lambda: data,
            "bytearray": lambda: bytearray(data),
            "memoryview": lambda: memoryview(data),
            "file": lambda: io.BytesIO(data),
            "read-only file": lambda: _ReadOnly(data),
            "iterable": lambda: [data[i : i + 1000] for i in range(0, len(data), 1000)],
            "generator": lambda: (data[i : i + 70001] for i in range(0, len(data), 70001)),
        }[kind]()
        result = store.add(new_id(), source, len(data))
        assert result.size == len(data)
        assert result.checksum == hashlib.md5(data).hexdigest()
        assert result.multihash == hashlib.sha512(data).hexdigest()
        assert result.hash_algo == "sha512"
        assert _read(store, result.location) == data
        assert store.get_size(result.location) == len(data)
        store.delete(result.location)

    @pytest.mark.parametrize("algo", ["sha256", "sha1", "xxh3_64", "xxh3_128"])
    def test_multihash_algorithms(self, store: Store, algo: str) -> None:
        data = random_bytes(300_000, seed=2)
        result = store.add(new_id(), data, hashing_algo=algo)
        expected = (
            getattr(xxhash, algo)(data).hexdigest()
            if algo.startswith("xxh")
            else hashlib.new(algo, data).hexdigest()
        )
        assert (result.hash_algo, result.multihash) == (algo, expected)
        store.delete(result.location)

    @pytest.mark.parametrize("declared", [True, False], ids=["known size", "unknown size"])
    def test_add_without_checksum(self, store: Store, declared: bool) -> None:
        # Large enough for the multi-part path of object stores, small for the one-shot one.
        for data in (random_bytes(300_000, seed=4), random_bytes(store.chunk_size * 3 + 5, seed=5)):
            size = len(data) if declared or not store.capabilities.unknown_size else None
            result = store.add(new_id(), data, size, hashing_algo="xxh3_128", checksum=False)
            assert result.checksum is None
            assert result.multihash == xxhash.xxh3_128(data).hexdigest()
            assert _read(store, result.location) == data
            store.delete(result.location)

    def test_inspection_records_the_format_and_virtual_size(
        self, make_store: Callable[..., Store]
    ) -> None:
        store = make_store(image_inspection="enforce")
        data = random_bytes(600_000, seed=13)
        result = store.add(new_id(), data, len(data), disk_format="raw")
        assert result.metadata["disk_format_detected"] == "raw"
        assert result.metadata["virtual_size"] == len(data)
        store.delete(result.location)

    def test_empty_image(self, store: Store) -> None:
        result = store.add(new_id(), b"", 0)
        assert result.size == 0
        assert result.checksum == hashlib.md5(b"").hexdigest()
        assert store.get_size(result.location) == 0
        assert _read(store, result.location) == b""
        store.delete(result.location)

    @pytest.mark.parametrize("delta", [-1, 0, 1])
    @pytest.mark.parametrize("chunks", [1, 2])
    def test_sizes_at_chunk_boundaries(self, store: Store, chunks: int, delta: int) -> None:
        data = random_bytes(store.chunk_size * chunks + delta, seed=chunks * 10 + delta)
        result = store.add(new_id(), io.BytesIO(data), len(data))
        assert (result.size, result.checksum) == (len(data), hashlib.md5(data).hexdigest())
        assert _read(store, result.location) == data
        store.delete(result.location)

    @pytest.mark.parametrize("size", [None, 0])
    def test_unknown_size(self, store: Store, size: int | None) -> None:
        data = random_bytes(store.chunk_size + 777, seed=3)
        if not store.capabilities.unknown_size:
            with pytest.raises(errors.InvalidArgument, match="size"):
                store.add(new_id(), io.BytesIO(data), size)
            return
        result = store.add(new_id(), io.BytesIO(data), size)
        assert result.size == len(data)
        assert store.get_size(result.location) == len(data)
        assert _read(store, result.location) == data
        store.delete(result.location)

    def test_mostly_zero_image_reads_back_equal(self, store: Store) -> None:
        data = mostly_zero(store.chunk_size * 3 + 4096 * 3 + 100, seed=4)
        result = store.add(new_id(), data, len(data))
        assert result.multihash == hashlib.sha512(data).hexdigest()
        assert _read(store, result.location) == data
        store.delete(result.location)

    def test_location_is_a_uri_of_the_store(self, store: Store) -> None:
        result = store.add(new_id(), b"x" * 10)
        assert parse_location(result.location).scheme in store.schemes
        assert store.owns(result.location)
        store.delete(result.location)

    def test_no_secret_in_location_or_repr(self, store: Store) -> None:
        result = store.add(new_id(), b"secret test")
        secrets = [
            str(store.conf[o.name]) for o in store.all_options() if o.secret and store.conf[o.name]
        ]
        for secret in secrets:
            assert secret not in result.location
            assert secret not in repr(store)
            assert secret not in repr(result)
        store.delete(result.location)

    def test_concurrent_adds(self, store: Store) -> None:
        datas = [random_bytes(200_000 + i, seed=10 + i) for i in range(4)]
        results: list[Any] = [None] * len(datas)

        def add(i: int) -> None:
            results[i] = store.add(new_id(), datas[i])

        threads = [threading.Thread(target=add, args=(i,)) for i in range(len(datas))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for data, result in zip(datas, results, strict=False):
            assert _read(store, result.location) == data
            store.delete(result.location)

    @pytest.mark.parametrize("declared", [True, False], ids=["size known", "size unknown"])
    def test_adds_of_one_id_race_and_exactly_one_wins(
        self, make_store: Callable[..., Store], declared: bool
    ) -> None:
        """Clients adding the same id at once (each its own store, as separate hosts):
        exactly one succeeds, the others get AlreadyExists, the winner's bytes are stored
        and nothing of the losers remains."""
        stores = [make_store() for _ in range(4)]
        before = self.backend_listing(stores[0])  # type: ignore[attr-defined]
        for round_ in range(3):
            image_id = new_id()
            datas = [
                random_bytes(stores[0].chunk_size + 1000 * i, seed=50 + 10 * round_ + i)
                for i in range(len(stores))
            ]
            outcomes = _race(stores, image_id, datas, declared)
            winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, AddResult)]
            losers = [o for o in outcomes if not isinstance(o, AddResult)]
            assert all(isinstance(o, errors.AlreadyExists) for o in losers), losers
            if self.exclusive_adds:  # type: ignore[attr-defined]
                assert len(winners) == 1, outcomes
            else:  # overlapping adds may all succeed; the image is one of theirs, whole
                assert winners, outcomes
            location = outcomes[winners[0]].location
            assert _read(stores[0], location) in [datas[i] for i in winners]
            stores[0].delete(location)
            assert self.backend_listing(stores[0]) == before  # type: ignore[attr-defined]


def _race(stores: list[Store], image_id: str, datas: list[bytes], declared: bool) -> list[Any]:
    """Each store adds ``image_id`` with its data, all at once; each one's AddResult or error."""
    outcomes: list[Any] = [None] * len(stores)
    start = threading.Barrier(len(stores))

    def add(i: int) -> None:
        start.wait()
        try:
            size = len(datas[i]) if declared else None
            outcomes[i] = stores[i].add(image_id, io.BytesIO(datas[i]), size)
        except errors.StoreError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=add, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


class _ReadOnly:
    """A file object with read() only, as Glance's CooperativeReader."""

    def __init__(self, data: bytes) -> None:
        self._io = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._io.read(min(size, 50_000) if size > 0 else size)


class FailedAddTests:
    """A failed add raises a clear error and leaves nothing behind."""

    def _assert_add_fails_cleanly(
        self, store: Store, exc_type: type[BaseException], image_id: str, data: Any, **kwargs: Any
    ) -> None:
        before = self.backend_listing(store)  # type: ignore[attr-defined]
        with pytest.raises(exc_type):
            store.add(image_id, data, **kwargs)
        assert self.backend_listing(store) == before  # type: ignore[attr-defined]
        # The id is free: nothing half-stored claims it.
        result = store.add(image_id, b"after the failure")
        assert _read(store, result.location) == b"after the failure"
        store.delete(result.location)

    def test_hostile_image_is_refused_early_and_leaves_nothing(
        self, make_store: Callable[..., Store]
    ) -> None:
        """With inspection enforced, a qcow2 naming a host file as its backing file fails
        its add once its header was read (far from its end) and nothing is stored."""
        store = make_store(image_inspection="enforce")
        image = hostile_qcow2(8 * MiB)
        given: list[int] = []

        def source() -> Iterator[bytes]:
            for offset in range(0, len(image), 256 * 1024):
                given.append(offset)
                yield image[offset : offset + 256 * 1024]

        before = self.backend_listing(store)  # type: ignore[attr-defined]
        with pytest.raises(errors.ImageRejected, match="backing_file") as caught:
            store.add(new_id(), source(), len(image), disk_format="qcow2")
        assert "qcow2" in str(caught.value)
        assert given[-1] < 2 * MiB  # the source was not read to its end
        assert self.backend_listing(store) == before  # type: ignore[attr-defined]

    def test_data_of_another_format_than_declared_is_refused(
        self, make_store: Callable[..., Store]
    ) -> None:
        store = make_store(image_inspection="enforce")
        self._assert_add_fails_cleanly(
            store, errors.ImageRejected, new_id(), random_bytes(300_000, 12), disk_format="qcow2"
        )

    def test_source_error_propagates_and_leaves_nothing(self, store: Store) -> None:
        data = random_bytes(store.chunk_size * 3, seed=5)
        self._assert_add_fails_cleanly(
            store, _Boom, new_id(), failing_source(data, len(data) * 6 // 10), size=len(data)
        )

    def test_keyboard_interrupt_leaves_nothing(self, store: Store) -> None:
        def interrupted() -> Iterator[bytes]:
            yield random_bytes(store.chunk_size + 5, seed=6)
            raise KeyboardInterrupt

        self._assert_add_fails_cleanly(store, KeyboardInterrupt, new_id(), interrupted())

    def test_data_shorter_than_declared_size(self, store: Store) -> None:
        data = random_bytes(store.chunk_size + 10, seed=7)
        self._assert_add_fails_cleanly(
            store, errors.SizeMismatch, new_id(), data, size=len(data) + 1
        )

    def test_data_longer_than_declared_size(self, store: Store) -> None:
        data = random_bytes(store.chunk_size + 10, seed=8)
        self._assert_add_fails_cleanly(
            store, errors.SizeMismatch, new_id(), io.BytesIO(data), size=len(data) - 1
        )

    def test_size_cap_on_stream(self, make_store: Callable[..., Store]) -> None:
        store = make_store(image_size_cap=100_000)
        with pytest.raises(errors.SizeLimitExceeded, match="image_size_cap"):
            store.add(new_id(), io.BytesIO(random_bytes(100_001, seed=9)))
        self._assert_add_fails_cleanly(
            store, errors.SizeLimitExceeded, new_id(), (b"z" * 60_000 for _ in range(2))
        )
        result = store.add(new_id(), random_bytes(100_000, seed=9))
        assert result.size == 100_000
        store.delete(result.location)

    def test_size_cap_on_declared_size(self, make_store: Callable[..., Store]) -> None:
        store = make_store(image_size_cap=1000)
        self._assert_add_fails_cleanly(
            store, errors.SizeLimitExceeded, new_id(), b"x" * 10, size=5000
        )

    def test_duplicate_id_is_refused_and_original_kept(self, store: Store) -> None:
        image_id = new_id()
        first = store.add(image_id, b"original")
        with pytest.raises(errors.AlreadyExists) as caught:
            store.add(image_id, b"impostor")
        assert isinstance(caught.value, FileExistsError)
        assert _read(store, first.location) == b"original"
        store.delete(first.location)

    @pytest.mark.parametrize("image_id", ["", "../evil", "a/b", ".hidden", "x" * 300, "nul\0", 42])
    def test_bad_image_ids(self, store: Store, image_id: Any) -> None:
        before = self.backend_listing(store)  # type: ignore[attr-defined]
        with pytest.raises(errors.InvalidArgument, match="image id"):
            store.add(image_id, b"data")
        assert self.backend_listing(store) == before  # type: ignore[attr-defined]

    def test_unsupported_hash_algorithm(self, store: Store) -> None:
        with pytest.raises(errors.InvalidArgument, match="hashing_algo"):
            store.add(new_id(), b"data", hashing_algo="md42")

    def test_text_data_is_refused(self, store: Store) -> None:
        with pytest.raises(errors.InvalidArgument, match="binary"):
            store.add(new_id(), "text, not bytes")


class GetTests:
    """get with offset and length; the reader's size and closing."""

    @pytest.fixture
    def stored(self, store: Store) -> Iterator[tuple[str, bytes]]:
        data = mostly_zero(store.chunk_size * 2 + 5000, seed=11)
        data = random_bytes(3000, seed=12) + data[3000:]
        result = store.add(new_id(), data)
        yield result.location, data
        store.delete(result.location)

    def test_ranges(self, store: Store, stored: tuple[str, bytes]) -> None:
        location, data = stored
        size, chunk = len(data), store.chunk_size
        cases = [
            (0, None),
            (0, 1),
            (1, 10),
            (chunk - 1, 2),
            (chunk, chunk),
            (chunk + 1, None),
            (size - 1, None),
            (size, None),
            (size - 10, 100),
            (0, size),
            (4095, 4097),
            (0, 0),
        ]
        for offset, length in cases:
            end = size if length is None else offset + length
            assert _read(store, location, offset, length) == data[offset:end], (offset, length)

    def test_range_errors(self, store: Store, stored: tuple[str, bytes]) -> None:
        location, data = stored
        for offset, length in [(-1, None), (0, -1), (len(data) + 1, None), ("1", None)]:
            with pytest.raises(errors.InvalidArgument):
                store.get(location, offset, length)  # type: ignore[arg-type]

    def test_reader_closes_early(self, store: Store, stored: tuple[str, bytes]) -> None:
        location, data = stored
        with store.get(location) as reader:
            assert reader.size == len(data)
            first = next(iter(reader))
            assert data.startswith(first)
        assert reader.closed

    def test_location_object_accepted(self, store: Store, stored: tuple[str, bytes]) -> None:
        location, data = stored
        assert store.get_size(parse_location(location)) == len(data)
        assert isinstance(parse_location(location), Location)


class MissingAndBadLocationTests:
    """NotFound after delete; BadLocation for what the store does not hold."""

    def test_delete_then_not_found(self, store: Store) -> None:
        result = store.add(new_id(), b"short-lived")
        store.delete(result.location)
        for call in (store.get, store.get_size, store.delete):
            with pytest.raises(errors.NotFound) as caught:
                call(result.location)
            assert isinstance(caught.value, FileNotFoundError)
            assert not caught.value.retryable

    @pytest.mark.parametrize(
        "location", ["", "not a uri", "nosuchscheme://x/y", "file://", "\x00://x", 42]
    )
    def test_bad_locations(self, store: Store, location: Any) -> None:
        for call in (store.get, store.get_size, store.delete):
            with pytest.raises(errors.BadLocation):
                call(location)
        assert not store.owns(location) if isinstance(location, str) else True


class ThinTests:
    """Thin stores leave all-zero blocks unwritten; others say they wrote them (zero_bytes 0)."""

    def test_mostly_zero_image_allocation(self, store: Store) -> None:
        # Zero and data blocks as large as the store's shortest hole and as what
        # allocated_bytes can see, whichever is larger.
        block = max(self.thin_block_size, store.capabilities.min_hole)  # type: ignore[attr-defined]
        data = mostly_zero(max(8 * MiB, 64 * block), block=block, seed=13)
        result = store.add(new_id(), io.BytesIO(data), len(data))
        if store.capabilities.thin:
            assert result.zero_bytes >= len(data) // 2
            allocated = self.allocated_bytes(store, result.location)  # type: ignore[attr-defined]
            assert allocated <= 0.30 * len(data)
        else:
            assert result.zero_bytes == 0
        assert _read(store, result.location) == data
        store.delete(result.location)


class VerifyTests:
    """get(..., verify=...): the recorded bytes, or an error; never wrong bytes in silence."""

    def test_verify_on_read(self, store: Store) -> None:
        data = random_bytes(store.chunk_size * 2 + 5000, seed=31)
        result = store.add(new_id(), data, hashing_algo="sha256")
        for expected in (
            result,
            Expected(checksum=result.checksum),
            Expected(multihash=result.multihash, hash_algo="sha256"),
            Expected(size=len(data)),
        ):
            with store.get(result.location, verify=expected) as reader:
                assert reader.read() == data
        with pytest.raises(errors.InvalidArgument, match="whole image"):
            store.get(result.location, 1, verify=result)
        with pytest.raises(errors.SizeMismatch):  # at once, before any byte
            store.get(result.location, verify=Expected(size=len(data) + 1))
        store.delete(result.location)

    def test_damaged_image_fails_verify_after_its_bytes(self, store: Store) -> None:
        data = random_bytes(store.chunk_size * 2 + 5000, seed=32)
        result = store.add(new_id(), data)
        self.damage(store, result.location, len(data) // 2)  # type: ignore[attr-defined]
        damaged = _read(store, result.location)  # without verify, served as it is now
        assert len(damaged) == len(data) and damaged != data
        seen = bytearray()
        with (
            pytest.raises(errors.ChecksumMismatch),
            store.get(result.location, verify=result) as reader,
        ):
            for piece in reader:
                seen += piece
        assert seen == damaged  # the caller saw every byte, then the error
        with pytest.raises(errors.ChecksumMismatch):
            store.get(result.location, verify=Expected(checksum=result.checksum)).read()
        store.delete(result.location)


class StoreConformance(
    AddTests, FailedAddTests, GetTests, MissingAndBadLocationTests, ThinTests, VerifyTests
):
    """Every conformance test. Combine with your StoreFixture subclass."""
