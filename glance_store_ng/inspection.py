"""Format inspection: what an image is and whether it is safe, decided as its bytes stream.

The engine is oslo.utils' format inspector (``oslo_utils.imageutils.format_inspector``),
the one Glance and Nova use, whose checks came from CVE-2022-47951 (VMDK extents
pointing at host files) and CVE-2024-32498 (QCOW2 external data files): no image
parser of our own. It is optional (``pip install 'glance_store_ng[inspect]'``) and
imported only when an inspection is asked for.

An :class:`Inspection` is fed the chunks the pipeline already holds (memoryviews,
not copied: each format's inspector keeps only the header bytes it parses) and
decides as soon as every format's inspector has seen enough, usually within the
first megabyte; from then on feeding costs nothing. A VMDK streamOptimized image
has its footer at the end, so its verdict waits for :meth:`Inspection.finish`.

The verdict follows Glance's rules (glance/location.py, 2024.2): ISO with a GPT in
front is an ISO, any other pair of formats at once is refused (one format hidden in
another); a ``raw`` disk may hold a partition table (``gpt``: the MBR and GPT checks
still run); a ``disk_format`` the engine cannot inspect (``ami``, ``aki``, ``ari``)
accepts data no format matched. Unlike Glance, data that is another format than the
declared ``disk_format`` is refused, ``raw`` included. Then the detected format's
safety checks run (backing file, data file, unknown features, VMDK extents and
descriptor, MBR/GPT sanity). Any failure is :class:`~glance_store_ng.errors.ImageRejected`
naming the detected format and the reason; an exception of the engine itself becomes
one too, so hostile bytes never raise anything else.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, ImageRejected

__all__ = ["FORMATS", "Inspection", "Verdict", "acceptable_formats", "inspection_available"]

LOG = logging.getLogger("glance_store_ng.inspection")

#: The formats the engine recognises (its names, as qemu-img says them).
FORMATS = ("raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi", "qed", "iso", "gpt", "luks")
#: Formats whose virtual size is the image's size less a header (none for a plain disk):
#: known once the whole image is.
_SIZED_BY_LENGTH = ("raw", "gpt", "luks")


@functools.cache
def inspection_available() -> bool:
    """Whether the engine is installed (an add's ``auto`` inspection is ``enforce`` then)."""
    return importlib.util.find_spec("oslo_utils") is not None and _has_engine()


def _has_engine() -> bool:
    try:
        _engine()
    except ConfigError:
        return False
    return True


def _engine() -> Any:
    try:
        from oslo_utils.imageutils import format_inspector
    except ImportError:
        raise ConfigError(
            "format inspection needs oslo.utils' format inspector: "
            "pip install 'glance_store_ng[inspect]'"
        ) from None
    return format_inspector


def acceptable_formats(disk_format: str) -> frozenset[str]:
    """The detected formats an image declared ``disk_format`` may be."""
    if disk_format == "raw":
        return frozenset({"raw", "gpt"})
    if disk_format not in FORMATS:  # ami, aki, ari, ploop...: not inspectable
        return frozenset({disk_format, "raw"})
    return frozenset({disk_format})


@dataclass(frozen=True)
class Verdict:
    """What the inspection found: the format, the virtual size, the checks that passed."""

    format: str
    """The detected format (``raw`` when no other matched)."""
    virtual_size: int | None
    """The disk's size as a guest sees it; None (raw, gpt, luks) until the image's size is
    known: :meth:`Inspection.finish` sets it."""
    checks: tuple[str, ...] = field(default=())
    """The safety checks run, all passed."""

    def as_metadata(self) -> dict[str, Any]:
        """The verdict as ``AddResult.metadata`` holds it."""
        return {
            "disk_format_detected": self.format,
            "virtual_size": self.virtual_size,
            "inspection_checks": list(self.checks),
        }


class _Pushed:
    """The engine's wrapper reads from a source; this one gives it the chunk it was handed."""

    def __init__(self) -> None:
        self.chunk: Any = b""

    def read(self, size: int) -> Any:
        chunk, self.chunk = self.chunk, b""
        return chunk


class Inspection:
    """One image's inspection: :meth:`feed` it every chunk in order, then :meth:`finish`.

    ``disk_format``: what the image is declared to be (None: anything the engine
    recognises, or raw). ``allowed``: the formats accepted at all (None: every one).
    ``label`` starts every message. Both methods raise ImageRejected once the
    evidence is in: an add then fails before reading the rest.
    """

    def __init__(
        self,
        disk_format: str | None = None,
        allowed: tuple[str, ...] | None = None,
        label: str = "image",
    ) -> None:
        self._engine = _engine()
        self.disk_format = disk_format
        self.allowed = allowed
        self.label = label
        self.consumed = 0
        """Bytes fed so far."""
        self.verdict: Verdict | None = None
        """Set as soon as it is decided (then feeding does nothing)."""
        self._header = 0  # what the virtual size of a _SIZED_BY_LENGTH format lacks
        self._source = _Pushed()
        self._wrapper = self._engine.InspectWrapper(self._source)

    @property
    def decided(self) -> bool:
        return self.verdict is not None

    def feed(self, chunk: Any) -> None:
        """Show the inspectors the next bytes (a bytes-like object; not kept)."""
        if self.verdict is not None:
            return
        self.consumed += len(chunk)
        with self._rejections():
            self._source.chunk = chunk
            self._wrapper.read(len(chunk))
            if self._wrapper.formats is not None:  # every format's inspector has decided
                self.verdict = self._judge()

    def finish(self, size: int | None = None) -> Verdict:
        """The verdict, once the whole image was fed (``size``: its length, which gives the
        virtual size of a raw, gpt or luks image; default: the bytes fed)."""
        if self.verdict is None:
            with self._rejections():
                self._wrapper.close()
                self.verdict = self._judge()
        if self.verdict.virtual_size is None:
            size = self.consumed if size is None else size
            virtual = max(size - self._header, 0)
            self.verdict = Verdict(self.verdict.format, virtual, self.verdict.checks)
        return self.verdict

    def _judge(self) -> Verdict:
        matches = {str(found): found for found in self._wrapper.formats or ()}
        # A bootable ISO has a GPT in front; any other pair: ImageFormatError (from .format).
        bootable_iso = matches.keys() == {"iso", "gpt"}
        inspector = matches["iso"] if bootable_iso else self._wrapper.format
        name = str(inspector)
        if self.disk_format and name not in acceptable_formats(self.disk_format):
            raise ImageRejected(
                f"{self.label}: the data is {name}, not {self.disk_format} (its disk_format): "
                "declare the format it has, or convert it"
            )
        if self.allowed is not None and name not in self.allowed:
            raise ImageRejected(
                f"{self.label}: {name} images are not accepted here (allowed: "
                f"{', '.join(self.allowed)})"
            )
        inspector.safety_check()
        # the engine names its checks only in this mapping; "null" is a format's "none"
        checks = tuple(sorted(set(getattr(inspector, "_safety_checks", {})) - {"null"}))
        if name in _SIZED_BY_LENGTH:  # the engine's figure counts only the bytes it saw
            self._header = int(inspector.actual_size) - int(inspector.virtual_size)
            return Verdict(name, None, checks)
        return Verdict(name, int(inspector.virtual_size), checks)

    def _found(self) -> str:
        """The formats detected so far, for a message."""
        try:
            return ",".join(sorted(str(found) for found in self._wrapper.formats or ()))
        except Exception:  # noqa: BLE001 - only for a message
            return "?"

    @contextlib.contextmanager
    def _rejections(self) -> Iterator[None]:
        """The engine's errors as ImageRejected, naming what was found; any other exception
        of the engine too (hostile bytes must never raise something else)."""
        engine = self._engine
        try:
            yield
        except ImageRejected:
            raise
        except engine.SafetyCheckFailed as exc:
            reasons = "; ".join(f"{name}: {why}" for name, why in sorted(exc.failures.items()))
            raise ImageRejected(
                f"{self.label}: the {self._found()} image failed its safety checks: {reasons}"
            ) from None
        except engine.ImageFormatError as exc:
            raise ImageRejected(f"{self.label}: {exc}") from None
        except Exception as exc:
            LOG.debug("%s: the format inspector failed: %r", self.label, exc)
            raise ImageRejected(
                f"{self.label}: the image could not be inspected ({type(exc).__name__}): its "
                "headers are malformed"
            ) from None
