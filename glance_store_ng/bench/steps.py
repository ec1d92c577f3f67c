"""One step of a benchmark, as its child process runs it (``python -m glance_store_ng.bench``).

A step is an add, a get or a delete through one implementation (ours, or
glance_store's driver for the same backend with the same options, see
:mod:`.reference`, imported only then), or a bare baseline: hashlib over the
image, or a plain read/write copy with fsync. :func:`child` runs it and returns
its figures (see :func:`.measure.timed`) as JSON-ready values.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from ..config import configured_backends, open_store
from ..errors import InvalidArgument
from ..units import MiB
from .cases import GLANCE_STORE, NO_FSYNC, NO_MD5, OUR_IMPLEMENTATIONS
from .measure import timed

__all__ = ["child"]


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one step described by ``spec``; return its figures (and a location for adds)."""
    op, impl, path = spec["operation"], spec["implementation"], spec.get("path")
    result: dict[str, Any] = {}
    if impl in (*OUR_IMPLEMENTATIONS, GLANCE_STORE):
        with _open(spec) as store:
            if op == "add":
                fast = {"hashing_algo": "xxh3_128", "checksum": False} if impl == NO_MD5 else {}
                with open(path, "rb") as source:
                    added, result = timed(
                        lambda: store.add(str(uuid.uuid4()), source, os.path.getsize(path), **fast)
                    )
                os.sync()
                result.update(location=added.location, allocated=_allocated(added.location))
            elif op == "get":

                def read_all() -> None:
                    with store.get(spec["location"]) as chunks:
                        for _ in chunks:
                            pass

                _, result = timed(read_all)
            elif op == "delete":
                store.delete(spec["location"])
    elif impl == "hashlib":
        import hashlib

        names = ["md5"] if op == "hash md5" else ["md5", "sha512"]

        def hash_sequentially() -> None:
            digests = [hashlib.new(name) for name in names]
            buffer = memoryview(bytearray(MiB))
            with open(path, "rb") as source:
                while count := source.readinto(buffer):
                    for digest in digests:
                        digest.update(buffer[:count])

        _, result = timed(hash_sequentially)
    elif impl == "read/write":
        target = os.path.join(spec["datadir"], f"copy-{uuid.uuid4()}")

        def copy() -> None:
            buffer = memoryview(bytearray(MiB))
            with open(path, "rb") as source, open(target, "wb") as out:
                while count := source.readinto(buffer):
                    out.write(buffer[:count])
                out.flush()
                os.fsync(out.fileno())

        _, result = timed(copy)
        os.unlink(target)
    else:
        raise InvalidArgument(f"unknown implementation {impl!r}")
    return result


def _open(spec: dict[str, Any]) -> Any:
    """The store ``spec`` measures: ours (a :class:`Store`) or glance_store's driver for the
    same backend with the same options (a :class:`ReferenceStore`, used alike)."""
    if spec.get("config"):
        backends, default = configured_backends(spec["config"])
        backend = backends[spec.get("backend") or default]
        driver, options = backend.driver, backend.options
        label = None if backend.legacy else backend.name
    else:
        driver, options, label = "file", {"filesystem_store_datadir": spec["datadir"]}, "bench"
    if spec["implementation"] == GLANCE_STORE:
        from .reference import open_reference

        return open_reference(driver, options)
    if spec["implementation"] == NO_FSYNC:
        options = {**options, "filesystem_store_fsync": False}
    return open_store(driver, options, backend=label)


def _allocated(location: str) -> int | None:
    if location.startswith("file://"):
        return os.stat(location[len("file://") :]).st_blocks * 512
    return None
