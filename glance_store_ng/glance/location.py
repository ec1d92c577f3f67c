"""The location class the adapters give glance_store: the URI, as our store reads it."""

from __future__ import annotations

from glance_store import exceptions as gs
from glance_store import location

from glance_store_ng.locations import mask_uri

__all__ = ["UriLocation"]


class UriLocation(location.StoreLocation):
    """A location URI kept whole; our store parses it (and refuses what it does not hold).

    ``schemes`` is set by each adapter's subclass: the URI schemes it reads.
    """

    schemes: tuple[str, ...] = ()

    def process_specs(self) -> None:
        self.uri = self.specs.get("uri", "")

    def parse_uri(self, uri: str) -> None:
        scheme = uri.partition("://")[0]
        if scheme not in self.schemes:
            raise gs.BadStoreUri(
                message=f"{mask_uri(uri)} is not a {'/'.join(self.schemes)} location"
            )
        self.uri = uri

    def get_uri(self) -> str:
        return self.uri
