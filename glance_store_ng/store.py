"""The store contract: the class every driver fills in.

A driver subclasses :class:`Store`, declares ``schemes``, ``OPTIONS`` and its
:class:`Capabilities`, and implements four methods, the underscore twins of
the public ones:

``_add(image_id, ingest) -> str``
    Consume ``ingest`` (an iterable of :class:`~glance_store_ng.pipeline.Chunk`)
    to its end and store the bytes; return the location URI. Make the image
    visible only after the last chunk was consumed without error. On *any*
    exception (from the backend, from the ingest's checks, from the caller's
    source, KeyboardInterrupt included) remove what was written and re-raise:
    a failed add leaves no image. Refuse an existing ``image_id`` with
    :class:`~glance_store_ng.errors.AlreadyExists` and overwrite nothing.
    Never put credentials into the location.
``_get(location, offset, length) -> ImageReader``
    ``offset`` and ``length`` are already checked (``length`` may be None: to
    the end). Raise NotFound for a missing image.
``_get_size(location) -> int``
``_delete(location) -> None``
    Raise NotFound for a missing image; InUse (and change nothing) if the
    backend says the image is still in use.

A driver that acts as the requesting user (per-call credentials) reads the
caller's :class:`~glance_store_ng.context.RequestContext` with
:func:`~glance_store_ng.context.current_context` inside these four methods
(on the caller's thread: threads it starts do not inherit it).

Locations reach the driver parsed by ``_parse_location``, which checks that the
URI is one this store holds (the right scheme, inside its root) and raises
BadLocation otherwise. Each driver translates its client's exceptions into
:mod:`glance_store_ng.errors` at one boundary.

Everything else (argument checks, hashing, the size cap, results, logging)
lives here, once, for every driver.
"""

from __future__ import annotations

import abc
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .context import using_context
from .errors import BadLocation, ConfigError, InvalidArgument
from .inspection import FORMATS, Inspection, inspection_available
from .locations import Location, parse_location
from .options import COMMON_OPTIONS, Option, mask_options, resolve_options
from .pipeline import DEFAULT_CHUNK_SIZE, ZERO_BLOCK_SIZE, Ingest
from .reader import ImageReader
from .verify import Expected, verified

__all__ = [
    "IMAGE_ID_PATTERN",
    "MAX_IMAGE_ID_LENGTH",
    "AddResult",
    "Capabilities",
    "Orphan",
    "Store",
    "check_image_id",
    "is_image_id",
]

LOG = logging.getLogger("glance_store_ng")

# Glance uses UUIDs; any id that is one safe path component, URI segment and object name is fine.
#: The longest image id, on every driver: a file name is at most 255 bytes, and the file
#: store's temporary name adds 22 to the id.
MAX_IMAGE_ID_LENGTH = 200
#: A valid image id, as a regular expression (match it whole: ``fullmatch``).
IMAGE_ID_PATTERN = rf"[A-Za-z0-9][A-Za-z0-9._~-]{{0,{MAX_IMAGE_ID_LENGTH - 1}}}"
_IMAGE_ID = re.compile(IMAGE_ID_PATTERN)


def is_image_id(name: object) -> bool:
    """True when ``name`` is a valid image id: safe as a file name, an object key and a URI
    segment. Drivers use it to tell their images (and orphans) from other names."""
    return isinstance(name, str) and _IMAGE_ID.fullmatch(name) is not None


def check_image_id(image_id: str) -> str:
    """``image_id`` if it is valid (:func:`is_image_id`), else InvalidArgument."""
    if not is_image_id(image_id):
        raise InvalidArgument(
            f"image id {image_id!r} is not valid: use 1-{MAX_IMAGE_ID_LENGTH} letters, digits, "
            "'.', '_', '~' or '-', starting with a letter or digit (Glance uses UUIDs)"
        )
    return image_id


@dataclass(frozen=True)
class Capabilities:
    """What a store can do, as named values (not bit masks)."""

    read_range: bool = True
    """get() with offset/length reads only that range from the backend."""
    unknown_size: bool = True
    """add() accepts data whose size is not known in advance."""
    thin: bool = False
    """All-zero regions are not written (holes, thin images) and read back as zeros."""
    min_hole: int = 4096
    """When thin: the shortest all-zero run left unwritten (shorter ones are written)."""
    max_image_size: int | None = None
    """The largest image the backend accepts, when it has a limit (add enforces it)."""
    acts_as_user: bool = False
    """Each call acts as the requesting user, with the ``context=`` it is given (Swift
    multi-tenant): a caller must pass one."""


