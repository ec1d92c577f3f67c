"""Options, glance-api.conf reading, Stores routing, the registry."""

from __future__ import annotations

import logging

import pytest
from glance_store_ng.drivers.filesystem import FilesystemStore
from stevedore import DriverManager
from stevedore.extension import Extension

from glance_store_ng import Stores, errors, open_store
from glance_store_ng.options import Option, resolve_options
from glance_store_ng.registry import NAMESPACE, check_driver, installed_drivers, load_driver


def write_conf(tmp_path, text: str):
    path = tmp_path / "glance-api.conf"
    path.write_text(text)
    return path


def test_multi_store_file(tmp_path):
    conf = write_conf(
        tmp_path,
        f"""
# glance-api.conf
[DEFAULT]
enabled_backends = fast:file, cold: file
bind_host = 127.0.0.1

[glance_store]
default_backend = fast

[fast]
filesystem_store_datadir = {tmp_path}/fast
store_description = Fast local disk

[cold]
filesystem_store_datadir = {tmp_path}/cold
filesystem_thin_provisioning = False
""",
    )
    with Stores.from_config(conf) as stores:
        assert list(stores) == ["fast", "cold"]
        assert stores.default is stores["fast"]
        assert not stores["cold"].capabilities.thin
        fast = stores.add("img-1", b"one")
        cold = stores.add("img-2", b"two", backend="cold")
        assert (fast.metadata["store"], cold.metadata["store"]) == ("fast", "cold")
        assert stores.get(cold.location).read() == b"two"  # routed by location
        assert stores.get_size(fast.location) == 3
        stores.delete(fast.location)
        with pytest.raises(errors.NotFound):
            stores.get_size(fast.location, backend="fast")
        with pytest.raises(errors.BadLocation, match="outside"):
            stores.get(f"file://{tmp_path}/elsewhere/img")


def test_mapping_config(tmp_path):
    stores = Stores.from_config(
        {
            "DEFAULT": {"enabled_backends": "a:file"},
            "glance_store": {"default_backend": "a"},
            "a": {"filesystem_store_datadir": str(tmp_path), "image_size_cap": 10},
        }
    )
    with pytest.raises(errors.SizeLimitExceeded):
        stores.add("big", b"x" * 11)


