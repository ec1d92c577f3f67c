"""The C module and the pure-Python fallback give identical results.

Each test runs once per implementation: ``python`` (``_fallback``) and
``native`` (``glance_store_ng.native`` with the C module active). Digests are
checked against hashlib and the xxhash package, zero scans against a naive
oracle, and the two implementations against each other.

Without the C module the ``native`` cases are skipped, unless
``GLANCE_STORE_NG_REQUIRE_NATIVE=1``, which makes them fail and say why.
"""

from __future__ import annotations

import array
import gc
import hashlib
import importlib
import json
import mmap
import os
import subprocess
import sys
import textwrap
import threading
import types
import warnings
from pathlib import Path

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

import glance_store_ng._version as version_module
from glance_store_ng import _fallback, native

REQUIRE_NATIVE = os.environ.get("GLANCE_STORE_NG_REQUIRE_NATIVE") == "1"

# Algorithms the C module must implement itself (not hand to hashlib).
CORE_ALGORITHMS = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512", "xxh3_64", "xxh3_128"]

BLOCK_SIZES = [1, 3, 16, 512, 4096]


def _require_native() -> None:
    """Fail (GLANCE_STORE_NG_REQUIRE_NATIVE=1) or skip when the C module is not in use."""
    if native.IMPLEMENTATION == "native":
        return
    message = (
        f"the native module is not in use: {native.NATIVE_UNAVAILABLE_REASON}. "
        "Build it with: apt-get install gcc libssl-dev libxxhash-dev && pip install -e ."
    )
    if REQUIRE_NATIVE:
        pytest.fail(f"GLANCE_STORE_NG_REQUIRE_NATIVE=1 but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module", params=["python", "native"])
def impl(request) -> types.ModuleType:
    """The implementation under test: the fallback module or the native wrapper."""
    if request.param == "python":
        return _fallback
    _require_native()
    return native


def reference_digest(algorithm: str, data: bytes) -> str:
    """The hex digest from hashlib or the xxhash package."""
    if algorithm == "xxh3_64":
        return xxhash.xxh3_64(data).hexdigest()
    if algorithm == "xxh3_128":
        return xxhash.xxh3_128(data).hexdigest()
    return hashlib.new(algorithm, data).hexdigest()


def oracle_zero_extents(data: bytes, block_size: int) -> list[tuple[int, int]]:
    """Naive block-by-block zero extents, merged."""
    extents: list[tuple[int, int]] = []
    for start in range(0, len(data), block_size):
        end = min(start + block_size, len(data))
        if any(data[start:end]):
            continue
        if extents and extents[-1][1] == start:
            extents[-1] = (extents[-1][0], end)
        else:
            extents.append((start, end))
    return extents


# Buffers made of zero runs and non-zero runs, the shapes images have.
runs = st.lists(
    st.one_of(
        st.integers(0, 9000).map(bytes),
        st.binary(min_size=1, max_size=300),
        st.integers(1, 8).map(lambda n: b"\x01" * n),
    ),
    max_size=12,
).map(b"".join)

_SETTINGS = settings(max_examples=150, deadline=None)


# ----------------------------------------------------------------- digests


def test_native_is_active_when_required():
    """With GLANCE_STORE_NG_REQUIRE_NATIVE=1 the C module must be in use."""
    if REQUIRE_NATIVE:
        _require_native()
    assert native.IMPLEMENTATION in ("native", "python")


def test_c_module_implements_core_algorithms():
    _require_native()
    for algorithm in CORE_ALGORITHMS:
        assert algorithm in native.ALGORITHMS
        assert type(native.new_digest(algorithm)).__name__ == "_NativeDigest", algorithm


def test_algorithms_cover_the_fallback():
    assert _fallback.ALGORITHMS <= native.ALGORITHMS
    assert {"xxh3_64", "xxh3_128", "sha256"} <= native.ALGORITHMS


@_SETTINGS
@given(data=st.binary(max_size=5000))
def test_digest_matches_reference(impl, data):
    for algorithm in sorted(impl.ALGORITHMS):
        digest = impl.new_digest(algorithm)
        digest.update(data)
        expected = reference_digest(algorithm, data)
        assert digest.hexdigest() == expected, algorithm
        assert digest.digest() == bytes.fromhex(expected), algorithm
        assert digest.digest_size == len(digest.digest()), algorithm


