"""Format inspection: what an image is and whether it is safe, decided as its bytes stream.

The engine is oslo.utils' format inspector (``oslo_utils.imageutils.format_inspector``),
the one Glance and Nova use, whose checks came from CVE-2022-47951 (VMDK extents
pointing at host files) and CVE-2024-32498 (QCOW2 external data files): no image
parser of our own. It is optional (``pip install 'glance_store_ng[inspect]'``) and
imported only when an inspection is asked for.

An :class:`Inspection` is fed the chunks the pipeline already holds. It gives the
engine's inspectors the image's first megabyte as one piece (one bounded copy:
what some of them parse depends on where the stream is cut), then views of at most
that size (the engine copies what its regions capture: headers, and a VMDK
streamOptimized image's footer). It refuses as soon as one format is surely there
and unacceptable or unsafe, and accepts once every format's inspector has seen
enough, usually within the first megabyte; from then on feeding costs nothing. A
VMDK streamOptimized image has its footer at the end, so its verdict waits for
:meth:`Inspection.finish`.

The verdict follows Glance's rules (glance/location.py, 2024.2): ISO with a GPT in
front is an ISO, any other pair of formats at once is refused (one format hidden in
another); a ``raw`` disk may hold a partition table (``gpt``: its MBR check still
runs); a ``disk_format`` the engine cannot inspect (``ami``, ``aki``, ``ari``)
accepts data no format matched. Unlike Glance, data that is another format than the
declared ``disk_format`` is refused, ``raw`` included. Then the detected format's
safety checks run (backing file, data file, unknown features, VMDK extents and
descriptor, the MBR's partition entries). Any failure is
:class:`~glance_store_ng.errors.ImageRejected` naming the detected format and the
reason; an exception of the engine itself becomes one too, so hostile bytes never
raise anything else.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, ImageRejected, InvalidArgument

__all__ = ["FORMATS", "Inspection", "Verdict", "acceptable_formats", "inspection_available"]

LOG = logging.getLogger("glance_store_ng.inspection")

#: The formats the engine recognises (its names, as qemu-img says them).
FORMATS = ("raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi", "qed", "iso", "gpt", "luks")
#: The disk formats Glance knows (its ``disk_formats`` default), which ``disk_format`` takes.
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso",
                "ploop", "luks")  # fmt: skip
#: The first bytes, given to the inspectors in one piece; the rest goes in views this long.
HEAD = 1 << 20
#: Formats whose virtual size is the image's size less a header (none for a plain disk):
#: known once the whole image is.
_SIZED_BY_LENGTH = ("raw", "gpt", "luks")


@functools.cache
def inspection_available() -> bool:
    """Whether the engine is installed (``auto`` inspection is ``enforce`` then); it is not
    imported to tell. It needs ``cryptography`` too (for LUKS), which oslo.utils does
    not require."""
    spec = importlib.util.find_spec("oslo_utils")
    folders = (spec.submodule_search_locations or []) if spec else []
    return importlib.util.find_spec("cryptography") is not None and any(
        os.path.exists(os.path.join(folder, "imageutils", "format_inspector.py"))
        for folder in folders
    )


def _engine() -> Any:
    try:
        from oslo_utils.imageutils import format_inspector
    except ImportError as exc:
        raise ConfigError(
            f"format inspection needs oslo.utils' format inspector (missing: {exc.name}): "
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


class Inspection:
    """One image's inspection: :meth:`feed` it every chunk in order, then :meth:`finish`.

    ``disk_format``: what the image is declared to be (None: anything the engine
    recognises, or raw). ``allowed``: the formats accepted at all (None: every one;
    ``raw`` includes a partitioned disk). ``label`` starts every message. Both methods
    raise ImageRejected once the evidence is in: an add then fails before reading the
    rest.

    The engine's inspectors see the image's first :data:`HEAD` bytes as one piece (one
    bounded copy: what some of them parse depends on how the stream is cut), then the
    rest in views of at most that size.
    """

    def __init__(
        self,
        disk_format: str | None = None,
        allowed: tuple[str, ...] | None = None,
        label: str = "image",
    ) -> None:
        engine = self._engine = _engine()
        if disk_format is not None and disk_format not in DISK_FORMATS:
            raise InvalidArgument(
                f"{label}: disk_format {disk_format!r} is not one Glance knows: "
                f"{', '.join(DISK_FORMATS)}"
            )
        self.disk_format = disk_format
        self.allowed = allowed
        self.label = label
        self.consumed = 0
        """Bytes fed so far (counted after the verdict too)."""
        self.verdict: Verdict | None = None
        """Set as soon as it is decided (then feeding does nothing)."""
        self._header = 0  # what the virtual size of a _SIZED_BY_LENGTH format lacks
        self._head: bytearray | None = bytearray()  # the first HEAD bytes, until fed
        self._inspectors = [cls() for cls in engine.ALL_FORMATS.values()]
        self._failed: set[Any] = set()  # inspectors that raised: they do not match
        self._judged: set[Any] = set()  # matches found acceptable and safe already

    @property
    def decided(self) -> bool:
        return self.verdict is not None

    def feed(self, chunk: Any) -> None:
        """Show the inspectors the next bytes (a bytes-like object; not kept)."""
        self.consumed += len(chunk)
        if self.verdict is not None:
            return
        with self._rejections():
            if self._head is not None:
                self._head += chunk
                if len(self._head) < HEAD:
                    return
                view = memoryview(bytes(self._head))
                self._head = None
            else:
                view = memoryview(chunk).cast("B")
            for start in range(0, len(view), HEAD):
                self._eat(view[start : start + HEAD])
                self._refuse_early()
                if self._all_complete():
                    self.verdict = self._judge()
                    return

    def finish(self, size: int | None = None) -> Verdict:
        """The verdict, once the whole image was fed (``size``: its length, which gives the
        virtual size of a raw, gpt or luks image; default: the bytes fed)."""
        if self.verdict is None:
            with self._rejections():
                if self._head:
                    self._eat(memoryview(bytes(self._head)))
                self._head = None
                for inspector in self._inspectors:
                    inspector.finish()
                self.verdict = self._judge()
        if self.verdict.virtual_size is None:
            size = self.consumed if size is None else size
            virtual = max(size - self._header, 0)
            self.verdict = Verdict(self.verdict.format, virtual, self.verdict.checks)
        return self.verdict

    def _eat(self, piece: memoryview) -> None:
        for inspector in self._inspectors:
            if inspector in self._failed:
                continue
            try:
                inspector.eat_chunk(piece)
            except Exception as exc:  # the engine's rule: an inspector that fails parsing
                LOG.debug("%s: not %s (%r)", self.label, inspector.NAME, exc)
                self._failed.add(inspector)

    def _candidates(self) -> list[Any]:
        return [i for i in self._inspectors if i.NAME != "raw" and i not in self._failed]

    def _all_complete(self) -> bool:
        return all(inspector.complete for inspector in self._candidates())

    def _matches(self) -> list[Any]:
        return [i for i in self._candidates() if i.complete and i.format_match]

    def _refuse_early(self) -> None:
        """Refuse as soon as one format is surely there and unacceptable or unsafe: what
        other formats might still match could only add a "two formats at once"."""
        for inspector in self._matches():
            if inspector in self._judged:
                continue
            if str(inspector) == "gpt" and not self._iso_decided():
                continue  # a bootable ISO has a GPT in front: wait for the ISO's answer
            self._check(inspector)
            self._judged.add(inspector)

    def _iso_decided(self) -> bool:
        return all(i.complete for i in self._candidates() if i.NAME == "iso")

    def _judge(self) -> Verdict:
        matches = {str(found): found for found in self._matches()}
        if not matches:
            inspector = next(i for i in self._inspectors if i.NAME == "raw")
        elif matches.keys() == {"iso", "gpt"}:  # a bootable ISO has a GPT in front
            inspector = matches["iso"]
        elif len(matches) > 1:
            found = ", ".join(sorted(matches))
            raise ImageRejected(
                f"{self.label}: the data is several formats at once ({found}): one may hide another"
            )
        else:
            (inspector,) = matches.values()
        checks = self._check(inspector)
        name = str(inspector)
        if name in _SIZED_BY_LENGTH:  # the engine's figure counts only the bytes it saw
            self._header = int(inspector.actual_size) - int(inspector.virtual_size)
            return Verdict(name, None, checks)
        return Verdict(name, int(inspector.virtual_size), checks)

    def _check(self, inspector: Any) -> tuple[str, ...]:
        """``inspector``'s format is acceptable and its safety checks pass; the checks run."""
        name = str(inspector)
        if self.disk_format and name not in acceptable_formats(self.disk_format):
            raise ImageRejected(
                f"{self.label}: the data is {name}, not {self.disk_format} (its disk_format): "
                "declare the format it has, or convert it"
            )
        accepted = {found for each in self.allowed or () for found in acceptable_formats(each)}
        if self.allowed is not None and name not in accepted:
            raise ImageRejected(
                f"{self.label}: {name} images are not accepted here (allowed: "
                f"{', '.join(self.allowed)})"
            )
        try:
            inspector.safety_check()
        except self._engine.SafetyCheckFailed as exc:
            reasons = "; ".join(f"{check}: {why}" for check, why in sorted(exc.failures.items()))
            raise ImageRejected(
                f"{self.label}: the {name} image failed its safety checks: {reasons}"
            ) from None
        # the engine names its checks only in this mapping; "null" is a format's "none"
        return tuple(sorted(set(getattr(inspector, "_safety_checks", {})) - {"null"}))

    def _found(self) -> str:
        """The formats detected so far, for a message."""
        try:
            return ",".join(sorted(str(found) for found in self._matches())) or "unknown"
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
        except engine.ImageFormatError as exc:
            raise ImageRejected(f"{self.label} ({self._found()}): {exc}") from None
        except Exception as exc:  # the engine's own failure on these bytes
            LOG.debug("%s: the format inspector failed: %r", self.label, exc)
            raise ImageRejected(
                f"{self.label}: the image ({self._found()}) could not be inspected "
                f"({type(exc).__name__}): its headers are malformed"
            ) from None
