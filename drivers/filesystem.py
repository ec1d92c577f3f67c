"""The filesystem store: images as files under one or more data directories.

Options carry glance_store's names and meanings; ``glance-store-ng drivers``
lists them with their help. An add goes to the highest-priority data
directory (``filesystem_store_datadirs``) with room for the image, the one
with the most free space among equals; all-zero blocks become holes of a
sparse file (``filesystem_thin_provisioning``), and with
``filesystem_store_fsync`` the image is on disk before add returns (its
writeback starts chunk by chunk, overlapping the hashing).

An add writes a hidden temporary file beside its target, fsyncs it, then links
it to the image's name (which fails if the name exists: nothing is ever
overwritten) and fsyncs the directory. A reader never sees a partial image; a
failed add removes its temporary file. Reads skip holes with
SEEK_DATA/SEEK_HOLE: zeros are produced in memory, not read from disk.
A location outside the data directories (``file:///etc/passwd``, ``..``,
symlinks pointing out) is refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from glance_store_ng.errors import (
    AlreadyExists,
    BadLocation,
    ConfigError,
    NotFound,
    StorageFull,
    StoreError,
    error_for_errno,
    translated,
)
from glance_store_ng.locations import Location
from glance_store_ng.options import Option
from glance_store_ng.pipeline import Ingest
from glance_store_ng.reader import ImageReader
from glance_store_ng.sparse import DEFAULT_MIN_HOLE, SparseWriter, pwrite_all
from glance_store_ng.store import Capabilities, Orphan, Store, clamp_range, is_image_id
from glance_store_ng.units import KiB

__all__ = ["FilesystemStore"]

LOG = logging.getLogger(__name__)

_TEMP_SUFFIX = ".partial"


_HINTS = {StorageFull: "free space in the data directory and retry"}


def _os_errors(label: str, what: str) -> AbstractContextManager[None]:
    """Translate OSError into the store's errors: the one boundary of this driver."""
    return translated(lambda exc: _translate(exc, label, what), keep_cause=True)


def _translate(exc: Exception, label: str, what: str) -> StoreError | None:
    if not isinstance(exc, OSError):
        return None
    if exc.errno == errno.ELOOP:
        return BadLocation(f"{label}: {what}: a symbolic link, not an image file")
    return error_for_errno(exc.errno, f"{label}: {what}: {exc.strerror or exc}", _HINTS)


@dataclass(frozen=True)
class _DataDir:
    path: str  # absolute, symlinks resolved
    priority: int


def _parse_datadirs(entries: list[str], backend: str) -> list[_DataDir]:
    dirs: list[_DataDir] = []
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
        dirs.append(_DataDir(path, rank))
    return dirs


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _data_region(fd: int, pos: int, end: int) -> tuple[int, int]:
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


def _writeback_starter() -> Callable[[int, int, int], None]:
    """sync_file_range(SYNC_FILE_RANGE_WRITE) from libc, or a no-op where it is missing.

    Starting the disk writes of each chunk as soon as it is written overlaps
    them with hashing, so the final fsync has little left to wait for.
    """
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, count: None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    sync_file_range_write = 2

    def start(fd: int, offset: int, count: int) -> None:
        function(fd, offset, count, sync_file_range_write)  # advisory: errors surface in fsync

    return start


_start_writeback = _writeback_starter()


