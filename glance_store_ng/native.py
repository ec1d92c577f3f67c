"""Hashing and zero detection for the ingest pipeline.

One interface, two implementations with identical results: the C module
``glance_store_ng._native`` (built by cffi when a compiler and the -dev
libraries are present) and the pure-Python fallback in ``_fallback``.
``IMPLEMENTATION`` says which one is active.
"""

from __future__ import annotations

from ._fallback import ALGORITHMS, is_zero, new_digest, zero_extents

IMPLEMENTATION = "python"

__all__ = ["ALGORITHMS", "IMPLEMENTATION", "is_zero", "new_digest", "zero_extents"]
