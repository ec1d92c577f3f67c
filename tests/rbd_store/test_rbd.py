"""What is particular to the RBD driver, against the real single-node Ceph."""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from rbd_testing import allocated_bytes, listing, opened_ioctx, store_options

from glance_store_ng import errors, open_store
from glance_store_ng.testing.conformance import mostly_zero, new_id, random_bytes
from glance_store_ng.units import MiB


@pytest.fixture
def store(ceph_env, namespace):
    store = open_store(
        "rbd", store_options(ceph_env, rbd_store_namespace=namespace, rbd_store_chunk_size=1)
    )
    yield store
    store.close()


def rbd_image(cluster, store, image_id, snapshot=None):
    import rbd

    ioctx = cluster.open_ioctx(store.pool)
    ioctx.set_namespace(store.namespace)
    return ioctx, rbd.Image(ioctx, image_id, snapshot=snapshot, read_only=True)


def test_512_mib_image_75_percent_zero_stays_thin(store, cluster):
    """Zero blocks (here whole 1 MiB objects) are never written; reads are byte-equal."""
    data = mostly_zero(512 * MiB, block=MiB, seed=21)
    data_blocks = sum(1 for o in range(0, len(data), MiB) if any(data[o : o + MiB]))
    result = store.add(new_id(), io.BytesIO(data), len(data))
    try:
        assert result.zero_bytes == len(data) - data_blocks * MiB
        allocated = allocated_bytes(cluster, store, result.location)
        assert allocated <= 0.30 * len(data)
        assert allocated == data_blocks * MiB
        objects = {o for o in listing(cluster, store.pool, store.namespace) if "rbd_data." in o}
        assert len(objects) == data_blocks  # not one RADOS object for a zero block
        digest = hashlib.sha256()
        with store.get(result.location) as reader:
            for chunk in reader:
                digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
        for offset, length in [(MiB - 1, 2), (3 * MiB - 5, 2 * MiB + 10), (0, 5 * MiB + 3)]:
            with store.get(result.location, offset, length) as reader:
                assert b"".join(reader) == data[offset : offset + length]
    finally:
        store.delete(result.location)


def test_add_makes_a_protected_snapshot_of_a_layered_format_2_image(store, cluster):
    import rbd

    data = random_bytes(3 * MiB + 17, seed=22)
    image_id = new_id()
    result = store.add(image_id, data)
    fsid = cluster.get_fsid()
    assert result.location == f"rbd://{fsid}/{store.pool}/{store.namespace}/{image_id}/snap"
    ioctx, image = rbd_image(cluster, store, image_id)
    try:
        assert image.old_format() is False
        assert image.features() == rbd.RBD_FEATURE_LAYERING
        assert image.stat()["order"] == 20  # rbd_store_chunk_size = 1 (MiB)
        assert [s["name"] for s in image.list_snaps()] == ["snap"]
        assert image.is_protected_snap("snap")
        assert image.size() == len(data)
    finally:
        image.close()
        ioctx.close()
    store.delete(result.location)


@pytest.mark.parametrize("size", [None, 0])
def test_unknown_size_grows_then_trims_to_the_exact_size(store, cluster, size):
    data = random_bytes(70 * MiB + 123, seed=23)  # over the first growth step (64 MiB)
    pieces = (data[i : i + 999_999] for i in range(0, len(data), 999_999))
    result = store.add(new_id(), pieces, size)
    assert store.get_size(result.location) == len(data)
    with store.get(result.location, 70 * MiB - 7) as reader:
        assert b"".join(reader) == data[70 * MiB - 7 :]
    objects = {o for o in listing(cluster, store.pool, store.namespace) if "rbd_data." in o}
    assert len(objects) == 71  # nothing beyond the end
    store.delete(result.location)


def test_clone_in_use_refuses_delete_and_keeps_the_image(store, cluster):
    import rbd

    data = random_bytes(2 * MiB, seed=24)
    image_id, clone = new_id(), f"vm-disk-{new_id()}"
    result = store.add(image_id, data)
    with opened_ioctx(cluster, store.pool, store.namespace) as ioctx:
        rbd.RBD().clone(ioctx, image_id, "snap", ioctx, clone, features=rbd.RBD_FEATURE_LAYERING)
        try:
            with pytest.raises(errors.InUse, match=clone) as caught:
                store.delete(result.location)
            assert not caught.value.retryable
            with store.get(result.location) as reader:
                assert b"".join(reader) == data
            with rbd.Image(ioctx, image_id) as image:
                assert image.is_protected_snap("snap")
        finally:
            rbd.RBD().remove(ioctx, clone)
    store.delete(result.location)
    with pytest.raises(errors.NotFound):
        store.get_size(result.location)


def test_other_snapshot_refuses_delete(store, cluster):
    import rbd

    result = store.add(new_id(), b"kept")
    image_id = result.location.split("/")[-2]
    with opened_ioctx(cluster, store.pool, store.namespace) as ioctx:
        with rbd.Image(ioctx, image_id) as image:
            image.create_snap("backup")
        with pytest.raises(errors.InUse, match="backup"):
            store.delete(result.location)
        assert store.get_size(result.location) == 4
        with rbd.Image(ioctx, image_id) as image:
            image.remove_snap("backup")
    store.delete(result.location)


def test_half_deleted_image_without_snapshot_is_deletable(store, cluster):
    import rbd

    result = store.add(new_id(), b"half")
    image_id = result.location.split("/")[-2]
    with (
        opened_ioctx(cluster, store.pool, store.namespace) as ioctx,
        rbd.Image(ioctx, image_id) as image,
    ):
        image.unprotect_snap("snap")
        image.remove_snap("snap")
    store.delete(result.location)
    assert image_id not in str(listing(cluster, store.pool, store.namespace))


