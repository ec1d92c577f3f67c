"""Adds killed mid-way (``kill -9``), as tests: what they leave is found, sized and removed.

A process that dies mid-add cannot clean up what it wrote (a temporary file, a
pending multipart upload, segments, an image). :meth:`Store.find_orphans` must list
exactly that, once it is idle for ``older_than`` seconds, and
:meth:`Store.remove_orphan` (and ``glance-store-ng gc``) must remove it all.

:class:`OrphanTests` runs real adds in another Python process (``python -c``), with
the store :meth:`StoreFixture.open_store_args` describes: the add's source gives
:attr:`~StoreFixture.orphan_sent` random bytes and stalls; once the backend holds
:attr:`~StoreFixture.orphan_written` bytes of the add (as :meth:`StoreFixture.orphan_of`
sees them, behind the driver's back), the process is killed with SIGKILL, or, to test
a running add, told to finish. See the package docstring for opting in.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from glance_store_ng import errors
from glance_store_ng._child import module_command, script_command
from glance_store_ng.store import Orphan, Store

from .campaign import KillCampaign
from .conformance import _read, new_id, random_bytes

__all__ = ["OrphanTests"]

#: How long an add may take to write what the test waits for (a slow CI machine).
_PATIENCE = 120.0

# The add run in another process, to be killed mid-way. Its source gives ``sent`` random
# bytes in pieces of 1 MiB (the last one shorter), says "sent", and waits for a line: none
# comes when the test kills it; "go" gives ``sent`` more bytes and the add completes, and
# the process prints the AddResult and the md5 of what its source gave.
_ADD = """
import hashlib, json, os, sys
from glance_store_ng import open_store

driver, options, image_id, sent = json.loads(sys.argv[1])
store = open_store(driver, options)
md5 = hashlib.md5()

def pieces():
    for offset in range(0, sent, 1 << 20):
        piece = os.urandom(min(1 << 20, sent - offset))
        md5.update(piece)
        yield piece

def source():
    yield from pieces()
    print("sent", flush=True)
    if sys.stdin.readline() != "go\\n":
        raise SystemExit("the test went away")
    yield from pieces()

result = store.add(image_id, source())
print(json.dumps({"location": result.location, "size": result.size,
                  "checksum": result.checksum, "source_md5": md5.hexdigest()}), flush=True)
"""


# An add run in another process and killed once its image is complete, before it returns:
# ``target`` ("module:Qualified.name", something the driver's add calls at that point) is
# replaced by a function that kills the process, "before" calling it or "after".
_ADD_KILLED_AT_COMMIT = """
import importlib, json, os, signal, sys
from glance_store_ng import open_store

driver, options, image_id, size, target, when = json.loads(sys.argv[1])
module_name, _, qualified = target.partition(":")
owner = importlib.import_module(module_name)
*path, name = qualified.split(".")
for part in path:
    owner = getattr(owner, part)
original = getattr(owner, name)

def die(*args, **kwargs):
    if when == "after":
        original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

