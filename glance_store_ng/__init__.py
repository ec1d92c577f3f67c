"""glance_store_ng: store and serve virtual-machine images on a filesystem, S3, Swift or Ceph RBD.

The public API::

    from glance_store_ng import open_store

    store = open_store("file", {"filesystem_store_datadir": "/var/lib/images"})
    result = store.add(image_id, open("disk.raw", "rb"))   # AddResult
    with store.get(result.location) as reader:             # ImageReader
        for chunk in reader: ...
    store.delete(result.location)

``Stores.from_config("glance-api.conf")`` opens several named backends; a store
that acts as the requesting user (Swift multi-tenant) takes its
:class:`RequestContext` as ``context=`` on each call;
:mod:`glance_store_ng.errors` holds the errors.
"""

import importlib.util as _importlib_util

if _importlib_util.find_spec(f"{__name__}.drivers") is None:  # pragma: no cover - see tests
    raise ImportError(
        f"glance_store_ng is imported from its source tree ({__path__[0]}), which is not an "
        "installed package (the install maps drivers/ into it and builds the C module): run "
        "from outside the clone, or install the clone in place with: pip install -e ."
    )

from . import errors  # noqa: E402
from ._version import __version__  # noqa: E402
from .config import Stores, open_store  # noqa: E402
from .context import RequestContext  # noqa: E402
from .locations import Location  # noqa: E402
from .options import Option  # noqa: E402
from .reader import ImageReader  # noqa: E402
from .store import AddResult, Capabilities, Store  # noqa: E402
from .verify import Expected  # noqa: E402

__all__ = [
    "AddResult",
    "Capabilities",
    "Expected",
    "ImageReader",
    "Location",
    "Option",
    "RequestContext",
    "Store",
    "Stores",
    "__version__",
    "errors",
    "open_store",
]
