"""glance_store's own drivers, configured from glance_store_ng options: the reference.

``glance-store-ng bench`` and the benchmark scripts measure glance_store's driver
beside ours, and the interop tests check that each reads what the other wrote.
All of them build glance_store's driver here, from the same options our store
takes: the options carry glance_store's names and meanings, so each one
glance_store knows is handed to it as it is; the rest (ours only) are left out.

Three adaptations, all in how glance_store connects, none in how it stores:

- Swift: glance_store 5.7 reads credentials only from a reference file
  (``swift_store_config_file``), so credentials given as options are written to a
  private one; and it authenticates through Keystone v3 only, so with
  ``auth_version`` 1 (tempauth) its connections are made by swiftclient with v1
  auth. The rest of its code runs as shipped.
- RBD: glance_store creates images with the cluster's ``rbd default features``;
  it is given a copy of the ceph.conf asking for layering only, the features our
  driver creates images with (a cluster without ceph-mgr hangs on exclusive-lock).
- The filesystem store runs with ``filesystem_thin_provisioning`` on unless the
  options say otherwise: ours always leaves zero blocks as holes.

Needs ``glance-store`` (5.7) and ``oslo.config``: ``pip install 'glance_store_ng[test]'``.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from .errors import InvalidArgument
from .registry import load_driver

__all__ = ["DRIVERS", "Added", "ReferenceStore", "glance_store_available", "open_reference"]

#: Our driver name -> (glance_store's driver module, its store class, its location scheme).
DRIVERS = {
    "file": ("glance_store._drivers.filesystem", "Store", "file"),
    "s3": ("glance_store._drivers.s3", "Store", "s3"),
    "swift": ("glance_store._drivers.swift.store", "SingleTenantStore", "swift"),
    "rbd": ("glance_store._drivers.rbd", "Store", "rbd"),
}


def glance_store_available() -> bool:
    """True when glance_store (and oslo.config) can be imported here."""
    try:
        import glance_store  # noqa: F401
        import oslo_config  # noqa: F401
    except ImportError:
        return False
    return True


class Added(NamedTuple):
    """What glance_store's add returned."""

    location: str
    size: int
    checksum: str  # md5, hex
    multihash: str  # hex


