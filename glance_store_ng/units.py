"""Byte units, named once for the whole package, and sizes as people write them."""

from .errors import InvalidArgument

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

__all__ = ["GiB", "KiB", "MiB", "TiB", "parse_size"]

_UNITS = {"K": KiB, "M": MiB, "G": GiB, "T": TiB}


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``4KiB``, ``4096``: a size in bytes (binary units), not negative."""
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        if cleaned and cleaned[-1] in _UNITS:
            size = int(float(cleaned[:-1]) * _UNITS[cleaned[-1]])
        else:
            size = int(cleaned)
    except (ValueError, OverflowError):  # "x", "infK", "1e400M"
        size = -1
    if size < 0:
        raise InvalidArgument(f"{text!r} is not a size such as 1G, 512M, 4K or 4096")
    return size