class FilesystemStore(Store):
    """Images as files under local (or network-mounted) directories."""

    schemes = ("file",)
    CHUNK_SIZE_OPTION = "filesystem_store_chunk_size"
    OPTIONS = (
        Option(
            "filesystem_store_datadir",
            "str",
            help="Directory the images are stored in (created if missing).",
        ),
        Option(
            "filesystem_store_datadirs",
            "list",
            help="Several directories as DIR:PRIORITY; adds go to the highest priority with room.",
        ),
        Option(
            "filesystem_store_file_perm",
            "octal",
            default=0,
            help="Mode of image files in octal digits, such as 640 (0: as the umask gives).",
        ),
        Option(
            "filesystem_store_chunk_size",
            "int",
            default=1 << 20,
            min=4096,
            max=1 << 30,
            help="Bytes per read and write (default 1 MiB).",
        ),
        Option(
            "filesystem_store_fsync",
            "bool",
            default=True,
            help="Flush each image to disk before add returns, so it survives a power loss "
            "(off: the kernel writes it back later, as glance_store does).",
        ),
        Option(
            "filesystem_thin_provisioning",
            "bool",
            default=True,
            help="Leave runs of all-zero blocks as holes (sparse files) instead of writing "
            "them (the runs of filesystem_thin_min_hole or more).",
        ),
        Option(
            "filesystem_thin_min_hole",
            "size",
            default=DEFAULT_MIN_HOLE,
            min=4 * KiB,
            help="With thin provisioning, the shortest run of zeros left as a hole; shorter "
            "runs are written (a file cut into small holes reads several times slower, "
            "and on a disk each hole is a seek).",
        ),
    )

    def configure(self) -> None:
        single = self.conf["filesystem_store_datadir"]
        several = self.conf["filesystem_store_datadirs"]
        if single and several:
            raise ConfigError(
                f"{self.label}: set filesystem_store_datadir or filesystem_store_datadirs, not both"
            )
        if not single and not several:
            raise ConfigError(
                f"{self.label}: option filesystem_store_datadir is required (the directory "
                "images are stored in), or filesystem_store_datadirs"
            )
        entries = _parse_datadirs(several, self.label) if several else [_DataDir(single, 0)]
        dirs: dict[str, _DataDir] = {}
        for entry in entries:
            if not os.path.isabs(entry.path):
                raise ConfigError(
                    f"{self.label}: data directory {entry.path!r} must be an absolute path"
                )
            try:
                os.makedirs(entry.path, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"{self.label}: cannot create data directory {entry.path!r}: {exc.strerror}"
                ) from None
            real = os.path.realpath(entry.path)
            if not os.access(real, os.W_OK | os.X_OK):
                raise ConfigError(
                    f"{self.label}: data directory {entry.path!r} is not writable by this process"
                )
            if real in dirs:
                raise ConfigError(
                    f"{self.label}: data directory {entry.path!r} is listed more than once"
                )
            dirs[real] = _DataDir(real, entry.priority)
        self.datadirs: tuple[_DataDir, ...] = tuple(
            sorted(dirs.values(), key=lambda d: -d.priority)
        )

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            thin=self.conf["filesystem_thin_provisioning"],
            min_hole=self.conf["filesystem_thin_min_hole"],
        )

    # -- locations -----------------------------------------------------------------------

    def _parse_location(self, location: Location) -> str:
        """The path of the image file at ``location``, its directory resolved; or BadLocation.

        The image must be directly in a data directory and be named as an image id (so
        an add's temporary file is never served). The directory part is resolved
        (symlinks, so a link cannot lead out of the data directories); the file name
        itself is not: the image is opened, measured and removed with O_NOFOLLOW/lstat,
        so a symlink is never followed.
        """
        if location.scheme != "file":
            raise BadLocation(f"{self.label}: {location.masked} is not a file:// location")
        rest = location.uri[len("file://") :]
        if not rest.startswith("/"):
            raise BadLocation(
                f"{self.label}: {location.masked} names a host; expected file:///absolute/path"
            )
        parts = rest.split("/")
        if any(part in (".", "..") for part in parts):
            raise BadLocation(f"{self.label}: {location.masked} contains '.' or '..' segments")
        directory, name = os.path.split(rest)
        if not name:
            raise BadLocation(f"{self.label}: {location.masked} names a directory, not an image")
        if not is_image_id(name):  # a temporary file of an add, or anything not an image
            raise BadLocation(f"{self.label}: {location.masked} names no valid image")
        real_directory = os.path.realpath(directory)
        for datadir in self.datadirs:
            if real_directory == datadir.path:
                return os.path.join(real_directory, name)
        roots = ", ".join(d.path for d in self.datadirs)
        raise BadLocation(
            f"{self.label}: {location.masked} is outside the data directories ({roots}): an "
            "image is a file directly in one of them"
        )

    @property
    def location_prefix(self) -> str | None:
        """The highest-priority data directory's ``file://`` prefix (adds go there first)."""
        return self._location(self.datadirs[0].path) + "/"

    @staticmethod
    def _location(path: str) -> str:
        return "file://" + path

    # -- add -----------------------------------------------------------------------------

    def _pick_datadir(self, needed: int) -> _DataDir:
        best: list[tuple[int, int, _DataDir]] = []
        for datadir in self.datadirs:
            with _os_errors(self.label, f"cannot stat data directory {datadir.path}"):
                vfs = os.statvfs(datadir.path)
            best.append((datadir.priority, vfs.f_bavail * vfs.f_frsize, datadir))
        best.sort(key=lambda item: (-item[0], -item[1]))
        for _, free, datadir in best:
            if free >= needed:
                return datadir
        most = max(free for _, free, _ in best)
        raise StorageFull(
            f"{self.label}: no data directory has {needed} bytes free (at most {most}); "
            "free space or add a data directory"
        )

    def _existing(self, image_id: str) -> str | None:
        for datadir in self.datadirs:
            path = os.path.join(datadir.path, image_id)
            if os.path.lexists(path):
                return path
        return None

    def _add(self, image_id: str, ingest: Ingest) -> str:
        found = self._existing(image_id)
        if found:
            raise AlreadyExists(
                f"{self.label}: image {image_id} already exists at {self._location(found)}"
            )
        datadir = self._pick_datadir(ingest.declared_size or 1)  # unknown: any room at all
        final = os.path.join(datadir.path, image_id)
        temp = os.path.join(datadir.path, f".{image_id}.{secrets.token_hex(6)}{_TEMP_SUFFIX}")
        thin = self.conf["filesystem_thin_provisioning"]
        perm = self.conf["filesystem_store_file_perm"]
        durable = self.conf["filesystem_store_fsync"]
        linked = False
        with _os_errors(self.label, f"cannot create {temp}"):
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            writing = f"writing image {image_id} in {datadir.path}"
            sparse = SparseWriter(fd, self.conf["filesystem_thin_min_hole"]) if thin else None
            for chunk in ingest:  # errors of the caller's source propagate unchanged
                with _os_errors(self.label, writing):
                    if sparse:
                        sparse.write(chunk.offset, chunk.data, chunk.zero_extents)
                    else:
                        pwrite_all(fd, chunk.data, chunk.offset)
                    if durable:
                        _start_writeback(fd, chunk.offset, len(chunk.data))
            with _os_errors(self.label, writing):
                if sparse:
                    ingest.wrote_zeros(sparse.finish())
                os.ftruncate(fd, ingest.size)
                if perm:
                    os.fchmod(fd, perm)
                if durable:
                    os.fsync(fd)
            fd_to_close, fd = fd, -1
            os.close(fd_to_close)
            with _os_errors(self.label, f"image {image_id} at {final}"):
                os.link(temp, final)
                linked = True
                if durable:
                    _fsync_dir(datadir.path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                if linked:  # the directory could not be synced: the add failed, unpublish
                    os.unlink(final)
                os.unlink(temp)
            raise
        try:
            os.unlink(temp)
        except OSError as exc:  # the image is stored; the temporary name is an orphan for gc
            LOG.warning("%s: could not remove %s: %s", self.label, temp, exc.strerror)
        return self._location(final)

    # -- orphans -------------------------------------------------------------------------

    def find_orphans(self, older_than: float = 3600.0) -> list[Orphan]:
        """Temporary files of adds that never finished (the process died mid-add)."""
        now = time.time()
        found = []
        for datadir in self.datadirs:
            with _os_errors(self.label, f"listing {datadir.path}"):
                entries = list(os.scandir(datadir.path))
            for entry in entries:
                if not (entry.name.startswith(".") and entry.name.endswith(_TEMP_SUFFIX)):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # finished or removed meanwhile
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime >= older_than:
                    found.append(Orphan(entry.path, info.st_size, now - info.st_mtime))
        return found

    def remove_orphan(self, orphan: Orphan) -> None:
        name = os.path.basename(orphan.name)
        if os.path.dirname(orphan.name) not in {d.path for d in self.datadirs} or not (
            name.startswith(".") and name.endswith(_TEMP_SUFFIX)
        ):
            raise BadLocation(f"{self.label}: {orphan.name} is not a temporary file of this store")
        with _os_errors(self.label, f"removing {orphan.name}"):
            os.unlink(orphan.name)

    # -- get, get_size, delete -----------------------------------------------------------

    def _open_image(self, path: str) -> tuple[int, os.stat_result]:
        with _os_errors(self.label, f"opening {self._location(path)}"):
            # O_NONBLOCK: a FIFO planted in the directory must not block the open (for a
            # regular file the flag changes nothing)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise NotFound(f"{self.label}: {self._location(path)} is not an image file")
        except BaseException:
            os.close(fd)
            raise
        return fd, info

    def _get(self, location: str, offset: int, length: int | None) -> ImageReader:
        fd, info = self._open_image(location)
        try:
            shown = f"{self.label}: {self._location(location)}"
            count = clamp_range(info.st_size, offset, length, shown)
        except BaseException:
            os.close(fd)
            raise
        # A file with all its blocks allocated has no hole to look for.
        sparse = info.st_blocks * 512 < info.st_size
        chunks = self._read(fd, offset, offset + count, location, sparse)
        return ImageReader(chunks, count, close=lambda: os.close(fd))

    def _read(self, fd: int, start: int, end: int, path: str, sparse: bool) -> Iterator[bytes]:
        """Bytes ``start``..``end`` of the file in chunks; a chunk wholly in a hole is not read.

        In a ``sparse`` file SEEK_DATA/SEEK_HOLE locate the data regions (two
        lseeks per region), and zeros of large holes come from memory, not the
        disk; a dense one is read straight through.
        """
        step = self.chunk_size
        zeros = bytes(min(step, max(end - start, 0)))
        pos = start
        data_start, data_end = (-1, -1) if sparse else (start, end)  # data around pos
        with _os_errors(self.label, f"reading {self._location(path)}"):
            while pos < end:
                count = min(step, end - pos)
                if pos >= data_end:
                    data_start, data_end = _data_region(fd, pos, end)
                if pos + count <= data_start:
                    yield zeros if count == len(zeros) else zeros[:count]
                else:
                    piece = os.pread(fd, count, pos)
                    if len(piece) != count:
                        raise StoreError(
                            f"{self.label}: {self._location(path)} shrank while being read"
                        )
                    yield piece
                pos += count

    def _get_size(self, location: str) -> int:
        fd, info = self._open_image(location)
        os.close(fd)
        return info.st_size

    def _delete(self, location: str) -> None:
        shown = self._location(location)
        with _os_errors(self.label, f"deleting {shown}"):
            mode = os.lstat(location).st_mode
            if stat.S_ISLNK(mode):
                raise BadLocation(f"{self.label}: {shown} is a symbolic link, not an image file")
            if not stat.S_ISREG(mode):
                raise NotFound(f"{self.label}: {shown} is not an image file")
            os.unlink(location)
