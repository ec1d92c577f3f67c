"""Opening stores: one from a driver name, several from glance-api.conf.

``open_store("file", {"filesystem_store_datadir": "/var/lib/images"})`` gives
one store. ``Stores.from_config(path_or_mapping)`` reads the multi-store form
glance-api.conf uses::

    [DEFAULT]
    enabled_backends = fast:file, cold:s3

    [glance_store]
    default_backend = fast

    [fast]
    filesystem_store_datadir = /var/lib/glance/images

or the legacy single-store form (``[glance_store] default_store = file`` with
that driver's options in ``[glance_store]``). A mapping has the same shape:
section name -> {option: value}.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import BadLocation, ConfigError
from .locations import Location, parse_location
from .reader import ImageReader
from .registry import installed_drivers, load_driver
from .store import AddResult, Store
from .verify import Expected

__all__ = ["Backend", "Stores", "configured_backends", "open_store", "read_ini"]

# Options glance-api.conf may hold in a store section that are Glance's, not a driver's.
_GLANCE_STORE_OPTIONS = frozenset(
    {
        "stores",
        "default_store",
        "default_backend",
        "store_type_preference",
        "filesystem_store_metadata_file",
    }
)


def open_store(
    driver: str, options: Mapping[str, Any] | None = None, *, backend: str | None = None
) -> Store:
    """A configured :class:`Store` of the driver registered as ``driver`` (``"file"``, ``"s3"``...).

    ``options`` are named as glance_store names them; unknown, missing or
    malformed ones raise ConfigError naming the option.
    """
    return load_driver(driver)(options or {}, backend=backend)


def read_ini(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The sections of an oslo.config-style ini file: ``{section: {key: value}}``.

    A key repeated in a section (oslo's multi-valued options, such as
    ``filesystem_store_datadirs``) gives a list of its values. Comments start
    with ``#`` or ``;``; indented lines continue the previous value.
    """
    sections: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    last_key: str | None = None
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {os.fspath(path)!r}: {exc.strerror}") from None
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            continue
        where = f"{os.fspath(path)}, line {number}"
        if raw[0] in " \t" and current is not None and last_key is not None:
            value = current[last_key]
            if isinstance(value, list):
                value[-1] = f"{value[-1]}\n{stripped}".strip()
            else:
                current[last_key] = f"{value}\n{stripped}".strip()
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]") or len(stripped) < 3:
                raise ConfigError(f"{where}: malformed section header: expected [name]")
            current = sections.setdefault(stripped[1:-1].strip(), {})
            last_key = None
            continue
        if current is None:
            raise ConfigError(f"{where}: option outside any [section]")
        key, sep, value = stripped.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            # The line is not shown: it may hold a secret.
            raise ConfigError(f"{where}: expected 'name = value'")
        if key in current:
            previous = current[key]
            current[key] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            current[key] = value
        last_key = key
    return sections


def _parse_backends(value: Any) -> dict[str, str]:
    text = ",".join(value) if isinstance(value, list) else str(value)
    backends: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, driver = (s.strip() for s in item.partition(":"))
        if not sep or not name or not driver:
            raise ConfigError(
                f"enabled_backends: {item!r} is not 'name:driver' (for example 'fast:file')"
            )
        if name in backends:
            raise ConfigError(f"enabled_backends: backend {name!r} is declared twice")
        backends[name] = driver
    if not backends:
        raise ConfigError("enabled_backends is empty: declare at least one 'name:driver'")
    return backends


def _foreign_options(driver: str) -> set[str]:
    """Option names of every other installed driver (a legacy [glance_store] section mixes them)."""
    names = set(_GLANCE_STORE_OPTIONS)
    for other in installed_drivers():
        if other == driver:
            continue
        try:
            names.update(o.name for o in load_driver(other).OPTIONS)
        except ConfigError:
            continue
    return names


@dataclasses.dataclass(frozen=True)
class Backend:
    """One configured backend, before any store is opened."""

    name: str
    driver: str
    options: dict[str, Any] = dataclasses.field(repr=False)  # may hold secrets
    legacy: bool = False  # [glance_store] default_store: the store carries no backend name


def configured_backends(
    config: str | os.PathLike[str] | Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Backend], str]:
    """``({name: Backend}, default backend name)`` of a glance-api.conf-style file path or
    mapping of sections.

    With ``[DEFAULT] enabled_backends`` each backend's options are its own section; in
    the legacy form (``[glance_store] default_store``) the one backend is named after its
    driver and takes, from ``[glance_store]``, every option not another driver's.
    """
    sections = read_ini(config) if isinstance(config, (str, os.PathLike)) else config
    defaults = sections.get("DEFAULT", {})
    glance_store = dict(sections.get("glance_store", {}))
    if defaults.get("enabled_backends"):
        backends = _parse_backends(defaults["enabled_backends"])
        default = glance_store.get("default_backend")
        if not default:
            raise ConfigError(
                "[glance_store] default_backend is required with enabled_backends: "
                f"name one of {', '.join(backends)}"
            )
        return {
            name: Backend(name, driver, dict(sections.get(name, {})))
            for name, driver in backends.items()
        }, str(default)
    driver = glance_store.pop("default_store", None)
    if not driver:
        raise ConfigError(
            "no store configured: set [DEFAULT] enabled_backends (and [glance_store] "
            "default_backend), or the legacy [glance_store] default_store"
        )
    driver = str(driver).strip()
    foreign = _foreign_options(driver)
    own = {o.name for o in load_driver(driver).all_options()}
    options = {k: v for k, v in glance_store.items() if k in own or k not in foreign}
    return {driver: Backend(driver, driver, options, legacy=True)}, driver