@dataclass(frozen=True)
class AddResult:
    """What an add stored: the fields Glance records, and what the pipeline saw."""

    location: str
    """The location URI to record; it never holds credentials."""
    size: int
    """Bytes stored."""
    checksum: str | None
    """md5 of the bytes, in hex (Glance's ``checksum``); None if add was told not to."""
    multihash: str
    """The ``hash_algo`` digest of the bytes, in hex (Glance's ``os_hash_value``)."""
    hash_algo: str
    """The multihash algorithm (Glance's ``os_hash_algo``)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Location metadata; holds ``store`` (the backend name) in multi-store setups."""
    zero_bytes: int = 0
    """Bytes in all-zero blocks the store did not write (holes); 0 when it writes zeros."""
    seconds: float = 0.0
    """How long the add took."""


@dataclass(frozen=True)
class Orphan:
    """Something an interrupted add left behind, found by ``Store.find_orphans``."""

    name: str
    """What it is, as the backend names it (a path, an upload id, an object name)."""
    size: int
    """Bytes it holds (0 when unknown)."""
    age: float
    """Seconds since it was last written."""


class Store(abc.ABC):
    """One configured storage backend. See the module docstring for the driver contract.

    ``Store(options, backend=name)``: ``options`` maps option names (as
    glance_store names them) to values, typed or as strings; they are
    validated against ``OPTIONS`` plus the common ones, and unknown or missing
    ones raise ConfigError naming the option and ``backend``.
    """

    #: The URI schemes of the locations this driver writes and reads.
    schemes: ClassVar[tuple[str, ...]] = ()
    #: The options this driver takes (the common ones are added to them).
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    #: The option that sets the chunk size, if the driver has one.
    CHUNK_SIZE_OPTION: ClassVar[str | None] = None
    #: The driver checks its transfers against the image's md5 (``ingest.checksum``):
    #: the pipeline then computes it even for ``add(..., checksum=False)``.
    MD5_FOR_TRANSFERS: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None, *, backend: str | None = None):
        self.backend = backend
        self.conf: dict[str, Any] = resolve_options(self.all_options(), options or {}, self.label)
        self.configure()
        self.inspection_mode: str = self._inspection_mode()
        """How adds are inspected unless told otherwise: enforce, detect or off."""

    # -- what a driver declares or implements ------------------------------------------------

    @classmethod
    def all_options(cls) -> tuple[Option, ...]:
        """The driver's options followed by the common ones."""
        own = {o.name for o in cls.OPTIONS}
        return cls.OPTIONS + tuple(o for o in COMMON_OPTIONS if o.name not in own)

    def configure(self) -> None:  # noqa: B027 - optional hook
        """Check ``self.conf`` beyond single options and prepare; raise ConfigError."""

    @property
    def capabilities(self) -> Capabilities:
        """What this store can do, given its configuration."""
        return Capabilities()

    @abc.abstractmethod
    def _parse_location(self, location: Location) -> Any:
        """The driver's view of ``location``; BadLocation if this store does not hold it."""

    @abc.abstractmethod
    def _add(self, image_id: str, ingest: Ingest) -> str: ...

    @abc.abstractmethod
    def _get(self, location: Any, offset: int, length: int | None) -> ImageReader: ...

    @abc.abstractmethod
    def _get_size(self, location: Any) -> int: ...

    @abc.abstractmethod
    def _delete(self, location: Any) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the store is not used afterwards."""

    @property
    def location_prefix(self) -> str | None:
        """What every location this store writes starts with (``file:///srv/images/``,
        ``s3://host/bucket/``), for frontends that route locations by prefix, as Glance's
        ``url_prefix``; None when the store has no such prefix."""
        return None

    def find_orphans(self, older_than: float = 3600.0) -> list[Orphan]:
        """What interrupted adds left behind (a crash, a killed process), older than
        ``older_than`` seconds: temporary files, pending uploads, stray segments.

        Drivers that can leave such things override this and :meth:`remove_orphan`.
        """
        return []

    def remove_orphan(self, orphan: Orphan) -> None:
        """Remove one thing :meth:`find_orphans` returned; one already gone is no error."""
        raise NotImplementedError(f"{type(self).__name__} leaves no orphans to remove")

    # -- the public API ----------------------------------------------------------------------

    @property
    def label(self) -> str:
        """How messages name this store: the backend name, else the driver's name."""
        return self.backend or f"{type(self).__name__}"

    @property
    def chunk_size(self) -> int:
        """Bytes per chunk on the add and get paths."""
        if self.CHUNK_SIZE_OPTION:
            return int(self.conf[self.CHUNK_SIZE_OPTION])
        return DEFAULT_CHUNK_SIZE

    def owns(self, location: str | Location) -> bool:
        """True when ``location`` is one this store holds (scheme and root match)."""
        try:
            self._parse_location(parse_location(location))
        except (BadLocation, InvalidArgument):
            return False
        return True

    def add(
        self,
        image_id: str,
        data: Any,
        size: int | None = None,
        hashing_algo: str = "sha512",
        checksum: bool = True,
        context: Any = None,
        disk_format: str | None = None,
        inspect: str | None = None,
    ) -> AddResult:
        """Store ``data`` as image ``image_id``.

        ``data`` is a binary file object, a bytes-like object, or an iterable
        of bytes-like chunks. ``size`` is its length, or None/0 when unknown;
        a stream of another length is refused (SizeMismatch). The md5 and the
        ``hashing_algo`` digest (any hashlib algorithm, xxh3_64, xxh3_128) are
        computed in the same pass. ``checksum=False`` skips the md5 (Glance's
        legacy ``checksum``; ``AddResult.checksum`` is then None) and saves a
        core's worth of hashing, unless the driver verifies its transfers with
        it (``MD5_FOR_TRANSFERS``: Swift). ``context`` is the requesting user's
        :class:`~glance_store_ng.context.RequestContext` (or Glance's request
        context), for stores that act as the user (Swift multi-tenant); others
        ignore it.

        ``disk_format`` is what the image is declared to be (Glance's ``disk_format``).
        ``inspect`` (``enforce``, ``detect``, ``off``; default: the store's option
        ``image_inspection``) inspects the data as it streams with oslo.utils' format
        inspector (glance_store_ng.inspection): enforced, an image that is not its
        ``disk_format``, or fails a safety check (backing file, data file, VMDK extents,
        two formats at once...), raises ImageRejected as soon as that is known, and nothing
        is stored. The detected format, the virtual size and the checks run are in
        ``AddResult.metadata`` (``disk_format_detected``, ``virtual_size``,
        ``inspection_checks``; with ``detect``, ``inspection_rejected`` says why an image
        would have been refused).

        Raises AlreadyExists (nothing overwritten), SizeLimitExceeded,
        SizeMismatch, StorageFull, InvalidArgument, or the backend's errors;
        an exception raised by ``data`` itself propagates unchanged. On any
        failure nothing is left behind.
        """
        check_image_id(image_id)
        capabilities = self.capabilities
        if not size and not capabilities.unknown_size:
            raise InvalidArgument(f"{self.label}: this store needs the image size in advance")
        started = time.monotonic()
        size_cap, cap_source = self.conf["image_size_cap"], "option image_size_cap"
        limit = capabilities.max_image_size
        if limit and (not size_cap or limit < size_cap):
            size_cap, cap_source = limit, f"the largest image {self.label} accepts"
        ingest = Ingest(
            data,
            size=size,
            hashing_algo=hashing_algo,
            chunk_size=self.chunk_size,
            size_cap=size_cap,
            cap_source=cap_source,
            zero_block_size=ZERO_BLOCK_SIZE if capabilities.thin else None,
            label=f"{self.label}: image {image_id}",
            md5=checksum or self.MD5_FOR_TRANSFERS,
            **self._inspection(image_id, disk_format, inspect),
        )
        with using_context(context):
            location = self._add(image_id, ingest)
        if not ingest.finished:
            raise RuntimeError(
                f"driver {type(self).__name__} returned before consuming all the data"
            )
        seconds = time.monotonic() - started
        result = AddResult(
            location=location,
            size=ingest.size,
            checksum=ingest.checksum if checksum else None,
            multihash=ingest.multihash,
            hash_algo=ingest.hash_algo,
            metadata={
                **({"store": self.backend} if self.backend else {}),
                **(ingest.verdict.as_metadata() if ingest.verdict else {}),
                **({"inspection_rejected": ingest.rejection} if ingest.rejection else {}),
            },
            zero_bytes=ingest.zero_bytes,
            seconds=seconds,
        )
        LOG.info(
            "%s: added image %s (%d bytes, %d in zero blocks) in %.3fs",
            self.label,
            image_id,
            result.size,
            result.zero_bytes,
            seconds,
        )
        return result

    def _inspection_mode(self) -> str:
        """``image_inspection`` with ``auto`` decided (the engine is not imported here)."""
        mode, available = self.conf["image_inspection"], inspection_available()
        unknown = set(self.conf["image_inspection_formats"]) - set(FORMATS)
        if unknown:
            raise ConfigError(
                f"{self.label}: image_inspection_formats names {', '.join(sorted(unknown))}, "
                f"which the inspection does not know: use some of {', '.join(FORMATS)}"
            )
        if mode in ("enforce", "detect") and not available:
            raise ConfigError(
                f"{self.label}: image_inspection = {mode} needs oslo.utils' format inspector: "
                "pip install 'glance_store_ng[inspect]'"
            )
        if mode == "auto":
            if not available:
                LOG.warning(
                    "%s: adds are not inspected (image_inspection = auto, and the inspect extra "
                    "is not installed): pip install 'glance_store_ng[inspect]'",
                    self.label,
                )
                return "off"
            return "enforce"
        return str(mode)

    def _inspection(
        self, image_id: str, disk_format: str | None, mode: str | None
    ) -> dict[str, Any]:
        """The Ingest's inspection arguments for an add (none when inspection is off)."""
        mode = mode or self.inspection_mode
        if mode not in ("enforce", "detect", "off"):
            raise InvalidArgument(f"inspect must be enforce, detect or off, not {mode!r}")
        if mode == "off":
            return {}
        allowed = tuple(self.conf["image_inspection_formats"]) or None
        label = f"{self.label}: image {image_id}"
        return {
            "inspection": Inspection(disk_format, allowed, label),
            "enforce": mode == "enforce",
        }

    def get(
        self,
        location: str | Location,
        offset: int = 0,
        length: int | None = None,
        verify: Expected | AddResult | None = None,
        context: Any = None,
    ) -> ImageReader:
        """The image at ``location``, from ``offset`` for ``length`` bytes (None: to the end).

        ``verify`` (an :class:`~glance_store_ng.verify.Expected`, or the image's
        AddResult) checks the bytes as they stream: a stored size other than the
        expected one raises SizeMismatch at once, a digest that differs raises
        ChecksumMismatch at the end of the stream (discard what was read). It
        needs the whole image: refused with ``offset``/``length``. Verify or not,
        a backend that gives fewer bytes than the reader's ``size`` raises
        SizeMismatch. ``context``: as for :meth:`add`.

        Raises NotFound, BadLocation, InvalidArgument (a negative offset or
        length, or an offset past the end), or the backend's errors.
        """
        if not isinstance(offset, int) or offset < 0:
            raise InvalidArgument(f"offset must be a non-negative integer, not {offset!r}")
        if length is not None and (not isinstance(length, int) or length < 0):
            raise InvalidArgument(f"length must be a non-negative integer or None, not {length!r}")
        expected = None if verify is None else Expected.of(verify)
        if expected is not None and (offset or length is not None):
            raise InvalidArgument(
                "verify needs the whole image (its checksums cover every byte): read it "
                "without offset and length, or without verify"
            )
        parsed = parse_location(location)
        with using_context(context):
            reader = self._get(self._parse_location(parsed), offset, length)
        reader.what = f"{self.label}: {parsed.masked}"
        return reader if expected is None else verified(reader, expected, reader.what)

    def get_size(self, location: str | Location, context: Any = None) -> int:
        """The size in bytes of the image at ``location``; NotFound if there is none.
        ``context``: as for :meth:`add`."""
        with using_context(context):
            return self._get_size(self._parse_location(parse_location(location)))

    def delete(self, location: str | Location, context: Any = None) -> None:
        """Remove the image at ``location``; NotFound if there is none, InUse if it is in use.
        ``context``: as for :meth:`add`."""
        parsed = parse_location(location)
        with using_context(context):
            self._delete(self._parse_location(parsed))
        LOG.info("%s: deleted %s", self.label, parsed.masked)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        shown = mask_options(self.all_options(), self.conf)
        return f"{type(self).__name__}(backend={self.backend!r}, options={shown!r})"


def clamp_range(size: int, offset: int, length: int | None, label: str) -> int:
    """The number of bytes a read of ``offset``/``length`` yields from an image of ``size``.

    An offset past the end raises InvalidArgument; a length past the end is cut.
    """
    if offset > size:
        raise InvalidArgument(
            f"{label}: offset {offset} is past the end of the image ({size} bytes)"
        )
    available = size - offset
    return available if length is None else min(length, available)