def test_digest_names_and_sizes_match_fallback(impl):
    for algorithm in sorted(_fallback.ALGORITHMS):
        ours, theirs = impl.new_digest(algorithm), _fallback.new_digest(algorithm)
        assert (ours.name, ours.digest_size) == (theirs.name, theirs.digest_size), algorithm


@_SETTINGS
@given(data=st.binary(max_size=20000), cuts=st.lists(st.integers(0, 20000), max_size=6))
def test_update_in_pieces_equals_one_update(impl, data, cuts):
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for algorithm in ("md5", "sha256", "sha3_256", "blake2b", "xxh3_64", "xxh3_128"):
        whole = impl.new_digest(algorithm)
        whole.update(data)
        pieces = impl.new_digest(algorithm)
        for start, end in zip(bounds, bounds[1:], strict=False):
            pieces.update(data[start:end])
            pieces.digest()  # reading the digest midway changes nothing
        assert pieces.hexdigest() == whole.hexdigest(), algorithm


@_SETTINGS
@given(data=st.binary(min_size=1, max_size=3000), offset=st.integers(0, 17))
def test_digest_of_buffers_and_odd_offsets(impl, data, offset):
    padded = bytearray(b"\xaa" * offset + data)
    views = [
        memoryview(padded)[offset:],
        memoryview(bytes(padded))[offset:],
        memoryview(padded).toreadonly()[offset:],
        bytearray(data),
    ]
    for algorithm in ("sha512", "xxh3_128"):
        expected = reference_digest(algorithm, data)
        for view in views:
            digest = impl.new_digest(algorithm)
            digest.update(view)
            assert digest.hexdigest() == expected, (algorithm, type(view))


def test_digest_of_mmap_and_typed_array(impl):
    data = bytes(range(256)) * 40
    with mmap.mmap(-1, len(data)) as mapped:
        mapped.write(data)
        digest = impl.new_digest("sha256")
        digest.update(mapped)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    # The mapping closed above: the digest held no export of it.
    ints = array.array("i", range(1000))
    digest = impl.new_digest("xxh3_64")
    digest.update(ints)
    assert digest.hexdigest() == xxhash.xxh3_64(ints.tobytes()).hexdigest()


def test_copy_is_independent(impl):
    for algorithm in ("md5", "sha384", "xxh3_64", "xxh3_128"):
        first = impl.new_digest(algorithm)
        first.update(b"shared prefix ")
        second = first.copy()
        first.update(b"one")
        second.update(b"two")
        assert first.hexdigest() == reference_digest(algorithm, b"shared prefix one")
        assert second.hexdigest() == reference_digest(algorithm, b"shared prefix two")


def test_digest_errors(impl):
    with pytest.raises(ValueError):
        impl.new_digest("no-such-hash")
    digest = impl.new_digest("sha256")
    with pytest.raises(TypeError):
        digest.update("text must be encoded")
    with pytest.raises(BufferError):
        digest.update(memoryview(b"abcdef")[::2])


def test_rare_algorithm_falls_back_to_hashlib():
    _require_native()
    digest = native.new_digest("sha256")
    assert type(digest).__name__ == "_NativeDigest"
    # Spellings the C module does not know still work, through hashlib.
    upper = native.new_digest("SHA256")
    upper.update(b"abc")
    assert upper.hexdigest() == hashlib.sha256(b"abc").hexdigest()


