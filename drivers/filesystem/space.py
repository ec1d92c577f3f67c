"""Where an add's image goes and the room it takes: data directories, reservations, the
commit lock.

An add's temporary file reserves its room as it goes (``fallocate``, ahead of
the writes: the whole declared size at once, an unknown size in growing
steps), so two adds never both count on the same free space. A reservation
that does not fit moves the add to the next data directory with room: what it
wrote so far is copied there (:func:`move_file`). The thin store's holes are
punched out of the reservation at the end (:meth:`Reservation.release`). On a
filesystem without ``fallocate`` nothing is reserved and a full directory fails
the add with StorageFull, as it always did.

With several data directories an image id must be unique across all of them:
:func:`commit_lock` makes the last check and the link one step for every
process sharing a directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from glance_store_ng.errors import ConfigError, StorageFull
from glance_store_ng.sparse import pwrite_all
from glance_store_ng.units import MiB

__all__ = [
    "NO_SPACE",
    "DataDir",
    "Reservation",
    "commit_lock",
    "data_region",
    "move_file",
    "parse_datadirs",
    "pick_datadir",
]

#: In each data directory of a multi-directory store: the lock of :func:`commit_lock`.
LOCK_NAME = ".glance-store-ng.lock"
_FALLOC_FL_KEEP_SIZE = 1
_FALLOC_FL_PUNCH_HOLE = 2
#: An image of unknown size reserves this much ahead of its writes, or an eighth of what
#: it holds when that is more.
_STEP = 64 * MiB
#: The errors of a full filesystem (or of a spent quota).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class DataDir:
    path: str  # absolute, symlinks resolved
    priority: int


def parse_datadirs(entries: list[str], backend: str) -> list[DataDir]:
    """``filesystem_store_datadirs`` entries, ``DIR:PRIORITY`` (or ``DIR``: priority 0)."""
    dirs: list[DataDir] = []
    for entry in entries:
        path, sep, priority = entry.rpartition(":")
        if not sep or not path:
            path, priority = entry, "0"
        try:
            rank = int(priority)
        except ValueError:
            raise ConfigError(
                f"{backend}: filesystem_store_datadirs entry {entry!r} is not DIR:PRIORITY "
                "(for example /var/lib/glance/images:100)"
            ) from None
        dirs.append(DataDir(path, rank))
    return dirs


def pick_datadir(
    datadirs: Sequence[DataDir], needed: int, label: str, tried: Sequence[DataDir] = ()
) -> DataDir:
    """The highest-priority data directory (the one with most room among equals) with
    ``needed`` bytes free, other than those ``tried``; StorageFull if there is none."""
    best: list[tuple[int, int, DataDir]] = []
    for datadir in datadirs:
        if datadir in tried:
            continue
        try:
            vfs = os.statvfs(datadir.path)
        except OSError as exc:
            raise StorageFull(
                f"{label}: cannot see the free space of data directory {datadir.path}: "
                f"{exc.strerror}"
            ) from exc
        best.append((datadir.priority, vfs.f_bavail * vfs.f_frsize, datadir))
    best.sort(key=lambda item: (-item[0], -item[1]))
    for _, free, datadir in best:
        if free >= needed:
            return datadir
    most = max((free for _, free, _ in best), default=0)
    where = "no other data directory" if tried else "no data directory"
    raise StorageFull(
        f"{label}: {where} has {needed} bytes free (at most {most}); "
        "free space or add a data directory"
    )


def _fallocator() -> Callable[[int, int, int, int], None] | None:
    """Linux's fallocate(2) (not glibc's posix_fallocate, which writes zeros where the
    filesystem cannot allocate), or None."""
    try:
        function = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int

    def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
        if function(fd, mode, offset, length) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return fallocate


_fallocate = _fallocator()


class Reservation:
    """The room an add's temporary file ``fd`` holds, reserved ahead of its writes.

    ``declared`` is the image's size when known; ``start``, where reserving begins (a
    moved image's bytes before it are copied, its holes stay holes). Blocks are reserved with
    ``fallocate(FALLOC_FL_KEEP_SIZE)``: the file's size does not change, and
    what is reserved but never written reads as zeros.
    """

    def __init__(self, fd: int, declared: int | None, start: int = 0) -> None:
        self.fd = fd
        self.declared = declared
        self.reserved = start  # below it: bytes already written (a moved image's)
        self.supported = _fallocate is not None
        self.punches = True

    def ensure(self, end: int) -> None:
        """Hold room for bytes up to ``end``; OSError ENOSPC/EDQUOT if it does not fit
        (then nothing more is reserved)."""
        if not self.supported or end <= self.reserved:
            return
        targets = [self.declared] if self.declared else []
        targets += [max(end, self.reserved + max(_STEP, self.reserved // 8)), end]
        for target in targets:
            if target < end:
                continue
            try:
                _fallocate(self.fd, _FALLOC_FL_KEEP_SIZE, self.reserved, target - self.reserved)  # type: ignore[misc]
            except OSError as exc:
                if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS):
                    self.supported = False
                    return
                if exc.errno in NO_SPACE and target != end:
                    continue  # a smaller step may still fit
                raise
            self.reserved = target
            return

    def punch(self, start: int, end: int) -> None:
        """Give back the room of bytes ``start..end``: a hole the image leaves unwritten."""
        end = min(end, self.reserved)
        if self.supported and self.punches and start < end:
            mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
            try:
                _fallocate(self.fd, mode, start, end - start)  # type: ignore[misc]
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                self.punches = False  # the holes keep their room (the data reads the same)

    def release(self, size: int) -> None:
        """Give back the room reserved past the image's ``size`` (the file's size): ext4
        frees it when the size is set again (even unchanged), others when it is punched."""
        if self.supported and self.reserved > size:
            os.ftruncate(self.fd, size)
            self.punch(size, self.reserved)


def data_region(fd: int, pos: int, end: int) -> tuple[int, int]:
    """The next ``(start, end)`` of data at or after ``pos``; ``(end, end)`` if none is left."""
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no data after pos
            return end, end
        if exc.errno == errno.EINVAL:  # a filesystem without SEEK_DATA: all data
            return pos, end
        raise
    if start >= end:
        return end, end
    return start, min(os.lseek(fd, start, os.SEEK_HOLE), end)


def move_file(source: int, target: int, size: int) -> None:
    """Copy bytes ``0..size`` of file ``source`` into ``target``, holes left as holes."""
    pos = 0
    while pos < size:
        start, end = data_region(source, pos, size)
        while start < end:
            piece = os.pread(source, min(end - start, 4 * MiB), start)
            if not piece:
                raise OSError(errno.EIO, "the temporary file shrank while it was moved")
            pwrite_all(target, piece, start)
            start += len(piece)
        pos = end


@contextlib.contextmanager
def commit_lock(datadirs: Sequence[DataDir]) -> Iterator[None]:
    """Exclusive, across processes, while held: for the check that no data directory
    holds an image id and the link that publishes it (one step with several
    directories; a single directory's link refuses an existing name by itself).

    Held for microseconds, by every add of every process sharing a directory; a
    process that dies holding it releases it. Locks every directory's lock file,
    in path order.
    """
    if len(datadirs) < 2:
        yield
        return
    fds: list[int] = []
    try:
        for datadir in sorted(datadirs, key=lambda d: d.path):
            # read-only (flock needs no more): any user sharing the directory can open it
            fd = os.open(
                os.path.join(datadir.path, LOCK_NAME),
                os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC,
                0o644,
            )
            fds.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        for fd in fds:
            os.close(fd)
