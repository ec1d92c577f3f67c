"""Fixtures of the RBD driver's tests: the real single-node Ceph, a namespace per run.

The cluster is started by tools/backends through the ``ceph_env`` fixture of
tests/conftest.py (tests/real_backends.py): a cluster that cannot start FAILS the
tests, never skips them. Debian's rbd/rados modules are made importable from this
Python on the way (``link_ceph_python``), as a fresh CI machine needs. Every run
works in a RADOS namespace of its own in the ``images`` pool, removed at the end.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from rbd_testing import opened_ioctx, remove_images


@pytest.fixture(scope="session")
def cluster(ceph_env) -> Iterator[Any]:
    """A plain rados connection as the store's user, for looking behind the driver's back."""
    import rados

    client = rados.Rados(conffile=ceph_env["GSN_CEPH_CONF"], rados_id=ceph_env["GSN_CEPH_USER"])
    client.connect()
    yield client
    client.shutdown()


@pytest.fixture(scope="session")
def namespace(ceph_env, cluster) -> Iterator[str]:
    """A RADOS namespace of this run; whatever a test leaves there is removed at the end."""
    import rbd

    name = f"gsn-test-{secrets.token_hex(4)}"
    with opened_ioctx(cluster, ceph_env["GSN_CEPH_POOL"]) as ioctx:
        rbd.RBD().namespace_create(ioctx, name)
    yield name
    with opened_ioctx(cluster, ceph_env["GSN_CEPH_POOL"], name) as ioctx:
        leftovers = remove_images(ioctx)
        ioctx.set_namespace("")
        rbd.RBD().namespace_remove(ioctx, name)
    assert not leftovers, f"tests left RBD images behind: {leftovers}"
