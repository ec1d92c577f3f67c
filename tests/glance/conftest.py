"""Fixtures of the Glance tests (defined in glance_testing.py): the Glance venv, a
factory of running Glances, and a Glance with two builtin file backends. A failing
test that used a Glance shows the end of that Glance's log."""

import pytest
from glance_testing import GlanceServer, glance_file, glance_servers, glance_venv  # noqa: F401


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, GlanceServer):
                report.sections.append((f"glance-api log ({name})", value.log_tail(80)))
    return report
