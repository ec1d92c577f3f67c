"""Fixtures of the Glance tests (defined in glance_testing.py): the Glance venv, a
factory of running Glances, and a Glance with two builtin file backends."""

from glance_testing import glance_file, glance_servers, glance_venv  # noqa: F401
