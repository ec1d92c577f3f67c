"""The RBD store: images as Ceph RBD images, as glance_store keeps them.

Options carry glance_store's names and meanings (``rbd_store_pool``,
``rbd_store_user``, ``rbd_store_ceph_conf``, ``rbd_store_chunk_size``,
``rados_connect_timeout``, ``rbd_thin_provisioning``), plus our
``rbd_store_namespace`` and ``rbd_store_direct_writes`` (writers.py);
``glance-store-ng drivers`` lists them with their help.

An add creates a format-2 image with layering (order from the chunk size),
writes each chunk's data extents (zero blocks skipped), grows the image
geometrically when the size is unknown and trims it to the exact size at the
end, then creates the snapshot ``snap`` and protects it, so Nova and Cinder
clone from it. Any failure removes the snapshot and the image; the image of
an add whose process died is found by ``find_orphans`` (``glance-store-ng
gc``, orphans.py). The location is
``rbd://FSID/POOL/IMAGE/snap`` (``rbd://FSID/POOL/NAMESPACE/IMAGE/snap`` in a
namespace); glance_store's legacy ``rbd://IMAGE`` is read too. One cluster
connection serves every operation of the store.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import secrets
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from glance_store_ng.errors import BadLocation, ConfigError, InUse, NotFound, Retry
from glance_store_ng.locations import Location
from glance_store_ng.pipeline import Ingest
from glance_store_ng.reader import ImageReader
from glance_store_ng.retry import RetryPolicy
from glance_store_ng.sparse import written_extents
from glance_store_ng.store import Capabilities, Orphan, Store, clamp_range
from glance_store_ng.units import MiB

from .cluster import Cluster, ceph_errors, rbd
from .options import OPTIONS
from .orphans import (
    AddMark,
    creating,
    creating_key,
    creations,
    done_creating,
    image_of_key,
    is_being_created,
    mark_time,
    marked_images,
    unmarked_creations,
)
from .reader import read_chunks
from .writers import ImageWriter, ObjectWriter, direct_writes_possible

__all__ = ["RbdStore", "RbdLocation", "SNAPSHOT"]

LOG = logging.getLogger("glance_store_ng.rbd")
SNAPSHOT = "snap"
#: Between an image's spec and its key in the name of an orphan whose add died before
#: marking the image (orphans.py).
_CREATING = "?creating="
#: Ceph's requests that may pass when sent again (timeouts, a lost OSD connection);
#: librados already resends operations on its own until rados_osd_op_timeout.
RETRY_POLICY = RetryPolicy(attempts=3, base=0.5, cap=5.0)
# With an unknown size the image grows by doubling, at least to this, at most by this much.
_MIN_GROWTH = 64 * MiB
_MAX_GROWTH = 8 << 30


@dataclass(frozen=True)
class RbdLocation:
    """An image in a pool (and namespace), read through ``snapshot`` when there is one."""

    fsid: str | None
    pool: str
    namespace: str
    image: str
    snapshot: str | None

    def uri(self) -> str:
        quote = lambda part: urllib.parse.quote(part, "")  # noqa: E731
        if self.fsid is None or self.snapshot is None:
            return f"rbd://{quote(self.image)}"
        parts = [self.fsid, self.pool, self.namespace, self.image, self.snapshot]
        return "rbd://" + "/".join(quote(p) for p in parts if p != "")

    @property
    def spec(self) -> str:
        """``pool/[namespace/]image[@snapshot]``, as the rbd command line names it."""
        name = "/".join(p for p in (self.pool, self.namespace, self.image) if p)
        return f"{name}@{self.snapshot}" if self.snapshot else name


class RbdStore(Store):
    """Images as RBD images in one Ceph pool."""

    schemes = ("rbd",)
    policy = RETRY_POLICY
    OPTIONS = OPTIONS

    def configure(self) -> None:
        chunk = self.conf["rbd_store_chunk_size"]
        if chunk & (chunk - 1):
            raise ConfigError(
                f"{self.label}: option rbd_store_chunk_size = {chunk} must be a power of two "
                "(it sets the RBD object size)"
            )
        self.pool: str = self.conf["rbd_store_pool"]
        self.namespace: str = self.conf["rbd_store_namespace"]
        self.order = chunk.bit_length() - 1 + 20
        self.cluster = Cluster(
            self.label,
            self.conf["rbd_store_ceph_conf"],
            self.conf["rbd_store_user"],
            self.conf["rados_connect_timeout"],
        )

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            thin=self.conf["rbd_thin_provisioning"], min_hole=self.conf["rbd_thin_min_hole"]
        )

    @property
    def chunk_size(self) -> int:
        return 1 << self.order

    def close(self) -> None:
        self.cluster.close()

    # -- locations -----------------------------------------------------------------------

    def _parse_location(self, location: Location) -> RbdLocation:
        if location.scheme != "rbd":
            raise BadLocation(f"{self.label}: {location.masked} is not an rbd:// location")
        raw = location.uri[len("rbd://") :]
        pieces = raw.split("/")
        if any(p == "" for p in pieces) or len(pieces) not in (1, 4, 5):
            raise BadLocation(
                f"{self.label}: {location.masked} is not rbd://FSID/POOL/IMAGE/SNAPSHOT "
                "(nor rbd://FSID/POOL/NAMESPACE/IMAGE/SNAPSHOT, nor rbd://IMAGE)"
            )
        parts = [urllib.parse.unquote(p) for p in pieces]
        if any(not p or "/" in p or "@" in p for p in parts):
            raise BadLocation(f"{self.label}: {location.masked} has an invalid component")
        if len(parts) == 1:
            return RbdLocation(None, self.pool, self.namespace, parts[0], None)
        fsid, pool, *namespace, image, snapshot = parts
        parsed = RbdLocation(fsid, pool, namespace[0] if namespace else "", image, snapshot)
        if (pool, parsed.namespace) != (self.pool, self.namespace):
            where = "/".join(p for p in (self.pool, self.namespace) if p)
            raise BadLocation(
                f"{self.label}: {location.masked} is not in this store's pool {where}"
            )
        if fsid != self.cluster.fsid:
            raise BadLocation(
                f"{self.label}: {location.masked} belongs to Ceph cluster {fsid}, not to "
                f"this store's cluster {self.cluster.fsid}"
            )
        return parsed

    # -- add -----------------------------------------------------------------------------

    def _add(self, image_id: str, ingest: Ingest) -> str:
        location = RbdLocation(self.cluster.fsid, self.pool, self.namespace, image_id, SNAPSHOT)
        size = ingest.declared_size or 0
        key = creating_key(image_id, secrets.token_hex(8))
        with self.cluster.ioctx(self.pool, self.namespace) as ioctx:
            with ceph_errors(self.label, f"cannot create image {location.spec}"):
                creating(ioctx, key)  # until the image carries its mark (orphans.py)
                try:
                    rbd.RBD().create(
                        ioctx,
                        image_id,
                        size,
                        order=self.order,
                        old_format=False,
                        features=rbd.RBD_FEATURE_LAYERING,
                    )
                except BaseException:
                    done_creating(ioctx, key)
                    raise
            try:
                self._write(ioctx, image_id, ingest, location, key)
            except BaseException:
                self._remove_quietly(ioctx, image_id, key)
                raise
        return location.uri()

    def _write(
        self, ioctx: Any, image_id: str, ingest: Ingest, location: RbdLocation, key: str
    ) -> None:
        thin = self.conf["rbd_thin_provisioning"]
        min_hole = self.conf["rbd_thin_min_hole"]
        writing = f"writing image {location.spec}"
        with ceph_errors(self.label, writing):
            image = rbd.Image(ioctx, image_id)
        try:
            with ceph_errors(self.label, writing):
                size = image.size()
                writer: ObjectWriter | ImageWriter
                if self.conf["rbd_store_direct_writes"] and direct_writes_possible(
                    ioctx, image, self.chunk_size
                ):
                    writer = ObjectWriter(ioctx, image, self.chunk_size)
                else:
                    writer = ImageWriter(image)
                mark = AddMark(image)
                done_creating(ioctx, key)  # the mark tells gc of this add from here on
            try:
                for chunk in ingest:  # errors of the caller's source propagate unchanged
                    with ceph_errors(self.label, writing):
                        mark.beat()
                        if chunk.end > size:
                            writer.drain()
                            growth = min(max(size, _MIN_GROWTH), _MAX_GROWTH)
                            size = max(chunk.end, size + growth)
                            image.resize(size)
                        if thin:
                            extents, zeros = written_extents(chunk.data_extents(), min_hole)
                            ingest.wrote_zeros(zeros)
                        else:
                            extents = [(0, len(chunk.data))]
                        if extents:
                            writer.write(chunk.offset, chunk.data, extents)
                with ceph_errors(self.label, writing):
                    writer.drain()
                    if size != ingest.size:
                        image.resize(ingest.size)
                    image.create_snap(SNAPSHOT)
                    image.protect_snap(SNAPSHOT)
                    mark.remove()  # the commit: from here on, a complete image
            except BaseException:
                with contextlib.suppress(Exception):
                    writer.drain()  # nothing may land after the image is removed
                raise
        finally:
            image.close()

    def _remove_quietly(self, ioctx: Any, image_id: str, key: str) -> None:
        """Remove what a failed add created (its snapshot, then the image, then its key of
        image being created); log, never raise."""
        try:
            with rbd.Image(ioctx, image_id) as image:
                for snap in list(image.list_snaps()):
                    if image.is_protected_snap(snap["name"]):
                        image.unprotect_snap(snap["name"])
                    image.remove_snap(snap["name"])
            rbd.RBD().remove(ioctx, image_id)
            done_creating(ioctx, key)
        except Exception as exc:  # the add's own error is the one to report
            LOG.error(
                "%s: could not remove image %s after a failed add: %s", self.label, image_id, exc
            )

    # -- orphans -------------------------------------------------------------------------

    def find_orphans(self, older_than: float = 3600.0) -> list[Orphan]:
        """Images of adds whose process died (orphans.py), named by their spec
        (``pool/[namespace/]image``), sized by their allocated bytes; one whose add died
        before marking it is named ``<spec>?creating=<key>``."""
        where = "/".join(p for p in (self.pool, self.namespace) if p)
        with (
            self.cluster.ioctx(self.pool, self.namespace) as ioctx,
            ceph_errors(self.label, f"listing the images of {where}"),
        ):
            found = [
                Orphan(self._spec(name), allocated, age)
                for name, age, allocated in marked_images(ioctx, older_than)
            ]
            found += [
                Orphan(f"{self._spec(image_of_key(key))}{_CREATING}{key}", allocated, age)
                for key, age, allocated in unmarked_creations(ioctx, older_than)
            ]
            return found

    def remove_orphan(self, orphan: Orphan) -> None:
        """Remove an image :meth:`find_orphans` listed (one already gone is fine); InUse if
        its add has completed since (no mark) or it has clones, BadLocation if it is not in
        this store's pool."""
        spec, _, key = orphan.name.partition(_CREATING)
        name = spec.rpartition("/")[2]
        if (
            not name
            or "@" in name
            or self._spec(name) != spec
            or (key and image_of_key(key) != name)
        ):
            raise BadLocation(f"{self.label}: {orphan.name} is not an image of this store's pool")
        with (
            self.cluster.ioctx(self.pool, self.namespace) as ioctx,
            ceph_errors(self.label, f"removing the unfinished image {orphan.name}"),
        ):
            if key and key not in creations(ioctx):
                return  # removed already
            try:
                with rbd.Image(ioctx, name, read_only=True) as image:  # read-only: no watch
                    marked = mark_time(image) is not None
                    if key and not marked and list(image.list_snaps()):
                        done_creating(ioctx, key)  # another add of the id completed it
                        return
                    if marked == bool(key):
                        raise InUse(
                            f"{self.label}: {orphan.name} is "
                            + ("an image an add is writing" if key else "a complete image")
                            + ", not one an interrupted add left; left intact"
                        )
                    watchers = [w["addr"] for w in image.watchers_list()]
                    if watchers:
                        raise InUse(
                            f"{self.label}: {orphan.name} is still open in {', '.join(watchers)}; "
                            "if that add's process died, Ceph drops it within "
                            "osd_client_watch_timeout (30 s by default): try again then",
                            retry=Retry.TEMPORARY,
                        )
                with rbd.Image(ioctx, name) as image:
                    self._remove_snapshot(image, SNAPSHOT, orphan.name)
                rbd.RBD().remove(ioctx, name)
            except rbd.ImageNotFound:
                if key:  # or half made: its add died inside create; remove what there is
                    with contextlib.suppress(rbd.ImageNotFound):
                        rbd.RBD().remove(ioctx, name)
            if key:
                done_creating(ioctx, key)

    @property
    def location_prefix(self) -> str:
        """``rbd://FSID/POOL/[NAMESPACE/]``: connects to the cluster for its fsid."""
        parts = (self.cluster.fsid, self.pool, self.namespace)
        return "rbd://" + "".join(urllib.parse.quote(part, "") + "/" for part in parts if part)

    def _spec(self, image: str) -> str:
        return RbdLocation(None, self.pool, self.namespace, image, None).spec

    # -- get, get_size, delete -----------------------------------------------------------

    @contextlib.contextmanager
    def _opened(self, location: RbdLocation, what: str) -> Iterator[Any]:
        """The image at ``location``, opened read-only (through its snapshot)."""
        doing = f"{what} {location.spec}"
        with self.cluster.ioctx(location.pool, location.namespace) as ioctx:

            def open_image() -> Any:
                with ceph_errors(self.label, doing):
                    return rbd.Image(
                        ioctx, location.image, snapshot=location.snapshot, read_only=True
                    )

            image = self.policy.call(open_image, f"{self.label}: {doing}")
            try:
                with ceph_errors(self.label, doing):
                    adding = mark_time(image) is not None or (
                        location.snapshot is None
                        and is_being_created(ioctx, location.image)
                        and not list(image.list_snaps())
                    )
                if adding:  # in every location form: the short one names no snapshot
                    raise NotFound(
                        f"{self.label}: {location.spec} is an image whose add has not "
                        "completed (still running, or interrupted: gc removes it)"
                    )
                yield image
            finally:
                image.close()

    def _get(self, location: RbdLocation, offset: int, length: int | None) -> ImageReader:
        stack = contextlib.ExitStack()
        try:
            image = stack.enter_context(self._opened(location, "reading"))
            with ceph_errors(self.label, f"reading the size of {location.spec}"):
                size = image.size()
            count = clamp_range(size, offset, length, f"{self.label}: {location.uri()}")
            chunks = self._read(image, offset, offset + count, location)
        except BaseException:
            stack.close()
            raise
        return ImageReader(chunks, count, close=stack.close)

    def _read(self, image: Any, start: int, end: int, location: RbdLocation) -> Iterator[bytes]:
        doing = f"reading {location.spec}"

        def read_again(offset: int, count: int) -> bytes:
            """A read that failed, sent again (synchronously) under the retry policy."""

            def once() -> bytes:
                with ceph_errors(self.label, f"{doing} at byte {offset}"):
                    data = image.read(offset, count)
                    if len(data) != count:
                        raise OSError(errno.EIO, f"short read: {len(data)} of {count} bytes")
                    return data

            return self.policy.call(once, f"{self.label}: {doing} at byte {offset}")

        with ceph_errors(self.label, doing):
            yield from read_chunks(
                image,
                start,
                end,
                self.chunk_size,
                depth=self.conf["rbd_store_reads_in_flight"],
                read_again=read_again,
            )

    def _get_size(self, location: RbdLocation) -> int:
        with (
            self._opened(location, "reading the size of") as image,
            ceph_errors(self.label, f"reading the size of {location.spec}"),
        ):
            return image.size()

    def _delete(self, location: RbdLocation) -> None:
        spec = location.spec
        with (
            self.cluster.ioctx(location.pool, location.namespace) as ioctx,
            ceph_errors(self.label, f"deleting image {spec}"),
        ):
            with rbd.Image(ioctx, location.image) as image:
                self._remove_snapshot(image, location.snapshot or SNAPSHOT, spec)
            rbd.RBD().remove(ioctx, location.image)

    def _remove_snapshot(self, image: Any, ours: str, spec: str) -> None:
        """Unprotect and remove snapshot ``ours`` if there is one; InUse (nothing changed) if
        the image has clones or other snapshots."""
        names = [snap["name"] for snap in image.list_snaps()]
        others = [name for name in names if name != ours]
        if others:
            raise InUse(
                f"{self.label}: image {spec} has other snapshots ({', '.join(others)}); left intact"
            )
        if ours not in names:
            return  # half-deleted already: the image goes
        image.set_snap(ours)
        children = list(image.list_children2())
        image.set_snap(None)
        if children:
            users = ", ".join(
                "/".join(p for p in (child["pool"], child["pool_namespace"], child["image"]) if p)
                for child in children
            )
            raise InUse(
                f"{self.label}: image {spec} has clones ({users}): a VM or volume still uses "
                "it; left intact"
            )
        if image.is_protected_snap(ours):
            image.unprotect_snap(ours)
        image.remove_snap(ours)