setattr(owner, name, die)
store = open_store(driver, options)
data = bytes(range(256)) * (size // 256)
store.add(image_id, iter([data[i : i + (1 << 20)] for i in range(0, size, 1 << 20)]))
print("the add returned", flush=True)
"""


class _Add:
    """An add running in another process (see ``_ADD``), stalled once its source gave
    ``sent`` bytes."""

    def __init__(self, driver: str, options: dict[str, Any], image_id: str, sent: int) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.process = subprocess.Popen(
            script_command(_ADD, json.dumps([driver, options, image_id, sent])),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def check_running(self, what: str) -> None:
        if self.process.poll() is not None:
            pytest.fail(
                f"the add ended (exit {self.process.returncode}) before {what}:\n{self.stderr()}"
            )

    def wait_until_stalled(self) -> None:
        """Until the source gave all it gives before the stall."""
        stdout: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        deadline = time.monotonic() + _PATIENCE
        while not select.select([stdout], [], [], 0.1)[0]:
            self.check_running("its source gave its bytes")
            if time.monotonic() > deadline:
                pytest.fail(f"the add did not take its source's bytes in {_PATIENCE:.0f} s")
        line = stdout.readline()
        if line != b"sent\n":
            self.process.wait(timeout=30)
            pytest.fail(f"the add printed {line!r} instead of 'sent':\n{self.stderr()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def finish(self) -> dict[str, Any]:
        """Let the add complete; what it printed (the AddResult's fields, the source's md5)."""
        out, _ = self.process.communicate(b"go\n", timeout=_PATIENCE)
        if self.process.returncode != 0:
            pytest.fail(f"the resumed add failed:\n{self.stderr()}")
        return json.loads(out)

    def close(self) -> None:
        self.kill()
        for stream in (self.process.stdin, self.process.stdout, self._stderr):
            stream.close()


class OrphanTests(KillCampaign):
    """Adds killed mid-way leave orphans that are found, sized and removed, and only them;
    and the kill campaign (:mod:`.campaign`).

    Combine with your :class:`StoreFixture` subclass, which must define
    ``open_store_args`` and ``orphan_of`` (and may set ``orphan_options``,
    ``orphan_sent``, ``orphan_written`` and define ``release_killed_add``).
    """

    # -- helpers (not tests) -----------------------------------------------------------------

    @contextlib.contextmanager
    def _stalled_add(self, store: Store, image_id: str) -> Iterator[_Add]:
        """An add of ``image_id`` in another process, stalled once the backend holds
        ``orphan_written`` bytes of it. Killed on the way out if still running."""
        fixture: Any = self
        driver, options = fixture.open_store_args(**fixture.orphan_options)
        add = _Add(driver, options, image_id, fixture.orphan_sent)
        try:
            add.wait_until_stalled()
            deadline = time.monotonic() + _PATIENCE
            while True:
                orphan = fixture.orphan_of(store, image_id)
                if orphan is not None and orphan.size >= fixture.orphan_written:
                    break
                add.check_running(f"the backend held {fixture.orphan_written} bytes of it")
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"the backend held {orphan} of the add after {_PATIENCE:.0f} s, not "
                        f"{fixture.orphan_written} bytes (orphan_written)"
                    )
                time.sleep(0.1)
            time.sleep(0.2)  # for a write that ``orphan_written`` does not count to land
            orphan = fixture.orphan_of(store, image_id)
            assert orphan is not None and orphan.size == fixture.orphan_written, (
                f"the backend holds {orphan} of the add once its source stalled, not "
                f"{fixture.orphan_written} bytes (orphan_written)"
            )
            yield add
        finally:
            add.close()

    def _killed_add(self, store: Store, image_id: str) -> Orphan:
        """Kill an add of ``image_id`` once it wrote ``orphan_written`` bytes; what it left,
        as the fixture sees it."""
        fixture: Any = self
        with self._stalled_add(store, image_id) as add:
            add.kill()
        left = fixture.orphan_of(store, image_id)
        assert left is not None, "the killed add's leftovers vanished"
        # Nothing was in flight: the add had written all it could before its source stalled.
        assert left.size == fixture.orphan_written
        return left

    def _assert_not_an_image(self, store: Store, location: str) -> None:
        """No form of ``location`` serves an image (NotFound), its size either."""
        fixture: Any = self
        for form in fixture.location_forms(store, location):
            for call in (store.get_size, store.get):
                with pytest.raises(errors.NotFound):
                    call(form)

    # -- tests -------------------------------------------------------------------------------

    def test_killed_add_is_found_then_removed(self, make_store: Callable[..., Store]) -> None:
        fixture: Any = self
        store = make_store(**fixture.orphan_options)
        kept_data = random_bytes(fixture.orphan_sent, seed=21)
        kept_id = new_id()
        kept = store.add(kept_id, io.BytesIO(kept_data))  # a complete image, written alike
        before = fixture.backend_listing(store)
        image_id = new_id()
        location = _location_of(kept.location, kept_id, image_id)

        left = self._killed_add(store, image_id)
        self._assert_not_an_image(store, location)
        assert store.find_orphans(older_than=3600) == []  # as young as a running add's
        orphans = store.find_orphans(older_than=0)
        assert [(o.name, o.size) for o in orphans] == [(left.name, left.size)]
        [orphan] = orphans
        assert image_id in orphan.name and 0 <= orphan.age < 600
        for secret in _secrets(store):
            assert secret not in orphan.name and secret not in repr(orphan)

        fixture.release_killed_add(store, orphan)
        store.remove_orphan(orphan)
        assert store.find_orphans(older_than=0) == []
        assert fixture.backend_listing(store) == before  # all of it went, and only it
        store.remove_orphan(orphan)  # gone already: nothing to do
        assert fixture.backend_listing(store) == before
        self._assert_not_an_image(store, location)
        assert _read(store, kept.location) == kept_data

        # The id is free: the image goes in whole, where the killed add would have put it.
        data = random_bytes(fixture.orphan_sent, seed=22)
        result = store.add(image_id, io.BytesIO(data))
        assert result.location == location
        assert _read(store, result.location) == data
        store.delete(result.location)
        store.delete(kept.location)

    def test_gc_command_lists_then_removes_a_killed_adds_orphan(
        self, make_store: Callable[..., Store], tmp_path: Path
    ) -> None:
        fixture: Any = self
        store = make_store(**fixture.orphan_options)
        driver, options = fixture.open_store_args(**fixture.orphan_options)
        conf = tmp_path / "glance-api.conf"
        conf.write_text(
            f"[DEFAULT]\nenabled_backends = orphans:{driver}\n\n"
            "[glance_store]\ndefault_backend = orphans\n\n[orphans]\n"
            + "".join(f"{key} = {_conf_value(value)}\n" for key, value in options.items())
        )
        before = fixture.backend_listing(store)
        left = self._killed_add(store, new_id())
        fixture.release_killed_add(store, left)
        killed = fixture.backend_listing(store)
        assert killed != before

        def gc(*args: str) -> list[dict[str, Any]]:
            done = subprocess.run(
                module_command("glance_store_ng.cli", "--config", str(conf), "--json")
                + ["gc", *args],
                capture_output=True,
                text=True,
                timeout=_PATIENCE,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
            assert done.returncode == 0, done.stderr
            for secret in _secrets(store):
                assert secret not in done.stdout + done.stderr
            return json.loads(done.stdout)["orphans"]

        assert gc() == []  # younger than the default hour: it may be a running add
        listed = gc("--older-than", "0", "--dry-run")
        assert [(o["backend"], o["name"], o["size"], o["error"]) for o in listed] == [
            ("orphans", left.name, left.size, None)
        ]
        assert fixture.backend_listing(store) == killed  # a dry run removes nothing
        removed = gc("--older-than", "0")
        assert [(o["name"], o["error"]) for o in removed] == [(left.name, None)]
        assert fixture.backend_listing(store) == before
        assert gc("--older-than", "0") == []

    def test_add_killed_once_its_image_is_complete_is_found_then_removed(
        self, make_store: Callable[..., Store]
    ) -> None:
        """Killed after the backend made the image whole but before add returned its location:
        the image is whole or absent (never partial), its id taken, and gc removes it, then
        the id is free."""
        fixture: Any = self
        if fixture.commit_kill_point is None:
            pytest.fail(
                "OrphanTests needs the fixture class's commit_kill_point: where an add is once "
                "its image is complete ('module:Qualified.name', 'before' or 'after')"
            )
        store = make_store(**fixture.orphan_options)
        kept_id = new_id()
        kept = store.add(kept_id, b"a complete image")
        before = fixture.backend_listing(store)
        image_id, size = new_id(), fixture.orphan_sent
        driver, options = fixture.open_store_args(**fixture.orphan_options)
        target, when = fixture.commit_kill_point
        done = subprocess.run(
            script_command(
                _ADD_KILLED_AT_COMMIT, json.dumps([driver, options, image_id, size, target, when])
            ),
            capture_output=True,
            timeout=_PATIENCE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
        location = _location_of(kept.location, kept_id, image_id)
        data = bytes(range(256)) * (size // 256)
        with contextlib.suppress(errors.NotFound):  # absent until the add's commit, or whole
            assert _read(store, location) == data
        with pytest.raises(errors.AlreadyExists):
            store.add(image_id, b"retry")

        [orphan] = store.find_orphans(older_than=0)
        assert image_id in orphan.name and orphan.size == size
        fixture.release_killed_add(store, orphan)
        store.remove_orphan(orphan)
        assert store.find_orphans(older_than=0) == []
        self._assert_not_an_image(store, location)
        assert fixture.backend_listing(store) == before
        assert _read(store, kept.location) == b"a complete image"  # untouched
        result = store.add(image_id, b"retry")  # the id is free again
        assert result.location == location and _read(store, location) == b"retry"
        store.delete(location)
        store.delete(kept.location)

    def test_running_add_is_left_alone_and_a_completed_one_leaves_nothing(
        self, make_store: Callable[..., Store]
    ) -> None:
        fixture: Any = self
        store = make_store(**fixture.orphan_options)
        probe_id, image_id = new_id(), new_id()
        probe = store.add(probe_id, b"where images go")
        location = _location_of(probe.location, probe_id, image_id)
        store.delete(probe.location)

        with self._stalled_add(store, image_id) as add:
            self._assert_not_an_image(store, location)  # no reader sees a partial image
            # gc's threshold is far above a running add's idle time: it is never listed.
            assert store.find_orphans(older_than=3600) == []
            done = add.finish()  # and it completes whole: nothing of it was removed

        assert done["location"] == location and done["size"] == 2 * fixture.orphan_sent
        with store.get(location) as reader:
            digest = hashlib.md5()
            for piece in reader:
                digest.update(piece)
        assert digest.hexdigest() == done["checksum"] == done["source_md5"]
        assert fixture.orphan_of(store, image_id) is None
        assert store.find_orphans(older_than=0) == []  # a completed add leaves nothing
        store.delete(location)


def _location_of(location: str, image_id: str, other_id: str) -> str:
    """Where an add of ``other_id`` puts its image, from where one of ``image_id`` put its."""
    assert location.count(image_id) == 1, f"{location} does not name {image_id} once"
    return location.replace(image_id, other_id)


def _secrets(store: Store) -> list[str]:
    return [str(store.conf[o.name]) for o in store.all_options() if o.secret and store.conf[o.name]]


def _conf_value(value: Any) -> str:
    """An option's value as glance-api.conf writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(value)
