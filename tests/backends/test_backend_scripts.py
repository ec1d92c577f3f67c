"""The scripts in tools/backends start real servers that really work.

Each test starts its backend through tools/backends/backends.py (a no-op probe when
it already runs) and talks to it as a client would. Names are random and
everything a test creates is removed. A backend that cannot be started makes the
test FAIL with the script's message (never a skip: a skipped conformance run
would look green).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import real_backends

TOOLS = real_backends.TOOLS
backends = real_backends.backends_module()
common = real_backends.tool_module("_backends_common")  # its stdlib SigV4 signer, without boto3
backend_env = real_backends.backend_env

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:  # the checks then go through the stdlib signer
    boto3 = None


def rand(prefix: str = "gsn-test") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


# --------------------------------------------------------------------------- Swift


def http(method: str, url: str, headers: dict | None = None, data: bytes | None = None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def swift_auth(env: dict) -> tuple[str, str]:
    status, headers, _ = http(
        "GET",
        env["GSN_SWIFT_AUTH_URL"],
        {"X-Auth-User": env["GSN_SWIFT_USER"], "X-Auth-Key": env["GSN_SWIFT_KEY"]},
    )
    assert status == 200, f"auth v1 answered {status}"
    return headers["X-Storage-Url"], headers["X-Auth-Token"]


def test_swift_auth_v1_and_object_roundtrip():
    env = backend_env("swift")
    url, token = swift_auth(env)
    assert url == env["GSN_SWIFT_STORAGE_URL"]
    auth = {"X-Auth-Token": token}
    container, obj = rand(), rand("obj")
    data = os.urandom(300_000)
    status, _, _ = http("PUT", f"{url}/{container}", auth)
    assert status in (201, 202)
    try:
        status, headers, _ = http("PUT", f"{url}/{container}/{obj}", auth, data)
        assert status == 201
        assert headers["Etag"] == hashlib.md5(data).hexdigest()
        status, headers, body = http("GET", f"{url}/{container}/{obj}", auth)
        assert status == 200 and body == data
        # A corrupted upload is refused (the server checks the ETag it is given).
        status, _, _ = http("PUT", f"{url}/{container}/bad", {**auth, "ETag": "0" * 32}, data)
        assert status == 422
        status, _, _ = http("DELETE", f"{url}/{container}/{obj}", auth)
        assert status == 204
        status, _, _ = http("GET", f"{url}/{container}/{obj}", auth)
        assert status == 404
    finally:
        http("DELETE", f"{url}/{container}/{obj}", auth)
        status, _, _ = http("DELETE", f"{url}/{container}", auth)
    assert status == 204


def test_swift_refuses_a_wrong_key_and_a_bad_token():
    env = backend_env("swift")
    status, _, _ = http(
        "GET",
        env["GSN_SWIFT_AUTH_URL"],
        {"X-Auth-User": env["GSN_SWIFT_USER"], "X-Auth-Key": "wrong"},
    )
    assert status == 401
    status, _, _ = http("GET", env["GSN_SWIFT_STORAGE_URL"], {"X-Auth-Token": "AUTH_tkbogus"})
    assert status == 401


def test_swift_keeps_3600_bytes_of_object_metadata():
    """Metadata lives in xattrs: on ext4 over ~3 KB fails with 503 (notes/swift-aio.md),
    so the script puts the storage on tmpfs; Swift's own cap is 4096 bytes."""
    env = backend_env("swift")
    url, token = swift_auth(env)
    auth = {"X-Auth-Token": token}
    container, obj = rand(), rand("obj")
    meta = {f"X-Object-Meta-K{i:02d}": secrets.token_hex(120) for i in range(15)}  # 15 x 240 B
    assert http("PUT", f"{url}/{container}", auth)[0] in (201, 202)
    try:
        status, _, _ = http("PUT", f"{url}/{container}/{obj}", {**auth, **meta}, b"x")
        assert status == 201
        status, headers, _ = http("HEAD", f"{url}/{container}/{obj}", auth)
        assert status == 200
        got = {k.lower(): v for k, v in headers.items()}
        assert all(got[k.lower()] == v for k, v in meta.items())
    finally:
        http("DELETE", f"{url}/{container}/{obj}", auth)
        http("DELETE", f"{url}/{container}", auth)


# --------------------------------------------------------------------------- S3 (s3api, radosgw)


def s3_roundtrip(endpoint: str, access: str, secret: str, region: str) -> None:
    """Bucket create, put/get, a wrong Content-MD5 refused with BadDigest, a wrong
    secret refused, delete: the server really checks what it is sent."""
    bucket, key = rand(), rand("obj")
    data = os.urandom(200_000)
    bad_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    if boto3 is not None:

        def client(secret_key):
            return boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=access,
                aws_secret_access_key=secret_key,
                region_name=region,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 1},
                ),
            )

        s3 = client(secret)
        s3.create_bucket(Bucket=bucket)
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
            with pytest.raises(ClientError) as err:
                s3.put_object(Bucket=bucket, Key=rand("bad"), Body=data, ContentMD5=bad_md5)
            assert err.value.response["Error"]["Code"] == "BadDigest"
            with pytest.raises(ClientError) as err:
                client(secret + "x").get_object(Bucket=bucket, Key=key)
            assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
            assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
            s3.delete_object(Bucket=bucket, Key=key)
        finally:
            for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=o["Key"])
            s3.delete_bucket(Bucket=bucket)
        return

    def req(method, path, body=b"", headers=None, secret_key=secret):
        return common.s3_signed_request(
            endpoint, access, secret_key, region, method, path, body, 30, headers
        )

    assert req("PUT", f"/{bucket}")[0] == 200
    try:
        assert req("PUT", f"/{bucket}/{key}", data)[0] == 200
        status, _, body = req("GET", f"/{bucket}/{key}")
        assert status == 200 and body == data
        status, _, body = req("PUT", f"/{bucket}/{rand('bad')}", data, {"Content-MD5": bad_md5})
        assert status == 400 and b"BadDigest" in body
        status, _, body = req("GET", f"/{bucket}/{key}", secret_key=secret + "x")
        assert status == 403 and b"SignatureDoesNotMatch" in body
        assert req("DELETE", f"/{bucket}/{key}")[0] == 204
    finally:
        req("DELETE", f"/{bucket}/{key}")
        assert req("DELETE", f"/{bucket}")[0] == 204


