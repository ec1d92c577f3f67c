"""The real test servers (Swift all-in-one, single-node Ceph), for every driver's tests.

They are started through tools/backends/backends.py (``ensure_swift``,
``ensure_ceph``, ``ensure_keystone_swift``: a quick probe when they already run),
once per session; a failure is remembered too, so a second test does not wait again. A server that
cannot start FAILS the test that needs it with the script's message, never skips
it: a skipped conformance run would look green.

tests/conftest.py turns :func:`swift_env` and :func:`ceph_env` into session
fixtures of the same names; other tests call these functions directly.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "backends"
LABELS = {"swift": "Swift", "ceph": "Ceph", "keystone": "Keystone and its Swift"}
#: How each backend is started (tools/backends/backends.py).
_ENSURE = {"swift": "ensure_swift", "ceph": "ensure_ceph", "keystone": "ensure_keystone_swift"}


@functools.cache
def tool_module(name: str) -> ModuleType:
    """``tools/backends/<name>.py`` as module ``name`` (loaded once)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return sys.modules[name]


def backends_module() -> Any:
    """tools/backends/backends.py: ``ensure_swift``, ``ensure_ceph``, ``BackendUnavailable``..."""
    return tool_module("backends")


@functools.cache
def _started(name: str) -> tuple[bool, Any]:
    """Start once per session; remember a failure too (no second long wait)."""
    backends = backends_module()
    try:
        return True, getattr(backends, _ENSURE[name])()
    except backends.BackendUnavailable as exc:
        return False, str(exc)


@functools.cache
def _ceph_with_rbd() -> tuple[bool, Any]:
    """Ceph, with Debian's rbd/rados modules importable from this Python (a fresh CI venv)."""
    ok, env = _started("ceph")
    if not ok:
        return ok, env
    backends = backends_module()
    try:
        import rbd  # noqa: F401
    except ImportError:
        try:
            backends.link_ceph_python(sys.executable)  # for this venv's later runs
        except backends.BackendUnavailable as exc:
            return False, str(exc)
        sys.path.append(env["GSN_CEPH_PYTHONPATH"])  # and for this one
    return True, env


def _env_or_fail(name: str, started: tuple[bool, Any]) -> dict[str, str]:
    ok, value = started
    if not ok:
        pytest.fail(f"could not start the {LABELS[name]} test backend:\n{value}", pytrace=False)
    return value


def backend_env(name: str) -> dict[str, str]:
    """The env of the running ``swift`` or ``ceph`` backend, started if needed; or a failure."""
    return _env_or_fail(name, _started(name))


def swift_env() -> dict[str, str]:
    """The Swift all-in-one's env (GSN_SWIFT_AUTH_URL, _USER, _KEY, _STORAGE_URL, GSN_S3_...)."""
    return backend_env("swift")


def keystone_env() -> dict[str, str]:
    """Keystone and the Swift all-in-one that authenticates through it: GSN_KEYSTONE_*
    (auth URL, users, projects, domains) and GSN_SWIFT_KS_* (the proxy, the region)."""
    return backend_env("keystone")


def ceph_env(rbd: bool = False) -> dict[str, str]:
    """The single-node Ceph's env (GSN_CEPH_CONF, _USER, _POOL, GSN_RGW_...).

    ``rbd``: also make the python3-rbd / python3-rados bindings importable here.
    """
    return _env_or_fail("ceph", _ceph_with_rbd() if rbd else _started("ceph"))
