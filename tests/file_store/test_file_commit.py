"""The file store's data directories under concurrency and full disks, and adds killed
after they published their image (issue 14: defects 2 and 5)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from file_testing import path_of

from glance_store_ng import errors, open_store
from glance_store_ng.testing.conformance import new_id, random_bytes
from glance_store_ng.units import MiB


def images(*dirs: str) -> list[str]:
    """Every file in the data directories but the commit lock."""
    return sorted(
        os.path.join(d, name)
        for d in dirs
        for name in os.listdir(d)
        if name != ".glance-store-ng.lock"
    )


class Stalled:
    """A source that gives ``first`` bytes, then waits until released, then ``rest``."""

    def __init__(self, first: bytes, rest: bytes) -> None:
        self.first, self.rest = first, rest
        self.gave_first = threading.Event()
        self.go = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        self.gave_first.set()
        assert self.go.wait(60)
        yield self.rest


def add_in_thread(store, image_id, source, size) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = store.add(image_id, source, size)
        except errors.StoreError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_same_id_added_at_once_into_two_directories_one_wins(tmp_path, tiny_filesystem):
    """The add of A (1 MiB) goes to the tiny high-priority directory, B (6 MiB, no room
    there) to the other; A stalls while B completes, then A must fail: one image."""
    low = str(tmp_path / "low")
    store = open_store(
        "file", {"filesystem_store_datadirs": [f"{tiny_filesystem}:200", f"{low}:100"]}
    )
    image_id = new_id()
    first = Stalled(random_bytes(MiB // 2, seed=1), random_bytes(MiB // 2, seed=2))
    thread, outcome = add_in_thread(store, image_id, first, MiB)
    assert first.gave_first.wait(60)
    data_b = random_bytes(6 * MiB, seed=3)
    result_b = store.add(image_id, io.BytesIO(data_b), len(data_b))
    assert path_of(result_b.location).startswith(low + "/")
    first.go.set()
    thread.join(60)
    assert isinstance(outcome.get("error"), errors.AlreadyExists), outcome
    assert images(tiny_filesystem, low) == [path_of(result_b.location)]  # and no temporary file
    assert store.get(result_b.location).read() == data_b


def test_concurrent_adds_of_one_id_across_directories_store_exactly_one(tmp_path):
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    # Stores that prefer one directory or the other (hosts configured differently).
    stores = [
        open_store("file", {"filesystem_store_datadirs": [f"{dirs[i]}:2", f"{dirs[1 - i]}:1"]})
        for i in (0, 1, 0, 1)
    ]
    for _ in range(5):
        image_id = new_id()
        datas = [random_bytes(2 * MiB, seed=seed) for seed in range(len(stores))]
        adds = [
            add_in_thread(s, image_id, io.BytesIO(d), len(d))
            for s, d in zip(stores, datas, strict=True)
        ]
        for thread, _ in adds:
            thread.join(60)
        won = [i for i, (_, outcome) in enumerate(adds) if "result" in outcome]
        lost = [outcome["error"] for _, outcome in adds if "error" in outcome]
        assert len(won) == 1 and all(isinstance(e, errors.AlreadyExists) for e in lost), lost
        location = adds[won[0]][1]["result"].location
        assert stores[0].get(location).read() == datas[won[0]]
        assert images(*dirs) == [path_of(location)]
        stores[0].delete(location)


def test_room_is_reserved_so_two_adds_that_fit_in_two_directories_both_succeed(
    tmp_path, tiny_filesystem
):
    """Two adds of 3 MiB: the tiny directory (4 MiB) holds one. The first one's room is
    reserved as it starts, so the second goes to the other directory: both succeed."""
    low = str(tmp_path / "low")
    store = open_store(
        "file", {"filesystem_store_datadirs": [f"{tiny_filesystem}:200", f"{low}:100"]}
    )
    first = Stalled(random_bytes(MiB, seed=4), random_bytes(2 * MiB, seed=5))
    thread, outcome = add_in_thread(store, new_id(), first, 3 * MiB)
    assert first.gave_first.wait(60)
    second = random_bytes(3 * MiB, seed=6)
    result = store.add(new_id(), io.BytesIO(second), len(second))
    first.go.set()
    thread.join(60)
    assert "result" in outcome, outcome
    assert path_of(outcome["result"].location).startswith(tiny_filesystem + "/")
    assert path_of(result.location).startswith(low + "/")
    assert store.get(result.location).read() == second
    assert store.get(outcome["result"].location).read() == first.first + first.rest


def test_an_image_of_unknown_size_that_outgrows_its_directory_moves_to_the_next(
    tmp_path, tiny_filesystem
):
    low = str(tmp_path / "low")
    store = open_store(
        "file", {"filesystem_store_datadirs": [f"{tiny_filesystem}:200", f"{low}:100"]}
    )
    data = random_bytes(3 * MiB, seed=7) + bytes(2 * MiB) + random_bytes(MiB, seed=8)
    result = store.add(new_id(), io.BytesIO(data))  # size unknown: it starts in tiny
    assert path_of(result.location).startswith(low + "/")
    assert store.get(result.location).read() == data
    assert images(tiny_filesystem, low) == [path_of(result.location)]
    assert os.stat(path_of(result.location)).st_blocks * 512 < 5 * MiB  # the zeros: a hole
    small = store.add(new_id(), io.BytesIO(b"x" * MiB))  # tiny has its room back
    assert path_of(small.location).startswith(tiny_filesystem + "/")


def test_a_full_single_directory_is_storage_full_for_a_declared_size_before_writing(
    tiny_filesystem,
):
    store = open_store("file", {"filesystem_store_datadir": tiny_filesystem})
    with pytest.raises(errors.StorageFull, match="free space"):
        store.add(new_id(), io.BytesIO(random_bytes(5 * MiB)), 5 * MiB)
    assert images(tiny_filesystem) == []


def test_thin_images_give_back_the_room_of_their_holes(tmp_path):
    store = open_store("file", {"filesystem_store_datadir": str(tmp_path)})
    data = random_bytes(MiB, seed=9) + bytes(16 * MiB) + random_bytes(MiB, seed=10)
    for size in (len(data), None):
        result = store.add(new_id(), io.BytesIO(data), size)
        assert os.stat(path_of(result.location)).st_blocks * 512 <= 2 * MiB + 64 * 1024
        assert store.get(result.location).read() == data


_KILLED_AFTER_THE_LINK = """
import os, signal, sys
from glance_store_ng import open_store

