"""The rbd driver's options: glance_store's names and meanings, and ours.

``glance-store-ng drivers`` lists them with their help texts and defaults.
"""

from glance_store_ng.options import Option
from glance_store_ng.sparse import DEFAULT_MIN_HOLE

from .reader import DEPTH

__all__ = ["OPTIONS"]

OPTIONS = (
    Option("rbd_store_pool", "str", default="images", help="The RADOS pool images go to."),
    Option(
        "rbd_store_user",
        "str",
        default="",
        help="The cephx user, without 'client.' (empty: librados' default, client.admin).",
    ),
    Option(
        "rbd_store_ceph_conf",
        "str",
        default="",
        help="The ceph.conf naming the monitors and the keyring (empty: librados' search).",
    ),
    Option(
        "rbd_store_chunk_size",
        "int",
        default=8,
        min=1,
        max=32,
        help="MiB per RBD object and per write; a power of two (default 8).",
    ),
    Option(
        "rados_connect_timeout",
        "int",
        default=30,
        help="Seconds to reach the cluster and per operation; below 0: librados' defaults.",
    ),
    Option(
        "rbd_thin_provisioning",
        "bool",
        default=True,
        help="Do not write all-zero blocks: images stay thin (the runs of "
        "rbd_thin_min_hole or more).",
    ),
    Option(
        "rbd_thin_min_hole",
        "size",
        default=DEFAULT_MIN_HOLE,
        min=4096,
        help="With thin provisioning, the shortest run of zeros inside an object left "
        "unwritten; shorter runs are written with the data around them (an object cut "
        "into many small extents reads slower).",
    ),
    Option(
        "rbd_store_namespace",
        "str",
        default="",
        help="A RADOS namespace of the pool to keep the images in (default: none).",
    ),
    Option(
        "rbd_store_direct_writes",
        "bool",
        default=True,
        help="Write a new image's data objects in one operation per object "
        "(off: through librbd, one write per data extent).",
    ),
    Option(
        "rbd_store_reads_in_flight",
        "int",
        default=DEPTH,
        min=1,
        max=16,
        help="Chunk reads a get keeps in flight. 1 (default) reads one chunk at a time, as "
        "glance_store does, with the least client CPU; more hides the network's latency "
        "on a remote cluster, at some client CPU per byte.",
    ),
)
