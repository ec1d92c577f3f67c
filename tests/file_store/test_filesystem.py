"""The filesystem driver: the conformance suite, then what is particular to files."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from file_testing import FilesystemFixture, TwoDirectoriesFixture, path_of

from glance_store_ng import errors, open_store
from glance_store_ng.store import Store
from glance_store_ng.testing import StoreConformance
from glance_store_ng.testing.conformance import mostly_zero, new_id, random_bytes


class TestFilesystemConformance(StoreConformance, FilesystemFixture):
    pass


class TestTwoDirectoriesConformance(StoreConformance, TwoDirectoriesFixture):
    """The same contract with two data directories (adds of one id race across them)."""


class TestThickFilesystemConformance(StoreConformance, FilesystemFixture):
    """The same contract with thin provisioning off and a small chunk size."""

    @pytest.fixture
    def store(self, make_store):
        return make_store(filesystem_thin_provisioning=False, filesystem_store_chunk_size=65536)


def test_thick_store_writes_zeros(tmp_path):
    store = open_store(
        "file", {"filesystem_store_datadir": str(tmp_path), "filesystem_thin_provisioning": "false"}
    )
    result = store.add(new_id(), bytes(1 << 20))
    assert result.zero_bytes == 0
    assert os.stat(path_of(result.location)).st_blocks * 512 >= 1 << 20


def test_thin_store_leaves_holes_and_reads_them(tmp_path):
    store = open_store("file", {"filesystem_store_datadir": str(tmp_path)})
    data = bytes(3 << 20) + b"tail" + bytes(5000)
    result = store.add(new_id(), data)
    assert result.zero_bytes == 3 << 20  # the 908 zeros at the end are too few for a hole
    assert os.stat(path_of(result.location)).st_blocks * 512 <= 8192
    assert os.path.getsize(path_of(result.location)) == len(data)
    with store.get(result.location) as reader:
        assert b"".join(reader) == data


def allocated(location: str) -> int:
    return os.stat(path_of(location)).st_blocks * 512


def test_zero_runs_shorter_than_the_min_hole_are_written(tmp_path):
    data = mostly_zero(8 << 20, block=4096, seed=5)  # single 4 KiB zero blocks, scattered
    default = open_store("file", {"filesystem_store_datadir": str(tmp_path / "default")})
    dense = default.add(new_id(), data)
    assert default.capabilities.min_hole == 64 << 10
    assert allocated(dense.location) >= 0.9 * len(data)  # not cut into thousands of holes
    assert dense.zero_bytes <= 0.1 * len(data)  # counts only what was left as holes

    small = open_store(
        "file",
        {"filesystem_store_datadir": str(tmp_path / "small"), "filesystem_thin_min_hole": "4K"},
    )
    holed = small.add(new_id(), data)
    assert allocated(holed.location) < 0.3 * len(data)
    assert holed.zero_bytes >= 0.7 * len(data)
    for store, result in ((default, dense), (small, holed)):
        with store.get(result.location) as reader:
            assert b"".join(reader) == data


def test_a_zero_run_across_chunks_is_measured_whole(tmp_path):
    store = open_store(
        "file",
        {
            "filesystem_store_datadir": str(tmp_path),
            "filesystem_store_chunk_size": 64 << 10,
            "filesystem_thin_min_hole": "96K",
        },
    )
    data_block = random_bytes(32 << 10)
    # 32K data | 128K zeros over three chunks | 32K data | 32K zeros | 32K data
    data = data_block + bytes(128 << 10) + data_block + bytes(32 << 10) + data_block
    result = store.add(new_id(), data)
    assert result.zero_bytes == 128 << 10  # the 32K run is written, the 128K one is a hole
    hole = len(data) - allocated(result.location)
    assert 120 << 10 <= hole <= 128 << 10  # (the filesystem may count a metadata block)
    with store.get(result.location) as reader:
        assert b"".join(reader) == data


def test_file_permissions(tmp_path):
    store = open_store(
        "file", {"filesystem_store_datadir": str(tmp_path), "filesystem_store_file_perm": "640"}
    )
    result = store.add(new_id(), b"data")
    assert os.stat(path_of(result.location)).st_mode & 0o7777 == 0o640


def test_datadirs_priority_and_free_space(tmp_path):
    high, low = tmp_path / "high", tmp_path / "low"
    store = open_store(
        "file", {"filesystem_store_datadirs": [f"{low}:100", f"{high}:200"], "image_size_cap": 0}
    )
    first = store.add(new_id(), b"a")
    assert path_of(first.location).startswith(str(high) + "/")
    # An image bigger than any disk cannot go anywhere: a clear storage-full error.
    with pytest.raises(errors.StorageFull, match="free"):
        store.add(new_id(), io.BytesIO(b"x"), size=1 << 60)
    # Images in either directory are read, and the same id is refused across them.
    other_id = new_id()
    (low / other_id).write_bytes(b"placed by hand")
    assert store.get_size(f"file://{low}/{other_id}") == 14
    with pytest.raises(errors.AlreadyExists):
        store.add(other_id, b"again")


def test_datadirs_from_glance_conf_repeated_key(tmp_path):
    from glance_store_ng import Stores

    conf = tmp_path / "glance-api.conf"
    conf.write_text(
        "[DEFAULT]\nenabled_backends = fast:file\n"
        "[glance_store]\ndefault_backend = fast\n"
        f"[fast]\nfilesystem_store_datadirs = {tmp_path}/a:1\n"
        f"filesystem_store_datadirs = {tmp_path}/b:2\n"
    )
    stores = Stores.from_config(conf)
    result = stores.add(new_id(), b"x")
    assert result.location.startswith(f"file://{tmp_path}/b/")
    assert result.metadata["store"] == "fast"


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "filesystem_store_datadir is required"),
        ({"filesystem_store_datadir": "relative/dir"}, "absolute"),
        ({"filesystem_store_datadir": "/x", "filesystem_store_datadirs": ["/y:1"]}, "not both"),
        ({"filesystem_store_datadirs": ["/tmp/a:high"]}, "DIR:PRIORITY"),
        ({"filesystem_store_chunk_size": "big"}, "filesystem_store_chunk_size"),
        ({"filesystem_store_chunk_size": 10}, "minimum"),
        ({"filesystem_store_file_perm": "rw-r-----"}, "octal"),
        ({"filesystem_store_file_perm": 0o640}, "as a string of octal digits"),
        ({"filesystem_thin_provisioning": "maybe"}, "boolean"),
        ({"filesystem_thin_min_hole": "2K"}, "below its minimum"),
        ({"filesystem_thin_min_hole": "big"}, "such as 64K"),
        ({"filesystem_store_datdir": "/tmp"}, "did you mean filesystem_store_datadir"),
    ],
)
def test_configuration_errors(options, message):
    with pytest.raises(errors.ConfigError, match=message):
        open_store("file", options)


class TestHostileLocations:
    @pytest.fixture
    def store(self, tmp_path) -> Store:
        return open_store("file", {"filesystem_store_datadir": str(tmp_path / "images")})

    @pytest.mark.parametrize(
        "location",
        [
            "file:///etc/passwd",
            "file://evil.example/etc/passwd",
            "file:///{root}/../../etc/passwd",
            "file:///{root}/./x",
            "file:///{root}",
            "file:///{root}-sibling/x",
            "s3://host/bucket/x",
        ],
    )
    def test_refused(self, store, location):
        root = store.datadirs[0].path
        location = location.format(root=root.lstrip("/"))
        for call in (store.get, store.get_size, store.delete):
            with pytest.raises(errors.BadLocation):
                call(location)
        assert os.path.exists("/etc/passwd")

    def test_symlink_out_of_the_datadir_is_refused(self, store, tmp_path):
        secret = tmp_path / "secret"
        secret.write_bytes(b"do not serve")
        link = os.path.join(store.datadirs[0].path, "innocent")
        os.symlink(secret, link)
        for call in (store.get, store.get_size, store.delete):
            with pytest.raises(errors.BadLocation, match="symbolic link"):
                call("file://" + link)
        assert secret.read_bytes() == b"do not serve"

    def test_symlink_to_another_image_is_not_followed(self, store):
        target = store.add(new_id(), b"the real image")
        alias = os.path.join(store.datadirs[0].path, "alias")
        os.symlink(path_of(target.location), alias)
        with pytest.raises(errors.BadLocation, match="symbolic link"):
            store.delete("file://" + alias)
        assert store.get(target.location).read() == b"the real image"
        assert os.path.islink(alias)

    def test_directory_symlink_out_of_the_datadir_is_refused(self, store, tmp_path):
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "img").write_bytes(b"not ours")
        os.symlink(outside, os.path.join(store.datadirs[0].path, "escape"))
        with pytest.raises(errors.BadLocation, match="outside the data directories"):
            store.get_size(f"file://{store.datadirs[0].path}/escape/img")

    def test_directory_is_not_an_image(self, store):
        sub = os.path.join(store.datadirs[0].path, "subdir")
        os.mkdir(sub)
        for call in (store.get, store.get_size, store.delete):
            with pytest.raises(errors.NotFound):
                call("file://" + sub)
        assert os.path.isdir(sub)


def test_disk_full_is_storage_full_and_removes_the_partial_file(tiny_filesystem):
    store = open_store("file", {"filesystem_store_datadir": tiny_filesystem})
    with pytest.raises(errors.StorageFull) as caught:
        store.add(new_id(), io.BytesIO(random_bytes(6 << 20)))  # size unknown: no early check
    assert isinstance(caught.value, OSError)
    assert os.listdir(tiny_filesystem) == []
    result = store.add(new_id(), random_bytes(1 << 20))
    assert store.get_size(result.location) == 1 << 20


def test_readers_see_no_partial_image(tmp_path):
    store = open_store("file", {"filesystem_store_datadir": str(tmp_path)})
    image_id = new_id()
    seen = []

    def source():
        for _ in range(3):
            seen.append(os.listdir(tmp_path))
            yield random_bytes(1 << 20)

    store.add(image_id, source())
    assert all(image_id not in names for names in seen)
    assert image_id in os.listdir(tmp_path)


def test_mostly_zero_large_image_checksums(tmp_path):
    store = open_store("file", {"filesystem_store_datadir": str(tmp_path)})
    data = mostly_zero(16 << 20, block=64 << 10, seed=99)
    result = store.add(new_id(), io.BytesIO(data), len(data))
    assert result.checksum == hashlib.md5(data).hexdigest()
    assert result.multihash == hashlib.sha512(data).hexdigest()
    assert os.stat(path_of(result.location)).st_blocks * 512 < 0.3 * len(data)


def test_gc_finds_and_removes_only_old_temporary_files(tmp_path):
    store = open_store("file", {"filesystem_store_datadir": str(tmp_path)})
    kept = store.add(new_id(), b"a real image")
    crashed = tmp_path / ".0d1f.4a5b6c7d8e9f.partial"  # what a killed add leaves
    crashed.write_bytes(b"half an image")
    running = tmp_path / ".77aa.123456789abc.partial"
    running.write_bytes(b"being written")
    os.utime(crashed, (1, 1))
    orphans = store.find_orphans(older_than=3600)
    assert [o.name for o in orphans] == [str(crashed)] and orphans[0].size == 13
    store.remove_orphan(orphans[0])
    assert not crashed.exists() and running.exists()
    assert store.get_size(kept.location) == 12
    with pytest.raises(errors.BadLocation):
        store.remove_orphan(type(orphans[0])(path_of(kept.location), 0, 0))


# -- hostile names and files in the data directory ---------------------------------------------


def test_a_fifo_in_the_data_directory_is_refused_not_waited_on(tmp_path):
    import threading

    store = open_store("file", {"filesystem_store_datadir": str(tmp_path)})
    fifo = tmp_path / new_id()
    os.mkfifo(fifo)
    outcomes: list[BaseException] = []

    def read_it() -> None:
        for call in (store.get, store.get_size):
            try:
                call(f"file://{fifo}")
            except BaseException as exc:  # noqa: BLE001 - what the test looks at
                outcomes.append(exc)

    worker = threading.Thread(target=read_it, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "get on a FIFO blocked"
    assert len(outcomes) == 2 and all(isinstance(e, errors.NotFound) for e in outcomes)


def test_a_temporary_file_or_a_nested_path_is_not_an_image_location(tmp_path):
    store = open_store("file", {"filesystem_store_datadir": str(tmp_path)})
    temporary = tmp_path / f".{new_id()}.0123456789ab.partial"
    temporary.write_bytes(b"half an image")
    (tmp_path / "sub").mkdir()
    nested = tmp_path / "sub" / new_id()
    nested.write_bytes(b"not an image of this store")
    for path in (temporary, nested):
        for call in (store.get, store.get_size, store.delete):
            with pytest.raises(errors.BadLocation):
                call(f"file://{path}")
        assert not store.owns(f"file://{path}")
        assert path.exists()  # nothing deleted


def test_image_ids_up_to_200_characters_on_every_name_the_store_makes(tmp_path):
    store = open_store("file", {"filesystem_store_datadir": str(tmp_path)})
    longest = "a" * 200
    result = store.add(longest, b"data")
    with store.get(result.location) as reader:
        assert reader.read() == b"data"
    store.delete(result.location)
    for bad in ("a" * 201, "abc\n", "abc\n" + "d"):
        with pytest.raises(errors.InvalidArgument, match="1-200 letters"):
            store.add(bad, b"data")
    assert list(tmp_path.iterdir()) == []
