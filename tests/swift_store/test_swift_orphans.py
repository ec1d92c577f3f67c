"""gc of the segments a killed add left behind: found, sized, removed; live images untouched."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from swift_testing import objects_under, swift_options

from glance_store_ng import errors
from glance_store_ng.store import Orphan
from glance_store_ng.testing.conformance import new_id

MiB = 1 << 20

# Adds an image of unknown size (so: an SLO of 1 MiB segments) whose source sends 3 MiB and
# then hangs, as a client upload that stalls; the test kills this process mid-add.
_STALLED_ADD = """
import json, sys, time
from glance_store_ng import open_store
store = open_store("swift", json.loads(sys.argv[1]))
def source():
    for _ in range(3):
        yield bytes([7]) * (1 << 20)
    print("sent", flush=True)
    time.sleep(600)
store.add(sys.argv[2], source())
"""


def kill_mid_add(options: dict, image_id: str, admin, segments: str) -> None:
    """Run an add in another process and SIGKILL it once its segments are on the server."""
    child = subprocess.Popen(
        [sys.executable, "-c", _STALLED_ADD, json.dumps(options), image_id],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout.readline().strip() == "sent"
        deadline = time.monotonic() + 60
        while len(objects_under(admin, segments)) < 2:  # the first two segments are written
            assert time.monotonic() < deadline, "the killed add's segments never appeared"
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)


def test_gc_removes_the_segments_of_a_killed_add_and_nothing_else(
    swift_env, swift_store, admin, container
):
    options = swift_options(
        swift_env,
        container,
        swift_store_large_object_size=1,
        swift_store_large_object_chunk_size=1,
    )
    store = swift_store(swift_store_large_object_size=1, swift_store_large_object_chunk_size=1)
    kept = store.add(new_id(), io.BytesIO(os.urandom(3 * MiB)))  # a live SLO beside it
    dead_id = new_id()
    kill_mid_add(options, dead_id, admin, f"{container}_segments")
    left = objects_under(admin, f"{container}_segments")
    dead = {name for name in left if f"_segments/{dead_id}/" in name}
    assert dead, "the killed add left no segment: nothing to test"

    assert store.find_orphans(older_than=3600) == []  # as young as a running add's
    orphans = store.find_orphans(older_than=0)
    assert len(orphans) == 1
    orphan = orphans[0]
    prefix = os.path.commonprefix(sorted(dead))
    assert orphan.name == prefix[: prefix.rindex("/") + 1]
    assert orphan.name.startswith(f"{container}_segments/{dead_id}/")
    assert orphan.size == len(dead) * MiB and 0 <= orphan.age < 600

    store.remove_orphan(orphan)
    assert store.find_orphans(older_than=0) == []
    assert objects_under(admin, f"{container}_segments") == left - dead
    with store.get(kept.location) as reader:  # the live image kept every segment
        assert sum(len(piece) for piece in reader) == 3 * MiB


def test_remove_orphan_refuses_a_live_upload_and_names_it_does_not_know(
    swift_store, admin, container
):
    store = swift_store(swift_store_large_object_size=1, swift_store_large_object_chunk_size=1)
    image_id = new_id()
    result = store.add(image_id, io.BytesIO(os.urandom(2 * MiB)))
    segment = next(iter(objects_under(admin, f"{container}_segments")))
    live = Orphan(segment[: segment.rindex("/") + 1], 2 * MiB, 7200)
    with pytest.raises(errors.InUse, match=image_id):
        store.remove_orphan(live)
    for name in (f"{container}/{image_id}", "elsewhere_segments/x/0123456789abcdef/"):
        with pytest.raises(errors.BadLocation):
            store.remove_orphan(Orphan(name, 0, 7200))
    assert store.get_size(result.location) == 2 * MiB


def test_gc_command_lists_and_removes_swift_orphans(
    swift_env, swift_store, admin, container, tmp_path
):
    options = swift_options(
        swift_env,
        container,
        swift_store_large_object_size=1,
        swift_store_large_object_chunk_size=1,
    )
    kill_mid_add(options, new_id(), admin, f"{container}_segments")
    conf = tmp_path / "glance-api.conf"
    conf.write_text(
        "[DEFAULT]\nenabled_backends = objects:swift\n[glance_store]\ndefault_backend = objects\n"
        "[objects]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
    )
    cli = [sys.executable, "-m", "glance_store_ng.cli", "--config", str(conf)]

    def gc(*args: str) -> dict:
        done = subprocess.run(
            [*cli, "--json", "gc", "--older-than", "0", *args], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    listed = gc("--dry-run")["orphans"]
    assert [o["backend"] for o in listed] == ["objects"]
    assert objects_under(admin, f"{container}_segments")  # a dry run removes nothing
    assert [o["name"] for o in gc()["orphans"]] == [listed[0]["name"]]
    assert objects_under(admin, f"{container}_segments") == set()
    assert swift_env["GSN_SWIFT_KEY"] not in json.dumps(listed)