def test_legacy_single_store(tmp_path):
    conf = write_conf(
        tmp_path,
        f"""
[glance_store]
stores = file, http
default_store = file
filesystem_store_datadir = {tmp_path}/images
swift_store_container = glance
""",
    )
    # swift_store_container belongs to another driver: ignored only when that driver is installed.
    if "swift" not in installed_drivers():
        conf.write_text(conf.read_text().replace("swift_store_container = glance\n", ""))
    stores = Stores.from_config(conf)
    assert stores.default_backend == "file"
    assert stores.add("legacy", b"data").location == f"file://{tmp_path}/images/legacy"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[glance_store]\n", "no store configured"),
        ("[DEFAULT]\nenabled_backends = fast\n", "not 'name:driver'"),
        ("[DEFAULT]\nenabled_backends = a:file, a:file\n", "declared twice"),
        ("[DEFAULT]\nenabled_backends = a:file\n", "default_backend is required"),
        (
            "[DEFAULT]\nenabled_backends = a:nosuch\n[glance_store]\ndefault_backend = a\n",
            "no store driver 'nosuch'; installed: file",
        ),
        (
            "[DEFAULT]\nenabled_backends = a:file\n[glance_store]\ndefault_backend = b\n"
            "[a]\nfilesystem_store_datadir = /tmp/x\n",
            "default backend 'b' is not among",
        ),
        (
            "[DEFAULT]\nenabled_backends = a:file\n[glance_store]\ndefault_backend = a\n"
            "[a]\nfilesystem_store_datadir = /tmp/x\nfilesystem_store_chunksize = 10\n",
            "a: unknown option 'filesystem_store_chunksize'; did you mean",
        ),
        ("just text\n", "outside any"),
        ("[broken\n", "malformed section"),
        ("[s]\nno equals sign\n", "expected 'name = value'"),
        ("[s]\nswift_store_key  s3cr3t:VALUE\n", "line 2: expected 'name = value'$"),
    ],
)
def test_config_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(errors.ConfigError, match=message):
        Stores.from_config(write_conf(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(errors.ConfigError, match="cannot read config file"):
        Stores.from_config(tmp_path / "nope.conf")


def test_options_parse_strings_and_typed_values():
    declared = (
        Option("n", "int", default=1, min=0),
        Option("flag", "bool", default=False),
        Option("names", "list", default=[]),
        Option("mode", "octal", default=0),
        Option("ratio", "float", default=0.5),
        Option("kind", "str", choices=("a", "b"), default="a"),
        Option("key", "str", secret=True, required=True),
    )
    values = resolve_options(
        declared,
        {"n": "5", "flag": "yes", "names": ["x, y", "z"], "mode": "0640", "key": "s3cr3t"},
        "b",
    )
    assert values == {
        "n": 5, "flag": True, "names": ["x", "y", "z"], "mode": 0o640, "ratio": 0.5, "kind": "a",
        "key": "s3cr3t",
    }  # fmt: skip
    with pytest.raises(errors.ConfigError, match="option key is required"):
        resolve_options(declared, {}, "b")
    with pytest.raises(errors.ConfigError, match="must be one of: a, b"):
        resolve_options(declared, {"key": "k", "kind": "c"}, "b")
    with pytest.raises(errors.ConfigError) as caught:
        resolve_options((Option("key", "int", secret=True),), {"key": "s3cr3t"}, "b")
    assert "s3cr3t" not in str(caught.value) and "***" in str(caught.value)


def test_open_store_repr_masks_secrets(tmp_path):
    class SecretStore(FilesystemStore):
        OPTIONS = FilesystemStore.OPTIONS + (Option("api_key", secret=True),)

    store = SecretStore({"filesystem_store_datadir": str(tmp_path), "api_key": "hunter2"})
    assert "hunter2" not in repr(store) and "'api_key': '***'" in repr(store)


def test_registry_loads_the_in_tree_driver_by_entry_point():
    assert "file" in installed_drivers()
    assert load_driver("file") is FilesystemStore
    assert open_store("file", {"filesystem_store_datadir": "/tmp"}).schemes == ("file",)


def test_registry_refuses_a_non_store_class():
    manager = DriverManager.make_test_instance(
        Extension("odd", None, dict, None), namespace=NAMESPACE
    )
    with pytest.raises(errors.DriverNotFound, match="is not a glance_store_ng.Store subclass"):
        check_driver("odd", manager)
    good = DriverManager.make_test_instance(
        Extension("file", None, FilesystemStore, None), namespace=NAMESPACE
    )
    assert check_driver("file", good) is FilesystemStore


def test_registry_names_the_package_of_a_missing_client_library():
    from glance_store_ng.registry import _missing_package_hint

    assert "python-swiftclient" in _missing_package_hint(ModuleNotFoundError(name="swiftclient"))
    assert "python3-rbd" in _missing_package_hint(ModuleNotFoundError(name="rbd"))


def test_a_value_that_seems_to_hold_a_comment_is_refused(tmp_path):
    """oslo.config keeps '# ...' after a value as part of it; so do we, and say so."""
    config = tmp_path / "glance-api.conf"
    config.write_text(
        "[DEFAULT]\nenabled_backends = a:file\n[glance_store]\ndefault_backend = a\n"
        f"[a]\nfilesystem_store_datadir = {tmp_path}  # the images\n"
    )
    with pytest.raises(errors.ConfigError, match="seems to end with a comment") as caught:
        Stores.from_config(config)
    assert "filesystem_store_datadir" in str(caught.value)
    assert "on a line of its own" in str(caught.value)
    fine = open_store(
        "file", {"filesystem_store_datadir": str(tmp_path), "store_description": "Tier #1"}
    )
    assert fine.conf["store_description"] == "Tier #1"


def test_repr_masks_credentials_written_inside_a_url_option(tmp_path):
    class UrlStore(FilesystemStore):
        OPTIONS = FilesystemStore.OPTIONS + (Option("endpoint"), Option("note"))

    store = UrlStore(
        {
            "filesystem_store_datadir": str(tmp_path),
            "endpoint": "http://AKIA:wJalr/TOPSECRET@host:8080/v1",
            "note": "ask admin@example.com",
        }
    )
    assert "TOPSECRET" not in repr(store)
    assert "'endpoint': 'http://AKIA:***@host:8080/v1'" in repr(store)
    assert "ask admin@example.com" in repr(store)  # prose is not a URL


@pytest.mark.parametrize(
    "driver, options, fix",
    [
        ("s3", {"s3_store_host": "http://AKIA:TOPSECRET@127.0.0.1:8080",
                "s3_store_access_key": "a", "s3_store_secret_key": "b", "s3_store_bucket": "c"},
         "s3_store_access_key"),
        ("s3", {"s3_store_host": "AKIA:TOPSECRET@127.0.0.1:8080",
                "s3_store_access_key": "a", "s3_store_secret_key": "b", "s3_store_bucket": "c"},
         "s3_store_access_key"),
        ("swift", {"swift_store_auth_address": "http://u:TOPSECRET@127.0.0.1/auth/v1.0",
                   "swift_store_user": "u", "swift_store_key": "k"},
         "swift_store_key"),
        ("swift", {"swift_store_auth_address": "http://127.0.0.1/auth/v1.0",
                   "swift_store_endpoint": "http://u:TOPSECRET@127.0.0.1/v1/AUTH_x",
                   "swift_store_user": "u", "swift_store_key": "k"},
         "swift_store_endpoint"),
    ],
)  # fmt: skip
def test_credentials_inside_an_endpoint_url_are_refused_and_never_shown(
    driver, options, fix, caplog
):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.ConfigError) as caught:
        open_store(driver, options)
    message = str(caught.value)
    assert "TOPSECRET" not in message and "TOPSECRET" not in caplog.text
    assert "***" in message and fix in message


def test_credentials_in_a_swift_reference_auth_address_are_refused(tmp_path):
    references = tmp_path / "swift.conf"
    references.write_text(
        "[ref1]\nauth_address = http://u:TOPSECRET@127.0.0.1/auth/v1.0\nuser = u\nkey = k\n"
    )
    with pytest.raises(errors.ConfigError) as caught:
        open_store("swift", {"swift_store_config_file": str(references)})
    assert "TOPSECRET" not in str(caught.value) and "holds credentials" in str(caught.value)
