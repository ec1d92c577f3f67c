"""Location parsing and masking."""

from __future__ import annotations

import logging

import pytest

from glance_store_ng import errors, open_store
from glance_store_ng.locations import mask_uri, parse_location


@pytest.mark.parametrize(
    "uri, shown",
    [
        ("s3://AKIAEXAMPLE:wJalr/XUtnFEMI+K7MDENG@s3.example.com/bucket/img",
         "s3://AKIAEXAMPLE:***@s3.example.com/bucket/img"),
        ("swift+https://tenant:user:s3cr3t@keystone:5000/v3/glance/img",
         "swift+https://tenant:***@keystone:5000/v3/glance/img"),
        ("swift://justtoken@host/c/o", "swift://***@host/c/o"),
        ("https://h/o?temp_url_sig=abc123&temp_url_expires=1", "https://h/o?temp_url_sig=***&temp_url_expires=1"),
        ("file:///var/lib/glance/images/abc", "file:///var/lib/glance/images/abc"),
        ("file:///srv/user@host/images/abc", "file:///srv/user@host/images/abc"),
        ("rbd://fsid/images/abc/snap", "rbd://fsid/images/abc/snap"),
    ],
)  # fmt: skip
def test_masking(uri, shown):
    assert mask_uri(uri) == shown
    parsed = parse_location(uri)
    assert str(parsed) == shown and shown in repr(parsed) and parsed.uri == uri


def test_secret_never_reaches_errors_or_logs(tmp_path, caplog):
    store = open_store("file", {"filesystem_store_datadir": str(tmp_path)})
    uri = "s3://AKIAEXAMPLE:TOPSECRET@host/bucket/img"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.BadLocation) as caught:
        store.get(uri)
    assert "TOPSECRET" not in str(caught.value)
    assert "TOPSECRET" not in caplog.text


@pytest.mark.parametrize("bad", ["x" * 5000, "file:///a\nb", "no-scheme", "://x", None])
def test_parse_errors(bad):
    with pytest.raises(errors.BadLocation):
        parse_location(bad)