class Stores(Mapping[str, Store]):
    """Several named stores, routed by backend name and by location.

    ``stores[name]`` is a Store; ``stores.default`` the default backend's.
    ``add`` stores into the default backend unless ``backend`` names another;
    ``get``, ``get_size`` and ``delete`` find the store that holds a location
    (by its scheme and root), or use ``backend`` when given (Glance records it
    in the location's metadata as ``store``). Each takes the requesting user's
    ``context`` as Store's do.
    """

    def __init__(self, stores: Mapping[str, Store], default: str) -> None:
        if default not in stores:
            raise ConfigError(
                f"default backend {default!r} is not among the enabled backends: "
                f"{', '.join(stores) or 'none'}"
            )
        self._stores = dict(stores)
        self.default_backend = default

    @classmethod
    def from_config(
        cls, config: str | os.PathLike[str] | Mapping[str, Mapping[str, Any]]
    ) -> Stores:
        """Stores from a glance-api.conf-style file path or a mapping of sections."""
        backends, default = configured_backends(config)
        stores: dict[str, Store] = {}
        try:
            for name, backend in backends.items():
                label = None if backend.legacy else name
                stores[name] = open_store(backend.driver, backend.options, backend=label)
        except BaseException:
            for store in stores.values():
                store.close()
            raise
        return cls(stores, default)

    # -- Mapping -------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Store:
        try:
            return self._stores[name]
        except KeyError:
            raise ConfigError(
                f"no backend {name!r}; enabled backends: {', '.join(self._stores)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._stores)

    def __len__(self) -> int:
        return len(self._stores)

    @property
    def default(self) -> Store:
        """The default backend's store."""
        return self._stores[self.default_backend]

    # -- routing -------------------------------------------------------------------------

    def store_for(self, location: str | Location, backend: str | None = None) -> Store:
        """The store holding ``location``: ``backend``'s if given, else the one owning it."""
        if backend is not None:
            return self[backend]
        parsed = parse_location(location)
        owners = [store for store in self._stores.values() if store.owns(parsed)]
        if len(owners) == 1:
            return owners[0]
        if not owners:
            reasons = []
            for store in self._stores.values():
                if parsed.scheme in store.schemes:  # its own message says what is wrong
                    try:
                        store._parse_location(parsed)
                    except BadLocation as exc:
                        reasons.append(str(exc))
            raise BadLocation(
                f"no enabled backend holds {parsed.masked}"
                + (f": {'; '.join(reasons)}" if reasons else "")
                + f" (enabled backends: {', '.join(self._stores)})"
            )
        names = ", ".join(s.backend or "?" for s in owners)
        raise BadLocation(
            f"{parsed.masked} could be held by several backends ({names}): pass backend="
        )

    def add(
        self,
        image_id: str,
        data: Any,
        size: int | None = None,
        hashing_algo: str = "sha512",
        backend: str | None = None,
        checksum: bool = True,
        context: Any = None,
        disk_format: str | None = None,
        inspect: str | None = None,
    ) -> AddResult:
        """Store.add into ``backend`` (default: the default backend)."""
        store = self[backend or self.default_backend]
        return store.add(
            image_id,
            data,
            size,
            hashing_algo,
            checksum=checksum,
            context=context,
            disk_format=disk_format,
            inspect=inspect,
        )

    def get(
        self,
        location: str | Location,
        offset: int = 0,
        length: int | None = None,
        backend: str | None = None,
        verify: Expected | AddResult | None = None,
        context: Any = None,
    ) -> ImageReader:
        """Store.get from the store holding ``location``."""
        store = self.store_for(location, backend)
        return store.get(location, offset, length, verify, context=context)

    def get_size(
        self, location: str | Location, backend: str | None = None, context: Any = None
    ) -> int:
        """Store.get_size from the store holding ``location``."""
        return self.store_for(location, backend).get_size(location, context=context)

    def delete(
        self, location: str | Location, backend: str | None = None, context: Any = None
    ) -> None:
        """Store.delete from the store holding ``location``."""
        self.store_for(location, backend).delete(location, context=context)

    def close(self) -> None:
        """Close every store."""
        for store in self._stores.values():
            store.close()

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Stores({list(self._stores)!r}, default={self.default_backend!r})"
