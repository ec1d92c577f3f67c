"""Fixtures of the Swift driver's tests: the real Swift all-in-one, random containers, cleanup.

The server is started through tools/backends/backends.py by the ``swift_env``
fixture of tests/conftest.py (tests/real_backends.py). A server that cannot
start FAILS the tests with the script's message; nothing is skipped. Each
fixture uses containers named ``gsn-test-<random>`` and removes them, with
everything in them, at the end.
Listings and cleanup go through swiftclient directly, not through the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import swiftclient
from swift_testing import random_container, remove_containers, swift_options

from glance_store_ng import open_store
from glance_store_ng.store import Store


@pytest.fixture(scope="session")
def admin(swift_env) -> swiftclient.Connection:
    """A plain swiftclient connection, to look at the backend independently of the driver."""
    conn = swiftclient.Connection(
        swift_env["GSN_SWIFT_AUTH_URL"],
        swift_env["GSN_SWIFT_USER"],
        swift_env["GSN_SWIFT_KEY"],
        auth_version="1",
        retries=2,
    )
    yield conn
    conn.close()


@pytest.fixture
def container(admin) -> Iterator[str]:
    """A random container name; it and its siblings (``_segments``, seeds) are removed after."""
    name = random_container()
    yield name
    remove_containers(admin, name)


@pytest.fixture
def swift_store(swift_env, container) -> Iterator[Callable[..., Store]]:
    """``swift_store(**options)``: a Swift store on the test container."""
    stores = []

    def make(**options) -> Store:
        store = open_store("swift", swift_options(swift_env, container, **options))
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
