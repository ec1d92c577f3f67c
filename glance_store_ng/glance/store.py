"""The adapter: a glance_store driver that hands every call to one of our stores.

Each adapter subclass names our driver (``DRIVER``), its entry-point name in
``glance_store.drivers`` (``ENTRY``), the URI schemes it reads and writes, and
glance_store's option list for that kind. Glance builds one adapter per backend
and keeps it (DRIVER_REUSABLE); ``configure_add`` opens our store from the
options the operator set in the backend's section. Calls are thread-safe:
our stores are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar

from glance_store import capabilities, driver
from glance_store import exceptions as gs

from glance_store_ng import errors
from glance_store_ng.config import open_store
from glance_store_ng.context import RequestContext
from glance_store_ng.registry import load_driver

from .errors import glance_errors
from .location import UriLocation
from .options import operator_values

__all__ = ["GlanceAdapter"]

LOG = logging.getLogger("glance_store_ng.glance")
_BITS = capabilities.BitMasks


class GlanceAdapter(driver.Store):
    """glance_store's ``Store`` contract over one of our stores; see the module docstring."""

    _CAPABILITIES = _BITS.READ_RANDOM | _BITS.WRITE_ACCESS | _BITS.DRIVER_REUSABLE

    #: Our driver's entry-point name (``file``, ``s3``, ``swift``, ``rbd``).
    DRIVER: ClassVar[str]
    #: This adapter's name in ``glance_store.drivers`` (``gsng_file``...).
    ENTRY: ClassVar[str]
    #: The URI schemes of the locations it writes and reads, as glance_store's driver.
    SCHEMES: ClassVar[tuple[str, ...]]
    _location_class: ClassVar[type[UriLocation]]

    def __init__(self, conf: Any, backend: str | None = None) -> None:
        super().__init__(conf, backend)
        self._store: Any = None

    # -- what glance_store asks of a driver ----------------------------------------------------

    def get_schemes(self) -> tuple[str, ...]:
        # Glance looks a backend's driver up by its type (our entry name) among the schemes.
        return (self.ENTRY, *self.SCHEMES)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # One location class per adapter, made once (glance_store asks for it repeatedly).
        name = f"{cls.__name__}Location"
        cls._location_class = type(name, (UriLocation,), {"schemes": cls.SCHEMES})

    def get_store_location_class(self) -> type[UriLocation]:
        return self._location_class

    def configure_add(self) -> None:
        """Open our store from the backend's section: what the operator set, our defaults else."""
        if not self.backend_group:
            raise gs.BadStoreConfiguration(
                store_name=self.ENTRY,
                reason=f"{self.ENTRY} needs a backend of enabled_backends (multi-store Glance)",
            )
        known = {option.name for option in load_driver(self.DRIVER).all_options()}
        given = operator_values(self.conf, self.backend_group, self.declared_options())
        ignored = sorted(set(given) - known)
        if ignored:
            LOG.warning(
                "%s: %s ignores option(s) %s (glance_store's, not supported here)",
                self.backend_group,
                self.ENTRY,
                ", ".join(ignored),
            )
        options = {name: value for name, value in given.items() if name in known}
        options["image_size_cap"] = 0  # Glance enforces its own image_size_cap
        options["image_inspection"] = "off"  # and inspects what is uploaded to it
        previous = self._store
        try:
            self._store = open_store(self.DRIVER, options, backend=self.backend_group)
        except errors.StoreError as exc:
            raise gs.BadStoreConfiguration(store_name=self.backend_group, reason=str(exc)) from exc
        if previous is not None:
            previous.close()

    def declared_options(self) -> list[Any]:
        """The oslo.config options of this backend's section that map to ours."""
        return list(self.OPTIONS)

    @property
    def url_prefix(self) -> str | None:
        if self._store is None:
            return None
        try:
            return self._store.location_prefix
        except errors.StoreError as exc:  # an RBD cluster not reachable yet: no prefix for now
            LOG.warning("%s: no url_prefix yet: %s", self.backend_group, exc)
            return None

    @driver.back_compat_add
    @capabilities.check
    def add(
        self,
        image_id: str,
        image_file: Any,
        image_size: int,
        hashing_algo: str,
        context: Any = None,
        verifier: Any = None,
    ) -> tuple[str, int, str, str, dict[str, Any]]:
        """Store the image; ``(location, size, md5 hex, multihash hex, {'store': backend})``."""
        data = image_file if verifier is None else _verified(image_file, verifier)
        with glance_errors():
            result = self._store.add(
                image_id,
                data,
                size=image_size or None,
                hashing_algo=hashing_algo,
                context=self._context(context),
            )
        return (
            result.location,
            result.size,
            result.checksum,
            result.multihash,
            {"store": self.backend_group},
        )

    @capabilities.check
    def get(
        self, location: Any, offset: int = 0, chunk_size: int | None = None, context: Any = None
    ) -> tuple[Iterator[bytes], int]:
        """``(chunks, size)`` of ``chunk_size`` bytes (None: to the end) from ``offset``.

        The chunks are a plain iterator, not a file object: copy-image hands them to
        glance_store's staging store, which would call ``read(65536)`` on a file.
        """
        with glance_errors():
            reader = self._store.get(
                location.get_store_uri(), offset, chunk_size, context=self._context(context)
            )
        return _translated(iter(reader)), reader.size

    def get_size(self, location: Any, context: Any = None) -> int:
        with glance_errors():
            return self._store.get_size(location.get_store_uri(), context=self._context(context))

    @capabilities.check
    def delete(self, location: Any, context: Any = None) -> None:
        with glance_errors():
            self._store.delete(location.get_store_uri(), context=self._context(context))

    def set_acls(
        self,
        location: Any,
        public: bool = False,
        read_tenants: list[str] | None = None,
        write_tenants: list[str] | None = None,
        context: Any = None,
    ) -> None:
        """Share an image (Glance calls it when an image's visibility or members change):
        our store's ``set_acls`` when it keeps images in their owners' accounts (Swift
        multi-tenant); else glance_store's answer, that this driver does not."""
        if not self._acts_as_user:
            raise NotImplementedError
        with glance_errors():
            self._store.set_acls(
                location.get_store_uri(),
                public=public,
                read_projects=read_tenants,
                write_projects=write_tenants,
                context=self._context(context),
            )

    @property
    def _acts_as_user(self) -> bool:
        """Whether our store makes each call as the requesting user (Swift multi-tenant)."""
        return bool(self._store.capabilities.acts_as_user)

    def _context(self, context: Any) -> RequestContext | None:
        """Glance's request context as ours, for a store that acts as the user; None for
        the others (they act as the service), or when Glance gives none or one without a
        token (the store then says it needs one)."""
        if not self._acts_as_user or not getattr(context, "auth_token", None):
            return None
        return RequestContext.of(context)


def _translated(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks``, with our errors met while reading raised as glance_store's."""
    try:
        with glance_errors():
            yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _verified(image_file: Any, verifier: Any, size: int = 1 << 20) -> Iterator[bytes]:
    """The image's bytes, each piece fed to Glance's signature ``verifier`` on the way."""
    while True:
        piece = image_file.read(size)
        if not piece:
            return
        verifier.update(piece)
        yield piece
