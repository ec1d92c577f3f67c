"""Finding store drivers: entry points in the group ``glance_store_ng.drivers``.

The core never imports a driver by name: the in-tree drivers register exactly
as a third-party package would, in its packaging metadata::

    [options.entry_points]
    glance_store_ng.drivers =
        file = glance_store_ng.drivers.filesystem:FilesystemStore
"""

from __future__ import annotations

import re

from stevedore import DriverManager, ExtensionManager
from stevedore.exception import NoMatches

from .errors import DriverNotFound
from .store import Store

__all__ = ["NAMESPACE", "check_driver", "installed_drivers", "load_driver"]

NAMESPACE = "glance_store_ng.drivers"


def installed_drivers() -> list[str]:
    """The names of every registered driver, sorted (loading none of them)."""
    manager = ExtensionManager(NAMESPACE, invoke_on_load=False, on_load_failure_callback=None)
    names = set(manager.names())
    # ExtensionManager drops drivers that fail to import; list them too.
    from importlib.metadata import entry_points

    names.update(ep.name for ep in entry_points(group=NAMESPACE))
    return sorted(names)


def _missing_package_hint(exc: BaseException) -> str:
    name = getattr(exc, "name", None) or ""
    if not name:
        match = re.search(r"No module named '([^']+)'", str(exc))
        name = match.group(1) if match else ""
    top = name.split(".")[0]
    # Import names that differ from the package to install.
    packages = {
        "swiftclient": "python-swiftclient (pip install 'glance_store_ng[swift]')",
        "boto3": "boto3 (pip install 'glance_store_ng[s3]')",
        "botocore": "boto3 (pip install 'glance_store_ng[s3]')",
        "rbd": "Debian's python3-rbd (apt-get install python3-rbd)",
        "rados": "Debian's python3-rados (apt-get install python3-rados)",
    }
    return packages.get(top, top or "the driver's client library")


def load_driver(name: str) -> type[Store]:
    """The Store class registered as ``name``, or DriverNotFound saying what to do."""
    try:
        manager = DriverManager(
            NAMESPACE, name, invoke_on_load=False, on_load_failure_callback=_reraise
        )
    except NoMatches:
        installed = ", ".join(installed_drivers()) or "none"
        raise DriverNotFound(f"no store driver {name!r}; installed: {installed}") from None
    except ImportError as exc:
        raise DriverNotFound(
            f"store driver {name!r} could not be loaded: {exc}; "
            f"install {_missing_package_hint(exc)}"
        ) from exc
    return check_driver(name, manager)


def check_driver(name: str, manager: DriverManager) -> type[Store]:
    """The class ``manager`` loaded for ``name``, if it is a Store subclass."""
    driver = manager.driver
    if not (isinstance(driver, type) and issubclass(driver, Store)):
        raise DriverNotFound(
            f"store driver {name!r} ({driver!r}) is not a glance_store_ng.Store subclass"
        )
    return driver


def _reraise(manager, entrypoint, exc):  # noqa: ANN001 - stevedore's callback signature
    raise exc
