"""The in-tree store drivers.

Each registers in the entry-point group ``glance_store_ng.drivers`` exactly as
a third-party driver would; nothing imports them by name.
"""

from collections.abc import Callable
from importlib import import_module
from typing import Any


def exported_from_store(package: str, names: list[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a driver package: ``names`` come from its ``store``
    module on first use, so the package (and its ``options``) imports without the
    backend's client library."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(import_module(f"{package}.store"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
