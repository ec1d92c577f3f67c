"""A kill campaign: adds SIGKILLed at random moments, then gc; as a test of OrphanTests.

Each add runs in a process of its own (``python -c``), with the store the fixture's
``open_store_args`` describes, and is killed after a random delay: before it opened
the store, mid-data, while it commits, or after it returned. After each kill a get at
the image's location must fail NotFound or give the whole image, never part of it.
Then gc (``find_orphans``/``remove_orphan``, the dead clients released as an operator
would) must remove everything the killed adds left, and only that: every image an add
returned stays whole, every other id is free again, and the backend holds what it
held before. (An add killed after its very last step, while ``add`` returns or the
child prints, left a whole image it counts as complete: nothing can tell it from one
that returned.)

``GLANCE_STORE_NG_CAMPAIGN_KILLS`` sets the number of kills (:data:`DEFAULT_KILLS` in
CI; ``tools/test --campaign`` runs 100); with ``GLANCE_STORE_NG_CAMPAIGN_REPORT`` set
to a file path, each driver's figures are appended to it as a JSON line, which
:func:`print_table` prints as a table.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from glance_store_ng import errors
from glance_store_ng._child import script_command
from glance_store_ng.store import Store

from .conformance import _read, new_id

__all__ = ["DEFAULT_KILLS", "KillCampaign", "print_table", "report"]

#: Kills per driver unless GLANCE_STORE_NG_CAMPAIGN_KILLS says otherwise.
DEFAULT_KILLS = 20
KILLS_ENV = "GLANCE_STORE_NG_CAMPAIGN_KILLS"
REPORT_ENV = "GLANCE_STORE_NG_CAMPAIGN_REPORT"

# An add of ``size`` bytes made from ``seed`` (unknown size unless ``declared``), in
# 1 MiB pieces; prints its location once add returned.
_ADD = """
import json, random, sys
from glance_store_ng import open_store