class ReferenceStore:
    """One configured glance_store driver, used as our :class:`~glance_store_ng.Store` is:
    ``add`` returns the location, ``get``, ``get_size`` and ``delete`` take it."""

    def __init__(self, driver: str, store: Any, conf: Any, workdir: str) -> None:
        self.driver = driver
        self.store = store  # glance_store's driver object, for what this class does not cover
        self.conf = conf
        self._workdir = workdir

    def location(self, uri: str) -> Any:
        """glance_store's Location object for ``uri``."""
        from glance_store import location

        module, _, scheme = DRIVERS[self.driver]
        store_location = importlib.import_module(module).StoreLocation
        return location.Location(scheme, store_location, self.conf, uri=uri)

    def add(self, image_id: str, data: BinaryIO, size: int, hashing_algo: str = "sha512") -> Added:
        """glance_store's add (it hashes md5 and ``hashing_algo``); ``size`` 0 is unknown."""
        location, stored, checksum, multihash, _ = self.store.add(
            image_id, data, size, hashing_algo
        )
        return Added(location, stored, checksum, multihash)

    @contextlib.contextmanager
    def get(self, uri: str) -> Iterator[Iterator[bytes]]:
        """The whole image as glance_store's chunks, like our ``Store.get`` without a range."""
        chunks, _ = self.store.get(self.location(uri))
        try:
            yield iter(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()

    def get_size(self, uri: str) -> int:
        return int(self.store.get_size(self.location(uri)))

    def delete(self, uri: str) -> None:
        self.store.delete(self.location(uri))

    def close(self) -> None:
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> ReferenceStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_reference(driver: str, options: Mapping[str, Any]) -> ReferenceStore:
    """glance_store's driver for our ``driver`` (file, s3, swift, rbd), set up with
    ``options`` (our option names and values, as a glance-api.conf section holds them)."""
    if driver not in DRIVERS:
        raise InvalidArgument(
            f"glance_store has no driver like {driver!r} to compare with (it has: "
            f"{', '.join(DRIVERS)}); run without the comparison (bench --no-compare)"
        )
    if not glance_store_available():
        raise InvalidArgument(
            "comparing with glance_store needs it installed: "
            "pip install 'glance-store==5.7.0' (or glance_store_ng[test])"
        )
    import glance_store
    from oslo_config import cfg

    workdir = tempfile.mkdtemp(prefix="gsn-reference-")
    try:
        options = dict(options)
        adapt = {"file": _adapt_file, "swift": _adapt_swift, "rbd": _adapt_rbd}.get(driver)
        connect = adapt(options, Path(workdir)) if adapt else None
        secret = {o.name for o in load_driver(driver).all_options() if o.secret}
        conf = cfg.ConfigOpts()
        glance_store.register_opts(conf)
        conf([], project="glance-store-ng-reference")
        for name, value in options.items():
            try:
                conf.set_override(name, value, "glance_store")
            except cfg.NoSuchOptError:
                continue  # one of ours only
            except ValueError as exc:
                if name in secret:
                    raise InvalidArgument(
                        f"glance_store's {driver} driver rejects the value of {name}"
                    ) from None
                raise InvalidArgument(
                    f"glance_store's {driver} driver does not take {name} = {value!r}: {exc}"
                ) from None
        module, cls, _ = DRIVERS[driver]
        store = getattr(importlib.import_module(module), cls)(conf)
        store.configure()
        if connect:
            _connect_with(store, connect)
        return ReferenceStore(driver, store, conf, workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _adapt_file(options: dict[str, Any], workdir: Path) -> None:
    options.setdefault("filesystem_thin_provisioning", True)


def _adapt_rbd(options: dict[str, Any], workdir: Path) -> None:
    source = Path(options.get("rbd_store_ceph_conf") or "/etc/ceph/ceph.conf")
    ceph_conf = workdir / "ceph.conf"
    ceph_conf.write_text(source.read_text() + "\n[client]\nrbd default features = 1\n")
    options["rbd_store_ceph_conf"] = str(ceph_conf)


def _adapt_swift(options: dict[str, Any], workdir: Path) -> Any:
    """Give glance_store a reference file; return a v1 connection factory if v1 auth."""
    import swiftclient

    from .config import open_store

    ours = open_store("swift", options)  # resolves the credentials as our driver does
    try:
        credentials = ours.account.credentials
        cacert = ours.conf["swift_store_cacert"] or None
        insecure = bool(ours.conf["swift_store_auth_insecure"])
    finally:
        ours.close()
    if not options.get("swift_store_config_file"):
        refs = workdir / "glance-swift.conf"
        refs.touch(mode=0o600)
        refs.write_text(
            f"[ref1]\nauth_address = {credentials.auth_address}\nuser = {credentials.user}\n"
            f"key = {credentials.key}\nauth_version = {credentials.auth_version}\n"
        )
        options.update(swift_store_config_file=str(refs), default_swift_reference="ref1")
    # Its reference file holds them all; its own swift_store_auth_version accepts 3 only.
    for name in (
        "swift_store_auth_address",
        "swift_store_user",
        "swift_store_key",
        "swift_store_auth_version",
    ):
        options.pop(name, None)
    if str(credentials.auth_version) != "1":
        return None

    def connect(*args: Any, **kwargs: Any) -> Any:
        return swiftclient.Connection(
            credentials.auth_address,
            credentials.user,
            credentials.key,
            auth_version="1",
            cacert=cacert,
            insecure=insecure,
        )

    return connect


class _Connections:
    """What glance_store's Swift store asks ``get_manager`` for, over ``connect``."""

    def __init__(self, connect: Any) -> None:
        self._connect = connect

    def get_connection(self) -> Any:
        return self._connect()

    def __enter__(self) -> _Connections:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def _connect_with(store: Any, connect: Any) -> None:
    store.get_connection = connect
    store.get_manager = lambda *args, **kwargs: _Connections(connect)
