"""What the registry says when a driver cannot be loaded: the missing module and one fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from glance_store_ng import errors, registry
from glance_store_ng.registry import _missing_package_hint, load_driver

# The client libraries of the in-tree drivers, as a fresh venv without extras lacks them:
# swift's first missing import is requests (python-swiftclient's dependency), not swiftclient.
BLOCKED = ("requests", "swiftclient", "boto3", "botocore", "rados", "rbd")


def test_drivers_command_names_each_missing_dependency_with_one_fix(tmp_path):
    code = (
        "import sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None\n"
        "from glance_store_ng.cli import main\n"
        "sys.exit(main(['drivers']))\n"
    )
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("GLANCE_STORE_NG_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = {
        line.split(":", 1)[0]: line for line in done.stdout.splitlines() if "NOT LOADABLE" in line
    }
    assert sorted(lines) == ["rbd", "s3", "swift"], done.stdout

    assert "pip install '.[swift]'" in lines["swift"]
    assert "python-swiftclient" in lines["swift"]
    assert "install requests" not in lines["swift"]

    assert "pip install '.[s3]'" in lines["s3"]
    assert "boto3" in lines["s3"]

    assert "apt-get install python3-rbd python3-rados" in lines["rbd"]
    # A venv (the tests run in one) also needs the bindings linked in, said once.
    assert lines["rbd"].count(f"tools/backends/ceph link-python {sys.executable}") == 1

    for name, line in lines.items():
        assert line.count("install") == 1, f"{name}: more than one fix in {line!r}"
        assert "glance_store_ng[" not in line  # no published package to install by name


def test_rbd_hint_from_the_drivers_own_advice_is_said_once():
    try:
        try:
            raise ModuleNotFoundError("No module named 'rados'", name="rados")
        except ImportError as missing:
            raise ImportError(
                f"the rbd driver needs Ceph's Python bindings ({missing}): apt-get install "
                "python3-rbd python3-rados",
                name="rados",
            ) from missing
    except ImportError as exc:
        error = exc
    hint = _missing_package_hint(error, "rbd", "glance_store_ng.drivers.rbd")
    assert hint.startswith("apt-get install python3-rbd python3-rados")
    assert registry._root_import_error(error).name == "rados"


@pytest.mark.parametrize(
    ("driver", "missing", "fix"),
    [
        ("s3", "boto3", "pip install '.[s3]'"),
        ("s3", "urllib3", "pip install '.[s3]'"),
        ("swift", "requests", "pip install '.[swift]'"),
        ("swift", "swiftclient.client", "pip install '.[swift]'"),
        ("rbd", "rbd", "apt-get install python3-rbd python3-rados"),
    ],
)
def test_in_tree_drivers_name_their_extra_whatever_module_is_missing(driver, missing, fix):
    hint = _missing_package_hint(
        ModuleNotFoundError(name=missing), driver, f"glance_store_ng.drivers.{driver}"
    )
    assert hint.startswith(fix)


def test_third_party_drivers_name_the_missing_module():
    hint = _missing_package_hint(ModuleNotFoundError(name="acme_sdk.client"), "acme", "acme.store")
    assert hint == "install the package that provides the module 'acme_sdk'"
    # A third-party driver registered as "s3" is not told to install our extra.
    hint = _missing_package_hint(ModuleNotFoundError(name="boto3"), "s3", "acme.s3")
    assert "'.[s3]'" not in hint and "'boto3'" in hint
    hint = _missing_package_hint(ImportError("cannot import name 'x' from 'y'"), "acme", "acme")
    assert hint == "install the driver's client library"
    # A missing piece of glance_store_ng itself is not a client library.
    hint = _missing_package_hint(
        ModuleNotFoundError(name="glance_store_ng.newer_api"), "acme", "acme.store"
    )
    assert "reinstall it (pip install . from a clone)" in hint


def test_load_driver_shows_the_missing_module_and_the_fix_once(monkeypatch):
    def failing_manager(*args, **kwargs):
        try:
            raise ModuleNotFoundError("No module named 'requests'", name="requests")
        except ImportError as missing:
            raise ImportError("the swift driver needs requests", name="requests") from missing

    monkeypatch.setattr(registry, "DriverManager", failing_manager)
    with pytest.raises(errors.DriverNotFound) as caught:
        load_driver("swift")
    message = str(caught.value)
    assert message.startswith(
        "store driver 'swift' could not be loaded: No module named 'requests'; "
    )
    assert message.endswith(
        "pip install '.[swift]' from a clone of glance_store_ng "
        "(python-swiftclient and the requests it needs)"
    )
    assert "needs requests" not in message