driver, options, image_id, size, seed, declared = json.loads(sys.argv[1])
store = open_store(driver, options)
data = random.Random(seed).randbytes(size)
pieces = (data[i : i + (1 << 20)] for i in range(0, size, 1 << 20))
result = store.add(image_id, pieces, size if declared else None)
print(json.dumps({"location": result.location}), flush=True)
"""


def _image(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


class KillCampaign:
    """The kill campaign (see the module). Part of :class:`OrphanTests`: it needs the
    same fixture (``open_store_args``, ``backend_listing``, ``orphan_options``,
    ``orphan_sent``, ``release_killed_add``)."""

    def test_campaign_of_adds_killed_at_random_moments(
        self, make_store: Callable[..., Store]
    ) -> None:
        fixture: Any = self
        kills = int(os.environ.get(KILLS_ENV) or DEFAULT_KILLS)
        store = make_store(**fixture.orphan_options)
        driver, options = fixture.open_store_args(**fixture.orphan_options)
        size = fixture.orphan_sent
        before = fixture.backend_listing(store)
        kept_id = new_id()
        kept = store.add(kept_id, _image(size, seed=-1))
        kill_seed = random.randrange(1 << 32)  # in failure messages: the kill times again
        rng = random.Random(kill_seed)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}

        def run_add(image_id: str, seed: int, declared: bool, kill_after: float | None) -> Any:
            args = json.dumps([driver, options, image_id, size, seed, declared])
            process = subprocess.Popen(
                script_command(_ADD, args),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            try:
                if kill_after is not None:
                    time.sleep(kill_after)
                    process.kill()
                out, err = process.communicate(timeout=300)
            finally:
                if process.poll() is None:  # a timeout, or this test interrupted
                    process.kill()
                    process.communicate()
            return process.returncode, out, err

        # How long a whole add takes here, child process included (the quicker of two, the
        # first may warm the backend up): kills land within it.
        spans = []
        for _ in range(2):
            started = time.monotonic()
            code, out, err = run_add(new_id(), 0, True, None)
            assert code == 0, err.decode(errors="replace")
            spans.append(time.monotonic() - started)
            store.delete(json.loads(out)["location"])
        span = min(spans)

        figures: dict[str, Any] = {
            "kill seed": kill_seed,
            "kills": kills,
            "returned before the kill": 0,
            "whole image, add never returned": 0,
            "absent": 0,
            "partial images seen": 0,
        }
        location_of = _locator(kept.location, kept_id)
        killed: dict[str, tuple[int, bool]] = {}  # image id -> (seed, returned)
        for number in range(kills):
            image_id, seed = new_id(), number + 1
            code, out, _ = run_add(image_id, seed, number % 2 == 0, rng.uniform(0, 1.1 * span))
            returned = bool(out.strip())  # it printed the location (then maybe was killed)
            killed[image_id] = (seed, returned)
            location = location_of(image_id)
            try:
                got = _read(store, location)
            except errors.NotFound:
                assert not returned, f"add returned {location}, not found (kill seed {kill_seed})"
                figures["absent"] += 1
                continue
            if got != _image(size, seed):
                figures["partial images seen"] += 1
            elif returned:
                figures["returned before the kill"] += 1
            else:
                figures["whole image, add never returned"] += 1
        assert figures["partial images seen"] == 0, figures  # with the kill seed

        orphans = store.find_orphans(older_than=0)
        figures["orphans before gc"] = len(orphans)
        for orphan in orphans:
            try:
                store.remove_orphan(orphan)
            except errors.InUse:  # a dead client the backend still sees (an RBD watch)
                fixture.release_killed_add(store, orphan)
                store.remove_orphan(orphan)
        figures["orphans after gc"] = len(store.find_orphans(older_than=0))
        assert figures["orphans after gc"] == 0, (kill_seed, store.find_orphans(older_than=0))

        retried, late = 0, 0
        for image_id, (seed, returned) in killed.items():
            location = location_of(image_id)
            try:
                got = _read(store, location)
            except errors.NotFound:  # gone, and its id free again
                assert not returned, (
                    f"gc removed {location}, whose add returned (kill seed {kill_seed})"
                )
                assert store.add(image_id, b"retry").location == location
                retried += 1
            else:  # an add that returned, or was killed after its last step: whole, kept
                assert got == _image(size, seed), f"{location} changed (kill seed {kill_seed})"
                late += not returned
            store.delete(location)
        figures["ids retried after gc"] = retried
        figures["kept: killed after the add's last step"] = late
        assert _read(store, kept.location) == _image(size, seed=-1)
        store.delete(kept.location)
        changed = fixture.backend_listing(store) ^ before
        assert not changed, f"left or lost: {sorted(changed)} (kill seed {kill_seed})"
        figures["leftovers after gc"] = 0
        figures["add seconds"] = round(span, 2)
        report("kills", {"fixture": _campaign_name(type(self).__name__), **figures})


def _locator(location: str, image_id: str) -> Callable[[str], str]:
    """Where an add of another id puts its image, from where one of ``image_id`` put its."""
    assert location.count(image_id) == 1, f"{location} does not name {image_id} once"
    head, tail = location.split(image_id)
    return lambda other: f"{head}{other}{tail}"


def _campaign_name(default: str) -> str:
    """The running test's class, without ``Test`` and ``Orphans``, and its parameters
    (``S3[radosgw]``); else ``default``."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    if not current:
        return default
    path_and_class, _, test = current.rpartition("::")
    name = path_and_class.rpartition("::")[2].removeprefix("Test").removesuffix("Orphans")
    return name + (test[test.index("[") :] if "[" in test else "")


def report(table: str, row: dict[str, Any]) -> None:
    """Append ``row`` of ``table`` to the file ``GLANCE_STORE_NG_CAMPAIGN_REPORT`` names,
    if it names one."""
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"table": table, **row}) + "\n")


def print_table(path: str) -> None:
    """The rows :func:`report` appended to ``path``: the kills with a column per driver,
    then any other table with a line per row."""
    with open(path, encoding="utf-8") as file:
        rows = [json.loads(line) for line in file if line.strip()]
    if not rows:
        print("no campaign figures (did the campaign tests run?)")
        return
    tables: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        tables.setdefault(row.pop("table"), []).append(row)
    for table, entries in tables.items():
        print(f"== {table}")
        if table == "kills":  # few drivers, many figures: a column per driver
            entries = [{"": e.pop("fixture"), **e} for e in entries]
            keys = list(dict.fromkeys(key for e in entries for key in e))
            width = max(len(key) for key in keys)
            columns = [max(len(str(e.get(key, ""))) for key in keys) for e in entries]
            for key in keys:
                cells = [
                    str(e.get(key, "")).rjust(c) for e, c in zip(entries, columns, strict=True)
                ]
                print(key.ljust(width) + "  " + "  ".join(cells))
        else:  # a line per row
            keys = list(dict.fromkeys(key for e in entries for key in e))
            widths = [max(len(key), *(len(str(e.get(key, ""))) for e in entries)) for key in keys]
            print("  ".join(key.ljust(w) for key, w in zip(keys, widths, strict=True)))
            for e in entries:
                print(
                    "  ".join(
                        str(e.get(key, "")).ljust(w) for key, w in zip(keys, widths, strict=True)
                    )
                )
