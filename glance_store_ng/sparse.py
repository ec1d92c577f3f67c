"""Sparse files: all-zero runs left as holes, when they are long enough to be worth it.

A hole costs nothing to store, but a file cut into many small holes reads several
times slower than a dense one (every hole is a separate extent the kernel walks, and
on a disk a seek), so runs shorter than ``min_hole`` are written as zeros.
``DEFAULT_MIN_HOLE`` was chosen by measurement (README, "Thin provisioning"). The
file store writes its images this way and ``glance-store-ng get -o`` its copies;
the RBD store merges the data extents of each object with :func:`written_extents`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from .units import KiB

#: The shortest zero run left as a hole unless told otherwise.
DEFAULT_MIN_HOLE = 64 * KiB
_ZEROS_MAX = 1 << 20  # zeros are written from a buffer of at most this


def written_extents(
    data_extents: Sequence[tuple[int, int]], min_hole: int
) -> tuple[list[tuple[int, int]], int]:
    """The regions of one piece to write when only gaps of ``min_hole`` or more between its
    ``data_extents`` stay unwritten (a gap at either end of the piece stays too), and the
    bytes of zeros they take in. For stores that write a piece at a time (RBD objects)."""
    merged: list[tuple[int, int]] = []
    zeros = 0
    for start, end in data_extents:
        if merged and start - merged[-1][1] < min_hole:
            zeros += start - merged[-1][1]
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged, zeros


def pwrite_all(fd: int, data: memoryview | bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (``os.pwrite`` may write less)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class SparseWriter:
    """Writes pieces of a file given with their zero runs, leaving as holes the runs of
    at least ``min_hole`` bytes and writing shorter ones as zeros. A run is measured
    whole across pieces: the decision waits until its end is seen. What is written of
    a piece goes in as few writes as its holes allow (its zeros with its data), so the
    page cache holds the file in large pieces, as a file written densely. Call
    :meth:`finish` after the last piece, then set the file's size (a trailing hole is
    not written). ``punch(start, end)``, when given, is told of each hole once the file
    extends past it (the file store gives back the room it reserved there; a filesystem
    may ignore a punch past the end of a file): set the file's size before
    :meth:`finish`, which settles the last hole."""

    def __init__(
        self,
        fd: int,
        min_hole: int = DEFAULT_MIN_HOLE,
        punch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.fd = fd
        self.min_hole = min_hole
        self.punch = punch
        self.zero_bytes = 0  # found in the pieces
        self.hole_bytes = 0  # of those, left unwritten
        self._pending: tuple[int, int] | None = None  # a zero run reaching a piece's end
        self._unpunched: list[tuple[int, int]] = []  # holes of the piece being written
        self._zeros = b""

    def write(
        self, offset: int, data: memoryview | bytes, zero_runs: Sequence[tuple[int, int]]
    ) -> None:
        """Write ``data`` at ``offset``; ``zero_runs`` are its sorted all-zero
        ``(start, end)`` regions, relative to ``data``."""
        size = len(data)
        if not size:
            return
        runs = list(zero_runs)
        self.zero_bytes += sum(end - start for start, end in runs)
        unwritten: list[tuple[int, int]] = []  # holes, and a run that may go on
        if self._pending and runs and runs[0][0] == 0:  # the pending run goes on here
            start, end = runs.pop(0)
            first = self._pending[0]
            if end == size:  # and beyond this piece
                self._pending = (first, offset + end)
                return
            self._pending = None
            if offset + end - first >= self.min_hole:
                unwritten.append((0, end))
                self._hole(first, offset + end)
            else:  # its part before this piece as zeros; the rest goes with this piece
                self._write_zeros(first, offset - first)
        else:
            self._settle_pending()
        tail = runs.pop() if runs and runs[-1][1] == size else None
        for start, end in runs:
            if end - start >= self.min_hole:
                unwritten.append((start, end))
                self._hole(offset + start, offset + end)
        if tail:
            unwritten.append(tail)
            self._pending = (offset + tail[0], offset + size)
        view, pos = memoryview(data), 0
        for start, end in unwritten:
            if start > pos:
                pwrite_all(self.fd, view[pos:start], offset + pos)
            pos = end
        if pos < size:
            pwrite_all(self.fd, view[pos:], offset + pos)
        self._punch()

    def finish(self) -> int:
        """Settle the last run; the bytes of zero runs written as data, in all."""
        self._settle_pending()
        self._punch()
        return self.zero_bytes - self.hole_bytes

    def _settle_pending(self) -> None:
        if self._pending:
            start, end = self._pending
            self._pending = None
            if end - start >= self.min_hole:
                self._hole(start, end)
            else:
                self._write_zeros(start, end - start)

    def retarget(self, fd: int, punch: Callable[[int, int], None] | None) -> None:
        """Go on writing into ``fd`` (a copy of what was written so far)."""
        self.fd, self.punch = fd, punch

    def _hole(self, start: int, end: int) -> None:
        self.hole_bytes += end - start
        if self.punch:
            self._unpunched.append((start, end))

    def _punch(self) -> None:
        """Tell ``punch`` of the holes decided, now that what follows them is written."""
        holes, self._unpunched = self._unpunched, []
        for start, end in holes:
            self.punch(start, end)  # type: ignore[misc]

    def _write_zeros(self, offset: int, count: int) -> None:
        if not self._zeros:
            self._zeros = bytes(min(self.min_hole, _ZEROS_MAX))
        zeros = memoryview(self._zeros)
        while count:
            piece = min(count, len(zeros))
            pwrite_all(self.fd, zeros[:piece], offset)
            offset += piece
            count -= piece
