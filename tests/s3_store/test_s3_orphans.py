"""gc of the S3 store: multipart uploads that adds killed mid-upload left on the real servers.

A killed add cannot abort its upload; the server keeps the parts until someone
does. ``find_orphans`` must list such uploads (with the bytes they hold) once
they are idle long enough, never a committed image, a running add's upload or
someone else's upload, and ``remove_orphan`` must abort exactly the one named.
The killed-add flow is the shared one (:class:`~glance_store_ng.testing.OrphanTests`);
the tests below leave uploads with a plain client, as another add or tool would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import partial
from typing import Any

import pytest
from mark_testing import MarkRefreshTests
from s3_testing import S3Fixture, S3Server

from glance_store_ng import errors, open_store
from glance_store_ng.store import Orphan, Store
from glance_store_ng.testing import OrphanTests
from glance_store_ng.testing.conformance import new_id, random_bytes
from glance_store_ng.units import MiB


def make_store(server: S3Server, bucket: str, **options: Any) -> Store:
    return open_store("s3", server.options(bucket, **options))


def leave_upload(server: S3Server, bucket: str, key: str, *part_sizes: int) -> str:
    """Start an upload of ``key`` and send parts of these sizes, as an add killed then would."""
    client = server.client()
    upload_id = client.create_multipart_upload(
        Bucket=bucket, Key=key, Metadata={"glance-store-ng-add": "killed"}
    )["UploadId"]
    for number, size in enumerate(part_sizes, 1):
        client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(size)
        )
    return upload_id


class TestS3Orphans(MarkRefreshTests, OrphanTests, S3Fixture):
    """An add killed mid-upload, on each real server: its upload is found, sized by its
    parts, and aborted; the name holds no credentials."""


def test_committed_images_and_others_uploads_are_never_listed(s3_server, bucket):
    store = make_store(s3_server, bucket, s3_store_large_object_chunk_size=5)
    small = store.add(new_id(), b"small image")
    large = store.add(new_id(), random_bytes(11 * MiB, seed=1))  # a completed multipart upload
    leave_upload(s3_server, bucket, "backups/disk.img", 1000)  # not a key this store writes
    abandoned = new_id()
    upload_id = leave_upload(s3_server, bucket, abandoned, 1000, 234)

    orphans = store.find_orphans(older_than=0)
    assert [(o.name, o.size) for o in orphans] == [
        (f"{store.uri_of(abandoned)}?uploadId={upload_id}", 1234)
    ]
    store.remove_orphan(orphans[0])
    assert store.find_orphans(older_than=0) == []
    assert [u["Key"] for u in s3_server.pending_uploads(bucket)] == ["backups/disk.img"]
    store.remove_orphan(orphans[0])  # already gone: not an error
    assert store.get_size(small.location) == len(b"small image")
    assert store.get_size(large.location) == 11 * MiB


def test_every_page_of_uploads_and_parts_is_read(s3_server, bucket, monkeypatch):
    store = make_store(s3_server, bucket)
    keys = sorted(new_id() for _ in range(3))
    ids = {key: leave_upload(s3_server, bucket, key, 100, 20, 3) for key in keys}
    ids[keys[0] + "-again"] = leave_upload(s3_server, bucket, keys[0], 7)  # two uploads, one key
    # Pages of 2 uploads and of 1 part, from the real server.
    client = store.client
    monkeypatch.setattr(
        client, "list_multipart_uploads", partial(client.list_multipart_uploads, MaxUploads=2)
    )
    monkeypatch.setattr(client, "list_parts", partial(client.list_parts, MaxParts=1))

    orphans = store.find_orphans(older_than=0)
    assert sorted((o.name, o.size) for o in orphans) == sorted(
        [(f"{store.uri_of(key)}?uploadId={ids[key]}", 123) for key in keys]
        + [(f"{store.uri_of(keys[0])}?uploadId={ids[keys[0] + '-again']}", 7)]
    )


@pytest.mark.parametrize(
    "name",
    [
        "nonsense",
        "",
        "{uri}",  # an image, not an upload
        "{uri}?uploadId=",
        "{uri}?uploadId=has space",
        "{uri}?partNumber=1",
        "{root}dir/disk.img?uploadId=abc",  # not a key this store writes
        "{root}../x?uploadId=abc",
        "s3://elsewhere:8080/{bucket}/{id}?uploadId=abc",
        "s3://{host}/other-bucket/{id}?uploadId=abc",
        "s3://AKIAKEY:{secret}@{host}/{bucket}/{id}?uploadId=abc",
        "/tmp/.{id}.beef.partial",  # the file store's kind of orphan
    ],
)
def test_remove_orphan_refuses_names_this_store_does_not_make(s3_server, bucket, name):
    store = make_store(s3_server, bucket)
    image_id = new_id()
    upload_id = leave_upload(s3_server, bucket, image_id, 10)
    name = name.format(
        uri=store.uri_of(image_id),
        root=store.uri_of(""),
        bucket=bucket,
        id=image_id,
        host=store.service,
        secret=s3_server.secret_key,
    )
    with pytest.raises(errors.BadLocation, match="is not a multipart upload of this store") as err:
        store.remove_orphan(Orphan(name, 0, 0.0))
    assert s3_server.secret_key not in str(err.value)
    assert [u["UploadId"] for u in s3_server.pending_uploads(bucket)] == [upload_id]


def test_gc_command_lists_then_aborts_abandoned_uploads(s3_server, bucket, tmp_path):
    exe = shutil.which("glance-store-ng", path=os.path.dirname(sys.executable))
    assert exe, "glance-store-ng is not installed beside the test interpreter"
    options = s3_server.options(bucket)
    conf = tmp_path / "glance-api.conf"
    conf.write_text(
        "[DEFAULT]\nenabled_backends = cold:s3\n\n[glance_store]\ndefault_backend = cold\n\n"
        "[cold]\n" + "".join(f"{key} = {value}\n" for key, value in options.items())
    )
    image_id = new_id()
    upload_id = leave_upload(s3_server, bucket, image_id, 4096)
    name = f"{make_store(s3_server, bucket).uri_of(image_id)}?uploadId={upload_id}"

    def gc(*args: str) -> str:
        done = subprocess.run(
            [exe, "--config", str(conf), "gc", *args], capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode()
        assert s3_server.secret_key.encode() not in done.stdout + done.stderr
        return done.stdout.decode()

    said = gc()  # younger than the default hour: counted, left alone
    assert "no orphans to remove; 1 younger orphan left alone" in said
    assert f"would remove {name} (4096 bytes, 0.0 h old) from cold" in gc(
        "--older-than", "0", "--dry-run"
    )
    assert len(s3_server.pending_uploads(bucket)) == 1
    assert f"removed {name} (4096 bytes" in gc("--older-than", "0")
    assert s3_server.pending_uploads(bucket) == []


def test_a_checksum_probe_left_by_a_killed_add_is_an_orphan(s3_server, bucket):
    """A store's first add PUTs a probe (a server that ignores CRCs keeps it until the add
    removes it): one an add killed meanwhile left is listed and removed by gc."""
    store = open_store("s3", s3_server.options(bucket))
    key = ".glance-store-ng-checksum-probe-0123456789abcdef"
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=b"probe")
    assert store.find_orphans(older_than=3600) == []
    [orphan] = store.find_orphans(older_than=0)
    assert (orphan.name, orphan.size) == (store.uri_of(key), 5)
    store.remove_orphan(orphan)
    store.remove_orphan(orphan)  # gone already: nothing to do
    assert s3_server.listing(bucket) == set() and store.find_orphans(older_than=0) == []
    store.close()
