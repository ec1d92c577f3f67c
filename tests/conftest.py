"""Shared fixtures of the project's own tests: the real test servers (see real_backends.py)."""

import pytest
import real_backends


@pytest.fixture(scope="session")
def swift_env() -> dict[str, str]:
    """The running Swift all-in-one's env (GSN_SWIFT_AUTH_URL, _USER, _KEY, _STORAGE_URL)."""
    return real_backends.swift_env()


@pytest.fixture(scope="session")
def ceph_env() -> dict[str, str]:
    """The running single-node Ceph's env, with python3-rbd importable from this Python."""
    return real_backends.ceph_env(rbd=True)


@pytest.fixture(scope="session")
def keystone_env() -> dict[str, str]:
    """Keystone (GSN_KEYSTONE_*) and the Swift behind it (GSN_SWIFT_KS_*), running."""
    return real_backends.keystone_env()
