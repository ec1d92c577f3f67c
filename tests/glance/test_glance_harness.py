"""The Glance harness runs a real Glance 33 that really works, shown with glance_store's
own ``file`` backends only (no code of this project in the data path).

Through python-glanceclient (chunked uploads, imports) and raw HTTP (known-size
uploads, ranged downloads): upload, download, checksums against hashlib, ``stores``,
copy-image between two backends, glance-direct and web-download imports, delete; and
a legacy single-store Glance (no ``enabled_backends``) with this checkout installed
beside it, restarted as multi-store over the same data.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from glance_testing import (
    REPO,
    SIZE,
    Backend,
    GlanceConfig,
    GlanceError,
    GlanceServer,
    MiB,
    assert_image,
    datadir_of,
    file_backend,
    payload,
    serve_bytes,
)


def assert_stored(server: GlanceServer, backend: str, image_id: str, data: bytes) -> None:
    """glance_store's file driver keeps the image as ``<datadir>/<id>``."""
    assert (datadir_of(server, backend) / image_id).read_bytes() == data


def new_image(client, name: str) -> str:
    return client.images.create(name=name, disk_format="raw", container_format="bare")["id"]


def test_chunked_upload_through_glanceclient(glance_file):
    data = payload(1)
    client = glance_file.client()
    image_id = new_image(client, "chunked")

    client.images.upload(image_id, io.BytesIO(data))  # no size: chunked transfer

    assert_image(client.images.get(image_id), data, "fast")
    assert b"".join(client.images.data(image_id)) == data
    assert_stored(glance_file, "fast", image_id, data)
    assert glance_file.download(image_id, 5, 100) == data[5:105]
    assert glance_file.download(image_id, SIZE - 10) == data[-10:]


def test_known_size_upload_to_a_named_store(glance_file):
    data = payload(2)
    client = glance_file.client()
    image_id = new_image(client, "known-size")

    glance_file.upload(image_id, io.BytesIO(data), size=len(data), store="slow")

    assert_image(glance_file.image(image_id), data, "slow")
    assert glance_file.download(image_id) == data
    assert glance_file.download(image_id, MiB - 3, MiB + 6) == data[MiB - 3 : 2 * MiB + 3]
    assert_stored(glance_file, "slow", image_id, data)
    assert not (datadir_of(glance_file, "fast") / image_id).exists()


def test_copy_image_import_between_backends_then_delete(glance_file):
    data = payload(3)
    client = glance_file.client()
    image_id = new_image(client, "copy")
    glance_file.upload(image_id, data, store="fast")

    client.images.image_import(image_id, method="copy-image", stores=["slow"])

    image = glance_file.wait_for_stores(image_id, {"fast", "slow"})
    assert_image(image, data, "fast,slow")
    assert_stored(glance_file, "slow", image_id, data)
    assert glance_file.download(image_id) == data

    client.images.delete(image_id)
    assert glance_file.request("GET", f"/v2/images/{image_id}").status == 404
    for backend in ("fast", "slow"):
        assert not (datadir_of(glance_file, backend) / image_id).exists()


def test_glance_direct_import(glance_file):
    data = payload(4)
    client = glance_file.client()
    image_id = new_image(client, "glance-direct")

    client.images.stage(image_id, io.BytesIO(data))
    assert client.images.get(image_id)["status"] == "uploading"
    client.images.image_import(image_id, method="glance-direct", stores=["slow"])

    image = glance_file.wait_for_stores(image_id, {"slow"})
    assert_image(image, data, "slow")
    assert_stored(glance_file, "slow", image_id, data)
    assert glance_file.download(image_id) == data


def test_web_download_import(glance_file):
    data = payload(5)
    client = glance_file.client()
    image_id = new_image(client, "web-download")

    with serve_bytes(data) as url:
        client.images.image_import(image_id, method="web-download", uri=url, stores=["fast"])
        image = glance_file.wait_for_stores(image_id, {"fast"})

    assert_image(image, data, "fast")
    assert_stored(glance_file, "fast", image_id, data)
    assert glance_file.download(image_id) == data


def test_delete_removes_the_file(glance_file):
    data = payload(6, MiB)
    image_id = glance_file.create_image("delete")["id"]
    glance_file.upload(image_id, data)
    path = datadir_of(glance_file, "fast") / image_id
    assert path.exists()

    glance_file.client().images.delete(image_id)

    assert not path.exists()
    assert glance_file.request("GET", f"/v2/images/{image_id}/file").status == 404


def test_stores_lists_the_backends(glance_file):
    stores = glance_file.request_json("GET", "/v2/info/stores")["stores"]
    assert sorted(s["id"] for s in stores) == ["fast", "slow"]
    assert [s["id"] for s in stores if s.get("default")] == ["fast"]  # Glance says "true"


def installed_distribution(python: str) -> dict:
    """Where the Glance venv's python finds glance_store_ng, and its entry points."""
    code = (
        "import json, importlib.metadata as md, glance_store_ng;"
        "d = md.distribution('glance_store_ng');"
        "print(json.dumps({'file': glance_store_ng.__file__,"
        " 'groups': sorted({e.group for e in d.entry_points})}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_legacy_single_store_glance_then_multi_store(glance_servers, glance_venv, tmp_path):
    installed = installed_distribution(glance_venv["python"])
    assert Path(installed["file"]).is_relative_to(REPO)
    assert "glance_store_ng.drivers" in installed["groups"]
    datadir = tmp_path / "images"
    legacy = GlanceConfig(
        store_options={
            "stores": "file",
            "default_store": "file",
            "filesystem_store_datadir": str(datadir),
        }
    )
    server = glance_servers.start("legacy", legacy)
    try:
        data = payload(7)
        image_id = server.create_image("legacy")["id"]
        server.upload(image_id, data)
        assert_image(server.image(image_id), data, stores=None)
        assert (datadir / image_id).read_bytes() == data
        assert server.download(image_id, 7, 7) == data[7:14]

        # Glance's own upgrade path: the same folder as a named backend.
        stats = server.restart(GlanceConfig(backends={"fast": file_backend(datadir)}))
        assert stats.peak_rss > 32 * MiB  # glance-api's worker was measured

        assert_image(server.image(image_id), data, "fast")
        assert server.download(image_id) == data
        server.client().images.delete(image_id)
        assert not (datadir / image_id).exists()
    finally:
        server.close()


def test_a_glance_that_cannot_start_is_an_error_with_its_log(glance_venv, tmp_path):
    config = GlanceConfig(backends={"fast": Backend("gsn_no_such_driver", {})})
    server = GlanceServer(glance_venv, tmp_path, config)
    try:
        with pytest.raises(GlanceError) as failure:
            server.start()
    finally:
        server.close()
    message = str(failure.value)
    assert f"last lines of {server.log_path}" in message
    assert not server.running
