"""Real S3 servers for the S3 driver's tests: Swift's s3api and Ceph's radosgw.

Both are started (or only probed, when they run) by tools/backends/backends.py,
through tests/real_backends.py; a server that cannot start FAILS the tests that
need it, with the script's message. Every test gets a bucket of its own with a
random name, removed afterwards with everything in it.

``backend_listing`` sees more than S3 shows: Swift's s3api keeps the parts of
multipart uploads as segments in a ``<bucket>+segments`` container (listed
through Swift's own API), radosgw keeps them as ``_multipart_`` entries in the
bucket index (listed with ``radosgw-admin bucket list``).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import real_backends
from botocore.config import Config
from botocore.exceptions import ClientError
from tcp_relay import Relay

from glance_store_ng.store import Orphan, Store
from glance_store_ng.testing import StoreFixture
from glance_store_ng.units import MiB

SERVERS = ("swift-s3api", "radosgw")


@dataclass
class S3Server:
    """One real S3 server and what the tests need to look inside it."""

    name: str
    env: dict[str, str]
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    _swift_auth: tuple[str, str] | None = field(default=None, repr=False)

    def client(self, **config: Any) -> Any:
        """A plain boto3 client (path-style, SigV4, no retries, no extra checksums)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                **config,
            ),
        )

    def options(self, bucket: str, **options: Any) -> dict[str, Any]:
        """Store options for ``bucket`` on this server; quick retries for tests."""
        return {
            "s3_store_host": self.endpoint,
            "s3_store_access_key": self.access_key,
            "s3_store_secret_key": self.secret_key,
            "s3_store_bucket": bucket,
            "s3_store_region_name": self.region,
            "s3_store_retry_backoff": 0.05,
            "s3_store_retry_max_backoff": 0.5,
            **options,
        }

    # -- what the server holds, S3 internals included --------------------------------------

    def internals(self, bucket: str) -> set[str]:
        """Segments or part objects the server keeps for ``bucket`` outside its S3 listing."""
        if self.name == "swift-s3api":
            return {f"segment:{name}" for name in self._swift_list(f"{bucket}+segments")}
        done = subprocess.run(
            [
                "radosgw-admin",
                "-c",
                self.env["GSN_CEPH_CONF"],
                "-n",
                "client.admin",
                "--keyring",
                self.env["GSN_CEPH_ADMIN_KEYRING"],
                "bucket",
                "list",
                f"--bucket={bucket}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            if "No such file" in done.stderr or "not found" in done.stderr.lower():
                return set()
            raise RuntimeError(f"radosgw-admin bucket list failed: {done.stderr.strip()}")
        return {f"index:{entry['name']}" for entry in json.loads(done.stdout or "[]")}

    def _swift_token(self) -> tuple[str, str]:
        if self._swift_auth is None:
            request = urllib.request.Request(
                self.env["GSN_SWIFT_AUTH_URL"],
                headers={
                    "X-Auth-User": self.env["GSN_SWIFT_USER"],
                    "X-Auth-Key": self.env["GSN_SWIFT_KEY"],
                },
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                self._swift_auth = (
                    answer.headers["X-Storage-Url"],
                    answer.headers["X-Auth-Token"],
                )
        return self._swift_auth

    def _swift_list(self, container: str) -> list[str]:
        url, token = self._swift_token()
        quoted = urllib.parse.quote(container, safe="")
        request = urllib.request.Request(
            f"{url}/{quoted}?format=json", headers={"X-Auth-Token": token}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return [item["name"] for item in json.loads(answer.read() or b"[]")]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise

    def listing(self, bucket: str, internals: bool = True) -> set[str]:
        """Every object, pending upload and part the server holds for ``bucket``.

        Without ``internals``, only what S3 shows (objects and pending uploads). (The
        test Swift deletes a multipart object's segments with the object: its SLO
        filter has ``allow_async_delete = false``, as it runs no object-expirer.)
        """
        client = self.client()
        found: set[str] = set()
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                found.update(f"object:{item['Key']}" for item in page.get("Contents", []))
            uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchBucket":
                return self.internals(bucket) if internals else set()
            raise
        found.update(f"upload:{u['Key']}:{u['UploadId']}" for u in uploads)
        return (found | self.internals(bucket)) if internals else found

    def pending_uploads(self, bucket: str) -> list[dict[str, Any]]:
        return self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])

    # -- buckets ---------------------------------------------------------------------------

    def create_bucket(self) -> str:
        bucket = f"gsn-test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def remove_bucket(self, bucket: str) -> None:
        """Abort its uploads, delete its objects, delete it (a missing bucket is fine)."""
        client = self.client()
        try:
            for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=bucket, Key=item["Key"])
            client.delete_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchBucket":
                raise


def server_named(name: str) -> S3Server:
    env = real_backends.swift_env() if name == "swift-s3api" else real_backends.ceph_env()
    if name == "swift-s3api":
        keys = ("GSN_S3_ENDPOINT", "GSN_S3_ACCESS_KEY", "GSN_S3_SECRET_KEY", "GSN_S3_REGION")
    else:
        keys = ("GSN_RGW_ENDPOINT", "GSN_RGW_ACCESS_KEY", "GSN_RGW_SECRET_KEY", "GSN_RGW_REGION")
    missing = [key for key in keys if not env.get(key)]
    if missing:
        pytest.fail(f"the {name} test server's env lacks {', '.join(missing)}", pytrace=False)
    endpoint, access, secret, region = (env[key] for key in keys)
    return S3Server(name, env, endpoint, access, secret, region or "us-east-1")


@pytest.fixture(scope="session", params=SERVERS)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Each real S3 server in turn."""
    return server_named(request.param)


@pytest.fixture
def bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh bucket, removed with its contents after the test."""
    name = s3_server.create_bucket()
    yield name
    s3_server.remove_bucket(name)


class S3Fixture(StoreFixture):
    """The shipped suites' fixture: stores on a fresh bucket of each real server."""

    @pytest.fixture
    def make_store(self, s3_server: S3Server, bucket: str) -> Iterator[Callable[..., Store]]:
        self.server, self.bucket = s3_server, bucket
        yield from self.store_factory()

    store_options: dict[str, Any] = {}
    # Killed adds: an image of unknown size in 5 MiB parts whose source stalls after
    # 11 MiB: parts 1 and 2 are sent, the last MiB waits for the image's end.
    orphan_options = {"s3_store_large_object_chunk_size": 5}
    orphan_sent = 11 * MiB
    orphan_written = 10 * MiB

    def open_store_args(self, **options: Any) -> tuple[str, dict[str, Any]]:
        return "s3", self.server.options(self.bucket, **{**self.store_options, **options})

    def backend_listing(self, store: Store) -> set[str]:
        return self.server.listing(store.bucket)

    def damage(self, store: Store, location: str, offset: int) -> None:
        """The object overwritten with other bytes (one bit flipped), by a plain PUT."""
        key = location.rsplit("/", 1)[1]
        client = self.server.client()
        body = bytearray(client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
        body[offset] ^= 0x10
        client.put_object(Bucket=store.bucket, Key=key, Body=bytes(body))

    commit_kill_point = ("glance_store_ng.drivers.s3.orphans:AddMark.remove", "before")

    def orphan_of(self, store: Store, image_id: str) -> Orphan | None:
        """The add, found by its mark ``.glance-store-ng-adding/<id>/<token>``, named
        ``s3://host/bucket/<id>?adding=<token>``, sized by the parts of its pending multipart
        upload (0 before it started one); None once it completed (its mark is gone)."""
        client = self.server.client()
        marks = client.list_objects_v2(
            Bucket=store.bucket, Prefix=f".glance-store-ng-adding/{image_id}/"
        ).get("Contents", [])
        if not marks:
            return None
        [mark] = marks
        token = mark["Key"].rsplit("/", 1)[1]
        size = 0
        uploads = [u for u in self.server.pending_uploads(store.bucket) if u["Key"] == image_id]
        if uploads:
            [upload] = uploads
            parts = client.list_parts(
                Bucket=store.bucket, Key=image_id, UploadId=upload["UploadId"]
            )
            size = sum(part["Size"] for part in parts.get("Parts", []))
        return Orphan(f"{store.uri_of(image_id)}?adding={token}", size, 0.0)


# -- a TCP relay between the driver and a real server, to cut the line (tests/tcp_relay.py) --


@pytest.fixture
def relay(s3_server: S3Server) -> Iterator[Relay]:
    relay = Relay(s3_server.endpoint)
    yield relay
    relay.stop()