store = open_store("file", {"filesystem_store_datadir": sys.argv[1]})
link = os.link

def link_then_die(*args, **kwargs):
    link(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # published, but add never returns

os.link = link_then_die
store.add(sys.argv[2], bytes(range(256)) * 4096)
"""


def test_an_add_killed_after_publishing_its_image_leaves_an_orphan_gc_removes(tmp_path):
    store = open_store("file", {"filesystem_store_datadir": str(tmp_path)})
    kept = store.add(new_id(), b"a complete image")
    image_id = new_id()
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_THE_LINK, str(tmp_path), image_id], timeout=60
    )
    assert done.returncode == -signal.SIGKILL
    location = f"file://{tmp_path}/{image_id}"
    assert store.get(location).read() == bytes(range(256)) * 4096  # whole, or absent
    with pytest.raises(errors.AlreadyExists):
        store.add(image_id, b"retry")
    [orphan] = store.find_orphans(older_than=0)
    assert orphan.name.startswith(f"{tmp_path}/.{image_id}.")
    store.remove_orphan(orphan)
    store.remove_orphan(orphan)  # gone already: nothing to do
    assert store.find_orphans(older_than=0) == []
    assert images(str(tmp_path)) == [path_of(kept.location)]  # the complete image stays
    result = store.add(image_id, b"retry")  # the id is free again
    assert result.location == location and store.get(location).read() == b"retry"
