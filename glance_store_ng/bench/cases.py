"""What a benchmark measures: the generated images and the implementations compared.

The images are random, or have 75% of their 4 KiB blocks zero, in runs (as a
disk image's free space is) or scattered one by one (the worst case for a
sparse file). The benchmark scripts in ``benchmarks/`` generate the same ones.
"""

from __future__ import annotations

import os
import random

from ..units import MiB, parse_size

__all__ = [
    "BLOCK",
    "CASES",
    "GLANCE_STORE",
    "NO_FSYNC",
    "NO_MD5",
    "OURS",
    "OUR_IMPLEMENTATIONS",
    "make_image",
    "parse_size",
]

BLOCK = 4096

#: The generated cases: name -> (fraction of zero blocks, mean run length in blocks).
CASES = {
    "random": (0.0, 1),
    "75% zero, runs": (0.75, 64),
    "75% zero, scattered": (0.75, 1),
}

#: The implementations of add and get, as the results name them.
OURS = "glance_store_ng"
NO_FSYNC = "glance_store_ng, no fsync"  # the embedded file store as glance_store writes: no fsync
#: Ours as a frontend without Glance's legacy md5 adds: xxh3_128 alone (its gets are ours').
NO_MD5 = "glance_store_ng, xxh3_128, no md5"
GLANCE_STORE = "glance_store"
#: Every implementation of ours, in the order measured.
OUR_IMPLEMENTATIONS = (OURS, NO_FSYNC, NO_MD5)


def make_image(
    path: str, size: int, zero_fraction: float, run_blocks: int = 1, seed: int = 1
) -> None:
    """Write ``size`` bytes where ``zero_fraction`` of the 4 KiB blocks are all zero.

    Zero and data blocks come in runs of 1 to ``2 * run_blocks - 1`` blocks
    (mean ``run_blocks``): 1 scatters single blocks (the worst case for a
    sparse file), larger runs resemble a real disk image's free space.
    """
    rng = random.Random(seed)
    blocks = -(-size // BLOCK)
    with open(path, "wb") as out:
        pending = bytearray()
        block = 0
        while block < blocks:
            count = min(rng.randint(1, 2 * run_blocks - 1), blocks - block)
            length = min(count * BLOCK, size - block * BLOCK)
            zero = rng.random() < zero_fraction
            pending += bytes(length) if zero else os.urandom(length)
            block += count
            if len(pending) >= 8 * MiB:
                out.write(pending)
                pending.clear()
        out.write(pending)
