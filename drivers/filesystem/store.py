"""The filesystem store's Store: configuration, locations, add, get, delete, orphans.

An add goes to the highest-priority data directory (``filesystem_store_datadirs``)
with room for the image, the one with the most free space among equals (see
``space``: the room is reserved as the add goes, and an add that outgrows its
directory moves to the next one with room); all-zero blocks become holes of a
sparse file (``filesystem_thin_provisioning``), and with
``filesystem_store_fsync`` the image is on disk before add returns (its
writeback starts chunk by chunk, overlapping the hashing).

An add writes a hidden temporary file beside its target, fsyncs it, then links
it to the image's name (which fails if the name exists: nothing is ever
overwritten; with several directories the link and the check that no other
directory has the id are one step, ``space.commit_lock``), fsyncs the directory
and only then removes the temporary name. A reader never sees a partial image;
a failed add removes its temporary file. An add killed after the link leaves
the image with its temporary name as a second link: gc removes both (the add
never returned the location). Reads skip holes with SEEK_DATA/SEEK_HOLE: zeros
are produced in memory, not read from disk. A location outside the data
directories (``file:///etc/passwd``, ``..``, symlinks pointing out) is refused.
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

from .space import (
    NO_SPACE,
    DataDir,
    Reservation,
    commit_lock,
    data_region,
    move_file,
    parse_datadirs,
    pick_datadir,
)

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


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _temp_image_id(name: str) -> str | None:
    """The image id of an add's temporary file name, ``.<id>.<12 hex>.partial``; None for
    any other name."""
    if not (name.startswith(".") and name.endswith(_TEMP_SUFFIX)):
        return None
    image_id, _, token = name[1 : -len(_TEMP_SUFFIX)].rpartition(".")
    if len(token) != 12 or not is_image_id(image_id):
        return None
    return image_id


class _TempFile:
    """An add's temporary file: where it is, the room it holds, how it becomes the image."""

    def __init__(self, store: FilesystemStore, image_id: str, declared: int | None) -> None:
        self.store = store
        self.image_id = image_id
        self.declared = declared
        self.tried: list[DataDir] = []
        self.fd = -1
        self.linked: str | None = None
        self._open(pick_datadir(store.datadirs, declared or 1, store.label))

    def _open(self, datadir: DataDir, start: int = 0) -> None:
        path = os.path.join(datadir.path, f".{self.image_id}.{secrets.token_hex(6)}{_TEMP_SUFFIX}")
        self.tried.append(datadir)
        with _os_errors(self.store.label, f"cannot create {path}"):
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        self.datadir, self.path = datadir, path
        self.space = Reservation(self.fd, self.declared, start)
        self.writing = f"writing image {self.image_id} in {datadir.path}"

    def make_room(self, start: int, end: int, sparse: SparseWriter | None) -> None:
        """Room for the chunk at ``start..end``: reserved here, else in the next data
        directory with room, where the bytes before ``start`` are moved."""
        try:
            self.space.ensure(end)
            return
        except OSError as exc:
            if exc.errno not in NO_SPACE or len(self.tried) == len(self.store.datadirs):
                with _os_errors(self.store.label, self.writing):
                    raise
        needed = max(end, self.declared or 0)
        datadir = pick_datadir(self.store.datadirs, needed, self.store.label, self.tried)
        old_fd, old_path = self.fd, self.path
        self._open(datadir, start)
        try:
            with _os_errors(self.store.label, self.writing):
                self.space.ensure(end)
                move_file(old_fd, self.fd, start)
        finally:
            os.close(old_fd)
            with contextlib.suppress(OSError):
                os.unlink(old_path)
        if sparse:
            sparse.retarget(self.fd, self.space.punch)
        LOG.info(
            "%s: image %s outgrew %s at %d bytes; moved to %s",
            self.store.label,
            self.image_id,
            os.path.dirname(old_path),
            start,
            datadir.path,
        )

    def finish(self, size: int, sparse: SparseWriter | None, durable: bool) -> int:
        """The file holds the whole image: set its size, settle its last hole, give back
        the room it does not use, set its mode; the bytes of zeros it wrote as data."""
        os.ftruncate(self.fd, size)
        zeros_written = sparse.finish() if sparse else 0
        self.space.release(size)
        perm = self.store.conf["filesystem_store_file_perm"]
        if perm:
            os.fchmod(self.fd, perm)
        if durable:
            os.fsync(self.fd)
        return zeros_written

    def publish(self, durable: bool) -> str:
        """Link the file to the image's name (the commit), then drop its temporary name;
        the image's path. The temporary name outlives the link until the add is done:
        a second link to an image means its add never returned (gc removes both)."""
        label = self.store.label
        fd, self.fd = self.fd, -1
        os.close(fd)
        final = os.path.join(self.datadir.path, self.image_id)
        with (
            _os_errors(label, f"image {self.image_id} at {final}"),
            commit_lock(self.store.datadirs),
        ):
            self.store._refuse_existing(self.image_id)
            os.link(self.path, final)
            self.linked = final
        with _os_errors(label, f"image {self.image_id} at {final}"):
            if durable:
                _fsync_dir(self.datadir.path)
            os.unlink(self.path)  # the add is done: from here on, an ordinary image
        return final

    def discard(self) -> None:
        """The add failed: remove what it wrote (its image too, if it was linked)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.linked:
            with contextlib.suppress(OSError):
                os.unlink(self.linked)
        with contextlib.suppress(OSError):
            os.unlink(self.path)


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
        entries = parse_datadirs(several, self.label) if several else [DataDir(single, 0)]
        dirs: dict[str, DataDir] = {}
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
            dirs[real] = DataDir(real, entry.priority)
        self.datadirs: tuple[DataDir, ...] = tuple(sorted(dirs.values(), key=lambda d: -d.priority))

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

    def _existing(self, image_id: str) -> str | None:
        for datadir in self.datadirs:
            path = os.path.join(datadir.path, image_id)
            if os.path.lexists(path):
                return path
        return None

    def _refuse_existing(self, image_id: str) -> None:
        found = self._existing(image_id)
        if found:
            raise AlreadyExists(
                f"{self.label}: image {image_id} already exists at {self._location(found)}"
            )

    def _add(self, image_id: str, ingest: Ingest) -> str:
        self._refuse_existing(image_id)  # early: the commit checks again
        temp = _TempFile(self, image_id, ingest.declared_size)
        thin = self.conf["filesystem_thin_provisioning"]
        durable = self.conf["filesystem_store_fsync"]
        try:
            sparse = (
                SparseWriter(temp.fd, self.conf["filesystem_thin_min_hole"], temp.space.punch)
                if thin
                else None
            )
            for chunk in ingest:  # errors of the caller's source propagate unchanged
                temp.make_room(chunk.offset, chunk.end, sparse)
                with _os_errors(self.label, temp.writing):
                    if sparse:
                        sparse.write(chunk.offset, chunk.data, chunk.zero_extents)
                    else:
                        pwrite_all(temp.fd, chunk.data, chunk.offset)
                    if durable:
                        _start_writeback(temp.fd, chunk.offset, len(chunk.data))
            with _os_errors(self.label, temp.writing):
                ingest.wrote_zeros(temp.finish(ingest.size, sparse, durable))
            final = temp.publish(durable)
        except BaseException:
            temp.discard()
            raise
        return self._location(final)

    # -- orphans -------------------------------------------------------------------------

    def find_orphans(self, older_than: float = 3600.0) -> list[Orphan]:
        """Temporary files of adds that never returned (the process died mid-add), named by
        their path; one with a second link is an image its add published but never
        returned, and goes with it."""
        now = time.time()
        found = []
        for datadir in self.datadirs:
            with _os_errors(self.label, f"listing {datadir.path}"):
                entries = list(os.scandir(datadir.path))
            for entry in entries:
                if _temp_image_id(entry.name) is None:
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # finished or removed meanwhile
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime >= older_than:
                    found.append(Orphan(entry.path, info.st_size, now - info.st_mtime))
        return found

    def remove_orphan(self, orphan: Orphan) -> None:
        """Remove a temporary file, and the image it is linked to if its add published it
        (the same inode under the image's name); one already gone is fine."""
        directory, name = os.path.split(orphan.name)
        image_id = _temp_image_id(name)
        if directory not in {d.path for d in self.datadirs} or image_id is None:
            raise BadLocation(f"{self.label}: {orphan.name} is not a temporary file of this store")
        image = os.path.join(directory, image_id)
        with _os_errors(self.label, f"removing {orphan.name}"):
            try:
                info = os.lstat(orphan.name)
            except FileNotFoundError:
                return
            if info.st_nlink > 1:
                with contextlib.suppress(FileNotFoundError):
                    published = os.lstat(image)
                    if (published.st_dev, published.st_ino) == (info.st_dev, info.st_ino):
                        os.unlink(image)
                        LOG.info(
                            "%s: removed %s, published by an add that never returned",
                            self.label,
                            self._location(image),
                        )
            with contextlib.suppress(FileNotFoundError):
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
                    data_start, data_end = data_region(fd, pos, end)
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