def test_s3api_on_swift():
    env = backend_env("swift")
    s3_roundtrip(
        env["GSN_S3_ENDPOINT"],
        env["GSN_S3_ACCESS_KEY"],
        env["GSN_S3_SECRET_KEY"],
        env["GSN_S3_REGION"],
    )


def test_radosgw_s3():
    env = backend_env("ceph")
    assert "GSN_RGW_ENDPOINT" in env, "the Ceph cluster runs without radosgw"
    s3_roundtrip(
        env["GSN_RGW_ENDPOINT"],
        env["GSN_RGW_ACCESS_KEY"],
        env["GSN_RGW_SECRET_KEY"],
        env["GSN_RGW_REGION"],
    )


# --------------------------------------------------------------------------- Ceph RBD


def run(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    if check:
        assert res.returncode == 0, f"{argv} exited {res.returncode}:\n{res.stdout}{res.stderr}"
    return res


def test_rbd_image_as_client_glance_with_the_cli():
    env = backend_env("ceph")
    as_glance = [
        "-c",
        env["GSN_CEPH_CONF"],
        "--id",
        env["GSN_CEPH_USER"],
        "--keyring",
        env["GSN_CEPH_KEYRING"],
    ]
    image = f"{env['GSN_CEPH_POOL']}/{rand('img')}"
    run(["rbd", *as_glance, "create", image, "--size", "16M", "--image-feature", "layering"])
    try:
        info = json.loads(run(["rbd", *as_glance, "info", image, "--format", "json"]).stdout)
        assert info["size"] == 16 * 1024**2
        listed = run(["rbd", *as_glance, "ls", env["GSN_CEPH_POOL"]]).stdout.split()
        assert image.split("/")[1] in listed
    finally:
        run(["rbd", *as_glance, "rm", "--no-progress", image])
    assert image.split("/")[1] not in run(["rbd", *as_glance, "ls", env["GSN_CEPH_POOL"]]).stdout
    # The glance key is confined to its pool: it may not create pools.
    denied = run(["ceph", *as_glance, "osd", "pool", "create", rand("pool"), "8"], check=False)
    assert denied.returncode != 0 and "denied" in (denied.stdout + denied.stderr).lower()


RBD_SCRIPT = textwrap.dedent("""
    import os, sys, rados, rbd
    conf, user, keyring, pool, name = sys.argv[1:6]
    with rados.Rados(conffile=conf, rados_id=user, conf={"keyring": keyring}) as cluster:
        with cluster.open_ioctx(pool) as ioctx:
            rbd.RBD().create(ioctx, name, 8 << 20, old_format=False,
                             features=rbd.RBD_FEATURE_LAYERING)
            try:
                data = os.urandom(1 << 20)
                with rbd.Image(ioctx, name) as image:
                    image.write(data, 4 << 20)
                    image.create_snap("snap")
                    image.protect_snap("snap")
                with rbd.Image(ioctx, name, snapshot="snap", read_only=True) as snap:
                    assert snap.read(4 << 20, 1 << 20) == data
                    assert snap.read(0, 4096) == bytes(4096)
                with rbd.Image(ioctx, name) as image:
                    image.unprotect_snap("snap")
                    image.remove_snap("snap")
            finally:
                rbd.RBD().remove(ioctx, name)
            assert name not in rbd.RBD().list(ioctx)
    print("ok")
""")


def test_rbd_python_bindings_through_link_python(tmp_path):
    """`ceph link-python` makes Debian's rbd/rados importable from a fresh venv."""
    env = backend_env("ceph")
    venv = tmp_path / "venv"
    run(
        [getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)]
    )
    python = venv / "bin" / "python"
    assert run([str(python), "-c", "import rbd"], check=False).returncode != 0
    backends.link_ceph_python(python)
    res = run(
        [
            str(python),
            "-c",
            RBD_SCRIPT,
            env["GSN_CEPH_CONF"],
            env["GSN_CEPH_USER"],
            env["GSN_CEPH_KEYRING"],
            env["GSN_CEPH_POOL"],
            rand("img"),
        ]
    )
    assert res.stdout.strip() == "ok"


# --------------------------------------------------------------------------- the scripts


@pytest.mark.parametrize("name", ["swift", "ceph"])
def test_start_again_is_harmless_and_env_matches(name):
    env = backend_env(name)
    script = TOOLS / name
    res = run([sys.executable, str(script), "start"])
    assert "already running" in res.stderr
    assert backends.env_of(script) == env
    run_dir = Path(env[f"GSN_{name.upper()}_RUN_DIR"])
    assert json.loads((run_dir / "env.json").read_text()) == env
    sourced = run(["bash", "-c", f"set -a; . {run_dir / 'env'}; env"]).stdout
    for k, v in env.items():
        assert f"{k}={v}\n" in sourced
    assert run([sys.executable, str(script), "status"]).returncode == 0
