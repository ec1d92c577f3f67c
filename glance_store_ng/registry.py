"""Finding store drivers: entry points in the group ``glance_store_ng.drivers``.

The core never imports a driver by name: the in-tree drivers register exactly
as a third-party package would, in its packaging metadata::

    [options.entry_points]
    glance_store_ng.drivers =
        file = glance_store_ng.drivers.filesystem:FilesystemStore
"""

from __future__ import annotations

import re
import sys

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


#: What each in-tree driver needs beyond the core, and the one way to get it. There is
#: no published package: the extras are installed from a clone, as the README says.
_DRIVER_FIXES = {
    "s3": "pip install '.[s3]' from a clone of glance_store_ng (boto3)",
    "swift": (
        "pip install '.[swift]' from a clone of glance_store_ng "
        "(python-swiftclient and the requests it needs)"
    ),
    "rbd": "apt-get install python3-rbd python3-rados (Debian's Ceph bindings, not on PyPI)",
}
_IN_TREE = "glance_store_ng.drivers."
#: The in-tree driver whose client library a module is (for an error without its driver).
_CLIENT_MODULES = {
    "boto3": "s3",
    "botocore": "s3",
    "swiftclient": "swift",
    "rbd": "rbd",
    "rados": "rbd",
}


def _root_import_error(exc: BaseException) -> BaseException:
    """The ImportError at the bottom of ``exc``'s causes: the module really missing.

    A driver may re-raise a missing module with its own advice (rbd does, for those
    who import it directly); the registry gives its one hint instead of a second one.
    """
    while isinstance(exc.__cause__, ImportError):
        exc = exc.__cause__
    return exc


def _missing_module(exc: BaseException) -> str:
    name = getattr(exc, "name", None) or ""
    if not name:
        match = re.search(r"No module named '([^']+)'", str(exc))
        name = match.group(1) if match else ""
    return name


def _entry_point_module(name: str) -> str:
    from importlib.metadata import entry_points

    for ep in entry_points(group=NAMESPACE, name=name):
        return ep.module
    return ""


def _missing_package_hint(exc: BaseException, driver: str = "", module: str | None = None) -> str:
    """How to get what ``driver`` failed to import (``exc``): one fix, said once.

    ``module`` is the driver's entry-point module (looked up when not given): an
    in-tree driver names its extra or Debian's packages whatever module of its
    client library is missing (swift misses ``requests`` before ``swiftclient``); a
    third-party driver's missing module is named as it is. Without ``driver``, the
    in-tree driver whose client library the missing module is, if any.
    """
    missing = _missing_module(_root_import_error(exc))
    top = missing.split(".")[0]
    if top == "glance_store_ng":
        return (
            "glance_store_ng is incomplete or older than the driver expects: "
            "reinstall it (pip install . from a clone)"
        )
    if not driver:
        driver, module = _CLIENT_MODULES.get(top, ""), _IN_TREE
    elif module is None:
        module = _entry_point_module(driver)
    if driver in _DRIVER_FIXES and module.startswith(_IN_TREE):
        fix = _DRIVER_FIXES[driver]
        if driver == "rbd" and sys.prefix != sys.base_prefix:
            # Debian installs them for its python3; a venv sees them once linked.
            fix += f", then, from a clone, tools/backends/ceph link-python {sys.executable}"
        return fix
    if top:
        return f"install the package that provides the module {top!r}"
    return "install the driver's client library"


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
            f"store driver {name!r} could not be loaded: {_root_import_error(exc)}; "
            f"{_missing_package_hint(exc, name)}"
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