@pytest.mark.parametrize("size", [None, 40 * MiB])
def test_failing_source_leaves_no_image_in_the_pool(store, cluster, size):
    import rbd

    def source():
        yield random_bytes(20 * MiB, seed=25)
        yield bytes(5 * MiB)
        raise ConnectionResetError("client went away")

    before = listing(cluster, store.pool, store.namespace)
    image_id = new_id()
    with pytest.raises(ConnectionResetError):
        store.add(image_id, source(), size)
    assert listing(cluster, store.pool, store.namespace) == before
    with opened_ioctx(cluster, store.pool, store.namespace) as ioctx:
        assert image_id not in rbd.RBD().list(ioctx)


def test_existing_image_is_refused_and_kept(store, cluster):
    result = store.add(new_id(), b"first")
    image_id = result.location.split("/")[-2]
    with pytest.raises(errors.AlreadyExists):
        store.add(image_id, b"second, longer")
    with store.get(result.location) as reader:
        assert reader.read() == b"first"
    store.delete(result.location)


def test_thick_store_writes_every_block(ceph_env, namespace, cluster):
    store = open_store(
        "rbd",
        store_options(
            ceph_env,
            rbd_store_namespace=namespace,
            rbd_store_chunk_size=1,
            rbd_thin_provisioning=False,
        ),
    )
    data = bytes(3 * MiB) + b"x"
    result = store.add(new_id(), data)
    assert result.zero_bytes == 0
    assert allocated_bytes(cluster, store, result.location) == len(data)
    with store.get(result.location) as reader:
        assert reader.read() == data
    store.delete(result.location)
    store.close()


def test_one_connection_per_store_closed_cleanly(store):
    first = store.add(new_id(), b"a")
    client = store.cluster.client
    second = store.add(new_id(), b"b")
    assert store.cluster.client is client
    store.delete(first.location)
    store.close()
    assert client.state == "shutdown"
    store.delete(second.location)  # connects again


def test_locations(store, ceph_env, cluster):
    fsid = cluster.get_fsid()
    result = store.add(new_id(), b"legacy")
    image_id = result.location.split("/")[-2]
    # glance_store's oldest form names the image only: the store's pool and namespace.
    assert store.get_size(f"rbd://{image_id}") == 6
    pool, ns = store.pool, store.namespace
    for foreign in [
        f"rbd://{'0' * 8}-0000-0000-0000-{'0' * 12}/{pool}/{ns}/{image_id}/snap",
        f"rbd://{fsid}/other-pool/{ns}/{image_id}/snap",
        f"rbd://{fsid}/{pool}/{image_id}/snap",  # the default namespace is another root
        f"rbd://{fsid}/{pool}//{image_id}/snap",
        f"rbd://{fsid}/{pool}/{ns}/{image_id}",
        f"rbd://{fsid}/{pool}/{ns}/{image_id}%2F..%2Fx/snap",
        "rbd://",
    ]:
        assert not store.owns(foreign), foreign
        with pytest.raises(errors.BadLocation):
            store.get(foreign)
    store.delete(result.location)
    plain = open_store("rbd", store_options(ceph_env))
    try:
        assert plain.owns(f"rbd://{fsid}/{pool}/{image_id}/snap")
        assert not plain.owns(result.location)
    finally:
        plain.close()


def test_no_key_in_repr_location_errors_or_logs(store, ceph_env, caplog):
    key = next(
        line.split("=", 1)[1].strip()
        for line in Path(ceph_env["GSN_CEPH_KEYRING"]).read_text().splitlines()
        if line.strip().startswith("key")
    )
    caplog.set_level(logging.DEBUG)
    result = store.add(new_id(), b"secret")
    shown = [repr(store), result.location, repr(result)]
    for bad in ({"rbd_store_user": "nobody"}, {"rbd_store_pool": "no-such-pool"}):
        with pytest.raises(errors.ConfigError) as caught:
            open_store("rbd", store_options(ceph_env, **bad)).get_size("rbd://x")
        shown.append(str(caught.value))
    store.delete(result.location)
    shown.append(caplog.text)
    assert key and not any(key in text for text in shown)


def test_unreachable_cluster_is_backend_unavailable(ceph_env, tmp_path):
    conf = Path(ceph_env["GSN_CEPH_CONF"]).read_text()
    lines = [
        "mon host = 127.0.0.1:9" if line.startswith("mon host") else line
        for line in conf.splitlines()
    ]
    (tmp_path / "ceph.conf").write_text("\n".join(lines) + "\n")
    store = open_store(
        "rbd",
        store_options(
            ceph_env, rbd_store_ceph_conf=str(tmp_path / "ceph.conf"), rados_connect_timeout=2
        ),
    )
    with pytest.raises(errors.BackendUnavailable, match="rados_connect_timeout") as caught:
        store.add(new_id(), b"x")
    assert caught.value.retryable
    assert isinstance(caught.value, ConnectionError)


def test_configuration_errors(ceph_env):
    with pytest.raises(errors.ConfigError, match="power of two"):
        open_store("rbd", store_options(ceph_env, rbd_store_chunk_size=3))
    with pytest.raises(errors.ConfigError, match="rbd_store_ceph_conf"):
        open_store("rbd", {"rbd_store_ceph_conf": "/nonexistent/ceph.conf"}).get_size("rbd://x")


def test_missing_bindings_name_the_debian_package():
    code = (
        "import sys; sys.modules['rbd'] = None\n"
        "from glance_store_ng import errors, open_store\n"
        "try:\n    open_store('rbd', {})\n"
        "except errors.DriverNotFound as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "python3-rbd" in out.stdout
