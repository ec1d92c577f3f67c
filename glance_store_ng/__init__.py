"""glance_store_ng: store and serve virtual-machine images on a filesystem, S3, Swift or Ceph RBD.

The public API::

    from glance_store_ng import open_store

    store = open_store("file", {"filesystem_store_datadir": "/var/lib/images"})
    result = store.add(image_id, open("disk.raw", "rb"))   # AddResult
    with store.get(result.location) as reader:             # ImageReader
        for chunk in reader: ...
    store.delete(result.location)

``Stores.from_config("glance-api.conf")`` opens several named backends;
:mod:`glance_store_ng.errors` holds the errors.
"""

from . import errors
from ._version import __version__
from .config import Stores, open_store
from .locations import Location
from .options import Option
from .reader import ImageReader
from .store import AddResult, Capabilities, Store

__all__ = [
    "AddResult",
    "Capabilities",
    "ImageReader",
    "Location",
    "Option",
    "Store",
    "Stores",
    "__version__",
    "errors",
    "open_store",
]