def test_one_digest_shared_by_threads(impl):
    """Concurrent updates on one object are serialised, not corrupted."""
    chunk = os.urandom(1 << 16)
    digest = impl.new_digest("md5")

    def feed():
        for _ in range(40):
            digest.update(chunk)

    threads = [threading.Thread(target=feed) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert digest.hexdigest() == hashlib.md5(chunk * 80).hexdigest()


# ------------------------------------------------------------ zero scans


@_SETTINGS
@given(data=runs, block_size=st.sampled_from(BLOCK_SIZES), offset=st.integers(0, 15))
def test_zero_extents_match_oracle(impl, data, block_size, offset):
    expected = oracle_zero_extents(data, block_size)
    padded = bytearray(b"\x07" * offset + data)
    view = memoryview(padded)[offset:]
    assert impl.zero_extents(view, block_size) == expected
    assert impl.zero_extents(data, block_size) == expected
    assert impl.zero_extents(memoryview(data).toreadonly(), block_size) == expected


@_SETTINGS
@given(data=runs, offset=st.integers(0, 15))
def test_is_zero_matches_any(impl, data, offset):
    padded = bytearray(b"\x07" * offset + data)
    assert impl.is_zero(memoryview(padded)[offset:]) == (not any(data))
    assert impl.is_zero(data) == (not any(data))


@_SETTINGS
@given(data=runs, block_size=st.integers(1, 10000))
def test_native_and_fallback_agree(data, block_size):
    _require_native()
    assert native.zero_extents(data, block_size) == _fallback.zero_extents(data, block_size)
    assert native.is_zero(data) == _fallback.is_zero(data)


@pytest.mark.parametrize("block_size", [1, 16, 4096])
def test_zero_extents_at_block_boundaries(impl, block_size):
    lengths = {0, 1, 15, 16, 17}
    for blocks in (1, 2, 3):
        lengths |= {blocks * block_size - 1, blocks * block_size, blocks * block_size + 1}
    for length in sorted(n for n in lengths if n >= 0):
        zeros = bytes(length)
        assert impl.zero_extents(zeros, block_size) == oracle_zero_extents(zeros, block_size)
        assert impl.is_zero(zeros)
        for position in {0, length // 2, length - 1} if length else set():
            data = bytearray(length)
            data[position] = 0xFF
            assert impl.zero_extents(data, block_size) == oracle_zero_extents(data, block_size)
            assert not impl.is_zero(data)


def test_zero_extents_many_extents(impl):
    """More extents than one C call returns: the scan resumes and stays merged."""
    data = b"\x00\x01" * 10000 + bytes(5) + b"\x01" * 3 + bytes(7)
    assert impl.zero_extents(data, 1) == oracle_zero_extents(data, 1)
    assert len(impl.zero_extents(data, 1)) == 10002


def test_zero_extents_large_blocks(impl):
    data = bytearray(3 << 20)
    assert impl.zero_extents(data, 1 << 40) == [(0, len(data))]
    data[(2 << 20) + 5] = 1
    assert impl.zero_extents(data, (1 << 20) + 1) == [(0, (2 << 20) + 2)]
    assert impl.zero_extents(data, 1 << 40) == []
    assert impl.zero_extents(b"", 1 << 70) == []


def test_zero_scan_of_mmap_and_other_buffers(impl):
    with mmap.mmap(-1, 5 * 4096) as mapped:
        mapped[4096 + 10] = 1
        assert impl.zero_extents(mapped) == [(0, 4096), (8192, 5 * 4096)]
        assert not impl.is_zero(mapped)
    ints = array.array("i", [0] * 2048 + [1] + [0] * 2047)
    assert impl.zero_extents(ints) == [(0, 8192), (12288, 16384)]
    strided = memoryview(bytes(20) + b"\x01")[::2]  # not contiguous
    assert impl.zero_extents(strided, 4) == [(0, 8)]
    assert not impl.is_zero(strided)


def test_zero_scan_errors(impl):
    for block_size in (0, -1):
        with pytest.raises(ValueError):
            impl.zero_extents(b"abc", block_size)
    with pytest.raises(TypeError):
        impl.zero_extents("text", 4096)
    with pytest.raises(TypeError):
        impl.is_zero("text")


# ------------------------------------------------------- module selection


def test_stale_build_is_refused():
    _require_native()
    with pytest.warns(RuntimeWarning, match="built for version .* but the package is 0.0.0-stale"):
        module, reason = native._load_native("0.0.0-stale")
    assert module is None
    assert "Rebuild" in reason


def test_stale_build_falls_back_at_import(monkeypatch):
    _require_native()
    monkeypatch.setattr(version_module, "__version__", "0.0.0-stale")
    try:
        with pytest.warns(RuntimeWarning, match="built for version"):
            importlib.reload(native)
        assert native.IMPLEMENTATION == "python"
        assert native.zero_extents is _fallback.zero_extents
    finally:
        monkeypatch.undo()
        importlib.reload(native)
    assert native.IMPLEMENTATION == "native"


def test_pure_python_env_forces_fallback(monkeypatch):
    monkeypatch.setenv(native.PURE_PYTHON_ENV, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module, reason = native._load_native(version_module.__version__)
    assert module is None
    assert native.PURE_PYTHON_ENV in reason


# -- the hash pipe ---------------------------------------------------------------------------


def _pipe_for(impl, algorithms, capacity):
    digests = [impl.new_digest(a) for a in algorithms]
    return digests, impl.HashPipe(digests, capacity)


@_SETTINGS
@given(
    pieces=st.lists(st.binary(max_size=9000), max_size=12),
    capacity=st.integers(1, 5),
    algorithm=st.sampled_from(["sha512", "sha256", "xxh3_128"]),
)
def test_hash_pipe_equals_hashlib(impl, pieces, capacity, algorithm):
    """Two digests on their own threads give what one sequential pass gives."""
    digests, pipe = _pipe_for(impl, ["md5", algorithm], capacity)
    numbers = [pipe.submit(piece) for piece in pieces]
    assert numbers == list(range(1, len(pieces) + 1))
    if numbers:
        pipe.wait(numbers[-1])
    pipe.close()
    whole = b"".join(pieces)
    assert digests[0].hexdigest() == hashlib.md5(whole).hexdigest()
    assert digests[1].hexdigest() == reference_digest(algorithm, whole)


def test_hash_pipe_reuses_buffers_after_wait(impl):
    """The caller may refill a buffer once wait() returned for it: the ring's contract."""
    digests, pipe = _pipe_for(impl, ["md5", "sha512"], 2)
    ring = [bytearray(100_000), bytearray(100_000)]
    expected_md5, expected_sha = hashlib.md5(), hashlib.sha512()
    last = [0, 0]
    for i in range(30):
        slot = i % 2
        pipe.wait(last[slot])
        ring[slot][:] = os.urandom(100_000)
        piece = memoryview(ring[slot])[: 50_000 + i]
        expected_md5.update(piece)
        expected_sha.update(piece)
        last[slot] = pipe.submit(piece)
    pipe.close()
    assert digests[0].hexdigest() == expected_md5.hexdigest()
    assert digests[1].hexdigest() == expected_sha.hexdigest()


def test_hash_pipe_abandon_stops_at_once(impl):
    digests, pipe = _pipe_for(impl, ["md5", "sha512"], 4)
    for _ in range(4):
        pipe.submit(bytes(1 << 20))
    pipe.close(abandon=True)
    pipe.close()  # closing twice is harmless
    with pytest.raises(ValueError):
        pipe.submit(b"late")


def _in_threads(target, count: int = 2, timeout: float = 60) -> list:
    """Run ``target()`` on ``count`` threads released at once; their results, in order.

    Fails (rather than hangs) when a thread is still blocked after ``timeout``.
    """
    start = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = target()
        except BaseException as exc:  # re-raised below, on the test's thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread is still blocked"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _queued_pipe(impl):
    """An md5 + sha512 pipe with 8 MiB queued, and the expected hex digests.

    The threads are still hashing when it returns (the expected digests are
    computed first), so a close that comes at once has to wait for them.
    """
    piece = os.urandom(1 << 21)
    whole = piece * 4
    expected = [hashlib.md5(whole).hexdigest(), hashlib.sha512(whole).hexdigest()]
    digests, pipe = _pipe_for(impl, ["md5", "sha512"], 4)
    for _ in range(4):
        pipe.submit(piece)
    return digests, pipe, expected


def test_hash_pipe_closed_from_two_threads_at_once(impl):
    """Each close() returns only once the digests are complete; closing again is harmless."""
    for _ in range(5):
        digests, pipe, expected = _queued_pipe(impl)

        def close_and_read(pipe=pipe, digests=digests):
            pipe.close()
            return [d.hexdigest() for d in digests]

        assert _in_threads(close_and_read) == [expected, expected]
        pipe.close()
        pipe.close(abandon=True)
        assert [d.hexdigest() for d in digests] == expected
        with pytest.raises(ValueError):
            pipe.submit(b"late")


def test_c_hash_pipe_closed_from_two_threads_at_once():
    """gsn_hashpipe_close() itself: concurrent and repeated calls join the threads once."""
    _require_native()
    for _ in range(5):
        digests, pipe, expected = _queued_pipe(native)

        def close_in_c(pipe=pipe):
            return native._lib.gsn_hashpipe_close(pipe._pipe, 0)

        assert _in_threads(close_in_c) == [native._lib.GSN_OK] * 2
        assert native._lib.gsn_hashpipe_close(pipe._pipe, 1) == native._lib.GSN_OK
        assert native._lib.gsn_hashpipe_wait(pipe._pipe, 4) == native._lib.GSN_OK
        pipe.close()  # the wrapper's own close: a third C close, and it unlocks the digests
        assert [d.hexdigest() for d in digests] == expected


def test_hash_pipe_abandoned_from_two_threads_at_once(impl):
    digests, pipe, _ = _queued_pipe(impl)
    assert _in_threads(lambda: pipe.close(abandon=True)) == [None, None]
    pipe.close()
    for digest in digests:
        digest.update(b"usable again")
        assert len(digest.digest()) == digest.digest_size


def test_hash_pipe_dropped_unclosed_frees_its_digests(impl):
    digests, pipe, _ = _queued_pipe(impl)
    del pipe
    gc.collect()
    (sizes,) = _in_threads(lambda: [len(d.digest()) for d in digests], count=1)
    assert sizes == [d.digest_size for d in digests]


def test_hash_pipe_refuses_a_digest_twice(impl):
    digest = impl.new_digest("md5")
    with pytest.raises(ValueError, match="only once"):
        impl.HashPipe([digest, digest], 2)
    digest.update(b"abc")
    assert digest.hexdigest() == hashlib.md5(b"abc").hexdigest()


def test_hash_pipe_digests_are_locked_while_open():
    _require_native()
    digest = native.new_digest("md5")
    pipe = native.HashPipe([digest, native.new_digest("sha512")], 2)
    assert not digest._lock.acquire(blocking=False)
    pipe.close()
    digest.update(b"usable again")


def test_a_module_built_without_libxxhash_keeps_the_rest_native(tmp_path):
    """On a stock machine (no libxxhash-dev) the C module is built all the same: md5, sha2,
    the zero scan and the hash pipe stay native, XXH3 goes through the xxhash package."""
    repo = Path(__file__).resolve().parents[1]
    built = subprocess.run(
        [sys.executable, str(repo / "native" / "build_native.py"), str(tmp_path)],
        cwd=repo,
        env={**os.environ, "GSN_NATIVE_XXHASH": "0"},
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    assert "building the C module without libxxhash" in built.stderr
    (module,) = tmp_path.glob("_native*.so")
    check = textwrap.dedent(
        f"""
        import hashlib, importlib.util, json, sys, xxhash
        spec = importlib.util.spec_from_file_location("glance_store_ng._native", {str(module)!r})
        native_module = importlib.util.module_from_spec(spec)
        sys.modules["glance_store_ng._native"] = native_module
        spec.loader.exec_module(native_module)
        from glance_store_ng import native
        data = bytes(range(256)) * 4096
        md5, xxh = native.new_digest("md5"), native.new_digest("xxh3_128")
        pipe = native.HashPipe([md5, xxh], 4)
        pipe.submit(data)
        pipe.close()
        print(json.dumps({{
            "implementation": native.IMPLEMENTATION,
            "md5_native": type(md5).__name__,
            "xxh3_native": type(xxh).__name__,
            "md5": md5.hexdigest() == hashlib.md5(data).hexdigest(),
            "xxh3": xxh.hexdigest() == xxhash.xxh3_128(data).hexdigest(),
            "zeros": native.zero_extents(bytes(8192) + b"x" * 4096),
        }}))
        """
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout)
    assert seen["implementation"] == "native"
    assert seen["md5_native"] == "_NativeDigest" and seen["xxh3_native"] != "_NativeDigest"
    assert seen["md5"] and seen["xxh3"]
    assert seen["zeros"] == [[0, 8192]]


# ----------------------------------------------------------------- CRC-32C


def test_crc32c_check_values(impl):
    # The CRC-32C check value, and RFC 3720's (iSCSI) test patterns.
    assert impl.crc32c(b"123456789") == 0xE3069283
    assert impl.crc32c(bytes(32)) == 0x8A9136AA
    assert impl.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert impl.crc32c(bytes(range(32))) == 0x46DD794E
    assert impl.crc32c(b"") == 0


@_SETTINGS
@given(data=st.binary(max_size=3000), cut=st.integers(0, 3000), offset=st.integers(0, 7))
def test_crc32c_matches_the_fallback_in_pieces_and_at_odd_offsets(data, cut, offset):
    _require_native()
    expected = _fallback.crc32c(data)
    assert native.crc32c(data) == expected
    cut = min(cut, len(data))
    assert native.crc32c(data[cut:], native.crc32c(data[:cut])) == expected
    shifted = memoryview(bytes(offset) + data)[offset:]  # unaligned start
    assert native.crc32c(shifted) == expected
