"""glance_store's own drivers, configured from glance_store_ng options: the reference.

``glance-store-ng bench`` and the benchmark scripts measure glance_store's driver
beside ours, and the interop tests check that each reads what the other wrote.
All of them build glance_store's driver here, from the same options our store
takes: the options carry glance_store's names and meanings, so each one
glance_store knows is handed to it as it is; the rest (ours only) are left out.

The adaptations, none of them in how glance_store stores data:

- Swift: credentials given inline go to glance_store in a private reference file
  (``swift_store_config_file``, mode 0600, removed on close): given inline,
  glance_store would write them into its locations (``swift+http://user:key@...``),
  which the benchmark passes between processes. glance_store 5.7 authenticates
  through Keystone v3 only, so with ``auth_version`` 1 (tempauth) its connections
  are made by swiftclient with v1 auth; the rest of its code runs as shipped.
- RBD: glance_store creates images with the cluster's ``rbd default features``;
  it is given a copy of the ceph.conf asking for layering only, the features our
  driver creates images with (a cluster without ceph-mgr hangs on exclusive-lock).
- Thin provisioning (``filesystem_thin_provisioning``, ``rbd_thin_provisioning``)
  is on unless the options say otherwise, as it is by default in ours; off is
  glance_store's default.

Needs ``glance-store`` (5.7) and ``oslo.config``: ``pip install '.[test]'`` from the clone.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from ..errors import ConfigError, InvalidArgument
from ..registry import load_driver

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
    ``add`` returns what was stored (with its ``location``); ``get``, ``get_size`` and
    ``delete`` take that location URI."""

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
            "pip install 'glance-store==5.7.0' (or, from the clone, pip install '.[test]')"
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
        conf(
            [],
            project="glance-store-ng-reference",
            default_config_files=[],  # the options given, not whatever /etc/glance holds
            default_config_dirs=[],
        )
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
    datadirs = options.get("filesystem_store_datadirs")
    if isinstance(datadirs, str):  # one line of a config file: oslo.config wants a list
        options["filesystem_store_datadirs"] = datadirs = [datadirs]
    if datadirs:  # glance_store refuses both, and its datadir has a default
        options.setdefault("filesystem_store_datadir", None)


def _adapt_rbd(options: dict[str, Any], workdir: Path) -> None:
    options.setdefault("rbd_thin_provisioning", True)
    source = _ceph_conf(options.get("rbd_store_ceph_conf") or "")
    ceph_conf = workdir / "ceph.conf"
    try:
        text = source.read_text()
    except OSError as exc:
        raise ConfigError(
            f"rbd_store_ceph_conf: cannot read {source}: {exc.strerror or exc}"
        ) from None
    ceph_conf.write_text(text + "\n[client]\nrbd default features = 1\n")
    options["rbd_store_ceph_conf"] = str(ceph_conf)


def _ceph_conf(path: str) -> Path:
    """The ceph.conf librados reads: ``path``, or else the first of its search path."""
    if path:
        return Path(path)
    search = (os.environ.get("CEPH_CONF", ""), "/etc/ceph/ceph.conf", "~/.ceph/ceph.conf")
    for candidate in (*search, "ceph.conf"):
        if candidate and Path(candidate).expanduser().is_file():
            return Path(candidate).expanduser()
    raise ConfigError(
        "rbd_store_ceph_conf is empty and librados' search path ($CEPH_CONF, "
        "/etc/ceph/ceph.conf, ~/.ceph/ceph.conf, ./ceph.conf) has no ceph.conf: set it"
    )


def _adapt_swift(options: dict[str, Any], workdir: Path) -> Any:
    """Give glance_store a reference file; return a v1 connection factory if v1 auth."""
    import swiftclient

    from ..config import open_store

    ours = open_store("swift", options)  # resolves the credentials as our driver does
    try:
        credentials = ours.credentials
        cacert = ours.conf["swift_store_cacert"] or None
        insecure = bool(ours.conf["swift_store_auth_insecure"])
    finally:
        ours.close()
    if options.get("swift_store_config_file"):  # glance_store does not look in the cwd
        options["swift_store_config_file"] = os.path.abspath(options["swift_store_config_file"])
    else:
        refs = workdir / "glance-swift.conf"
        refs.touch(mode=0o600)
        fields = {
            "auth_address": credentials.auth_address,
            "user": credentials.user,
            "key": credentials.key,
            "auth_version": credentials.auth_version,
            **credentials.domains(),  # Keystone v3: glance_store reads them from references only
        }
        refs.write_text(
            "[ref1]\n" + "".join(f"{k} = {_ini_value(k, str(v))}\n" for k, v in fields.items())
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


def _ini_value(name: str, value: str) -> str:
    """``value`` as glance_store's reference parser reads it back (% interpolated, quotes
    stripped); one it cannot is refused without being shown (it may be the key)."""
    if "\n" in value or value[:1] in ("'", '"'):
        raise InvalidArgument(
            f"glance_store's reference file cannot hold this {name} (a newline, or a leading "
            "quote); compare with a swift_store_config_file reference of your own"
        )
    return value.replace("%", "%%")


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
