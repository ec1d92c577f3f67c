"""A tool for measuring stores, not part of the storage API: ``glance-store-ng bench``'s engine.

For each case (a random image; two with 75% of their 4 KiB blocks zero, in
runs as a disk image's free space is, or scattered one by one, the worst case
for a sparse file; optionally a file of yours) it adds the image to the store
and reads it back, each measurement in a fresh child process so its peak RSS
is its own, and reports MB/s, CPU seconds, peak RSS growth and the storage
allocated. In the same run it measures the bare baselines (hashlib md5 alone,
and md5 then sha512 on the same chunks, as glance_store hashes; a plain
read/write copy with fsync) and, where the ``glance_store`` package is
importable and a comparison is asked for, the same add and get through
glance_store's driver for the same backend with the same options (built by
:mod:`.reference`, which is imported only then), and our ratio to it.

- :mod:`.cases`: the generated images (:func:`make_image`, :data:`CASES`),
  :func:`parse_size`, the implementations' names;
- :mod:`.measure`: :func:`timed`, wall and CPU seconds and peak RSS growth of one run;
- :mod:`.runner`: :func:`run_bench`, each step in a child process;
- :mod:`.steps`: what that child process does (``python -m glance_store_ng.bench``);
- :mod:`.report`: :class:`Measurement` (the median of its rounds), :func:`ratios`,
  :func:`format_table`, :func:`plot`;
- :mod:`.reference`: glance_store's drivers configured from our options;
- :mod:`.machine`: the cores, CPU model and load average (the chart's title, the
  busy-machine warning).

The benchmark scripts in ``benchmarks/`` use :func:`timed`, :func:`make_image`,
:func:`parse_size` and :func:`.reference.open_reference` the same way.
"""

from .cases import (
    BLOCK,
    CASES,
    GLANCE_STORE,
    NO_FSYNC,
    NO_MD5,
    OUR_IMPLEMENTATIONS,
    OURS,
    make_image,
    parse_size,
)
from .measure import timed
from .report import Measurement, check_plotting, format_table, plot, ratios
from .runner import run_bench

__all__ = [
    "BLOCK",
    "CASES",
    "GLANCE_STORE",
    "NO_FSYNC",
    "NO_MD5",
    "OURS",
    "OUR_IMPLEMENTATIONS",
    "Measurement",
    "check_plotting",
    "format_table",
    "make_image",
    "parse_size",
    "plot",
    "ratios",
    "run_bench",
    "timed",
]
