"""glance_store_ng.bench.reference: glance_store's drivers built from our options (the file
one here; the S3, Swift and RBD ones are exercised by each driver's interop tests), and the
bench package importing it only to compare."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from glance_store_ng import open_store
from glance_store_ng.bench.reference import open_reference
from glance_store_ng.errors import InvalidArgument
from glance_store_ng.testing.conformance import mostly_zero, new_id


def test_the_file_store_reads_what_glance_store_wrote_with_the_same_options(tmp_path):
    options = {"filesystem_store_datadir": str(tmp_path)}
    data = mostly_zero(300_000, seed=5)
    with open_reference("file", options) as theirs:
        added = theirs.add(new_id(), io.BytesIO(data), len(data))
        assert added.size == len(data)
        ours = open_store("file", options)
        with ours.get(added.location) as reader:
            assert reader.read() == data
        assert theirs.get_size(added.location) == len(data)
        with theirs.get(added.location) as chunks:
            assert b"".join(chunks) == data
        theirs.delete(added.location)
    assert list(tmp_path.iterdir()) == []


def test_a_driver_glance_store_lacks_is_refused_with_the_way_out():
    with pytest.raises(InvalidArgument, match=r"no driver like 'mystore'.*--no-compare"):
        open_reference("mystore", {})


def test_a_value_glance_store_rejects_is_named(tmp_path):
    options = {"filesystem_store_datadir": str(tmp_path), "filesystem_store_file_perm": "rw"}
    with pytest.raises(InvalidArgument, match="filesystem_store_file_perm = 'rw'"):
        open_reference("file", options)


def test_one_datadirs_line_of_a_config_file_reaches_glance_store_whole(tmp_path):
    options = {"filesystem_store_datadirs": f"{tmp_path}:100"}  # as read_ini gives one line
    with open_reference("file", options) as theirs:
        added = theirs.add(new_id(), io.BytesIO(b"x" * 1000), 1000)
        assert added.location == f"file://{tmp_path}/{added.location.rsplit('/', 1)[1]}"
        theirs.delete(added.location)


def test_a_swift_key_its_reference_file_cannot_hold_is_refused_unshown():
    options = {
        "swift_store_auth_address": "http://127.0.0.1:9/auth/v1.0",
        "swift_store_user": "test:tester",
        "swift_store_key": "'s3cr3t",
        "swift_store_auth_version": "1",
        "swift_store_container": "images",
    }
    with pytest.raises(InvalidArgument, match="cannot hold this key") as raised:
        open_reference("swift", options)
    assert "s3cr3t" not in str(raised.value)


def test_the_bench_imports_glance_store_only_to_compare(tmp_path):
    """Importing the bench package, or running it without the comparison, loads neither
    glance_store nor the reference builder."""
    code = (
        "import sys\n"
        "from glance_store_ng import bench\n"
        f"bench.run_bench(size=4096, workdir={str(tmp_path)!r}, compare=False, baselines=False)\n"
        "print([m for m in sys.modules if m.split('.')[0] == 'glance_store'\n"
        "       or m == 'glance_store_ng.bench.reference'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
