"""SparseWriter: zero runs of at least min_hole become holes, shorter ones are written,
a run is measured whole across the pieces it spans, and the bytes read back are the data."""

from __future__ import annotations

import errno
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from glance_store_ng import native
from glance_store_ng.pipeline import ZERO_BLOCK_SIZE
from glance_store_ng.sparse import SparseWriter, written_extents

BLOCK = ZERO_BLOCK_SIZE


def holes_of(path: str) -> list[tuple[int, int]]:
    """The file's holes as SEEK_HOLE/SEEK_DATA see them."""
    found, pos = [], 0
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while pos < size:
            hole = os.lseek(f.fileno(), pos, os.SEEK_HOLE)
            if hole >= size:
                break
            try:
                data = os.lseek(f.fileno(), hole, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                data = size
            found.append((hole, data))
            pos = data
    return found


@settings(max_examples=60, deadline=None)
@given(
    blocks=st.lists(st.booleans(), min_size=1, max_size=96),  # True: a data block
    tail=st.integers(0, BLOCK - 1),
    piece_blocks=st.integers(1, 20),
    min_hole_blocks=st.integers(1, 12),
)
def test_holes_are_the_long_zero_runs_and_the_bytes_are_the_data(
    tmp_path_factory, blocks, tail, piece_blocks, min_hole_blocks
):
    data = b"".join(os.urandom(BLOCK) if is_data else bytes(BLOCK) for is_data in blocks)
    data += bytes(tail)
    min_hole = min_hole_blocks * BLOCK
    path = str(tmp_path_factory.mktemp("sparse") / "image")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        writer = SparseWriter(fd, min_hole)
        step = piece_blocks * BLOCK
        for offset in range(0, len(data), step):
            piece = data[offset : offset + step]
            writer.write(offset, piece, native.zero_extents(memoryview(piece), BLOCK))
        written_zeros = writer.finish()
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)

    with open(path, "rb") as f:
        assert f.read() == data
    runs = native.zero_extents(memoryview(data), BLOCK)  # merged runs of zero blocks
    long_runs = [(s, e) for s, e in runs if e - s >= min_hole]
    # The filesystem reports holes in whole blocks: a run ending in the partial last block
    # ends at the file's end either way.
    assert holes_of(path) == long_runs
    assert written_zeros == sum(e - s for s, e in runs) - sum(e - s for s, e in long_runs)


def test_written_extents_merge_short_gaps_only():
    extents = [(0, 4096), (8192, 12288), (12288 + 65536, 12288 + 65536 + 4096)]
    merged, zeros = written_extents(extents, 65536)
    # the 4K gap is written with its data; the 64K gap stays a hole
    assert merged == [(0, 12288), (12288 + 65536, 12288 + 65536 + 4096)]
    assert zeros == 4096
    assert written_extents([], 65536) == ([], 0)
    assert written_extents(extents, 4096) == (extents, 0)
