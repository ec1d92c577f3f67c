"""Faults on the line between a driver and its real server, through the TCP relay
(tests/tcp_relay.py): every add ends with the whole image or a clear error and nothing
left (at most what gc then removes); every get gives the right bytes or a clear error,
never wrong ones. The S3 and Swift tests run each fault of :data:`FAULTS` through
:func:`check_fault`."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from typing import Any

from tcp_relay import Relay, busy_answer

from glance_store_ng import errors
from glance_store_ng.store import AddResult, Store
from glance_store_ng.testing.campaign import REPORT_ENV, report
from glance_store_ng.testing.conformance import new_id, random_bytes

#: Relay settings per fault: what happens to the first connections of an add, or a get.
FAULTS: dict[str, dict[str, Any]] = {
    "reset after 100 KB sent": {"cuts": [100_000], "direction": "up"},
    "reset after 1.5 MB sent": {"cuts": [1_500_000], "direction": "up"},
    "reset after 200 KB received": {"cuts": [200_000]},
    "FIN after 1 MB received": {"cuts": [1_000_000], "graceful": True},
    "reset twice, 300 KB received": {"cuts": [300_000, 300_000]},
    "20 ms delay per piece": {"delay": 0.02},
    "503 SlowDown twice": {"answers": [busy_answer()] * 2},
    "503 SlowDown 12 times": {"answers": [busy_answer()] * 12},
}


def check_fault(
    name: str,
    fault: dict[str, Any],
    target: str | tuple[str, int],
    store_through: Callable[[Relay], Store],
    direct: Store,
    listing: Callable[[], set[str]],
    size: int,
) -> dict[str, Any]:
    """An add, then a get, each through a relay with ``fault`` in front of ``target``;
    ``store_through(relay)`` opens the store whose data requests go through ``relay``,
    ``direct`` the same store without it. Asserts the contract; returns what happened."""
    data = random_bytes(size, seed=len(name))
    before = listing()
    outcome: dict[str, Any] = {"fault": name}
    relay = Relay(target, **fault)
    try:
        store = store_through(relay)
        try:
            result = store.add(new_id(), io.BytesIO(data))
        except errors.StoreError as exc:
            assert str(exc), "an error without a message"
            outcome["add"] = f"{type(exc).__name__} ({exc.retry.name.lower()})"
            left = listing() - before
            outcome["left by the failed add"] = len(left)
            if left:  # its clean-up went through the faulty line too: gc's to remove
                for orphan in direct.find_orphans(older_than=0):
                    direct.remove_orphan(orphan)
            assert listing() == before, f"left after gc: {listing() - before}"
            location = direct.add(new_id(), data).location
        else:
            outcome["add"] = "ok"
            assert result.size == size
            location = _at(direct, result.location)
            with direct.get(location, verify=result) as reader:  # whole, the right bytes
                assert reader.read() == data
        store.close()
    finally:
        relay.stop()

    relay = Relay(target, **fault)
    try:
        store = store_through(relay)
        try:
            with store.get(_at(store, location)) as reader:
                got = reader.read()
        except errors.StoreError as exc:
            assert str(exc), "an error without a message"
            outcome["get"] = f"{type(exc).__name__} ({exc.retry.name.lower()})"
        else:
            assert got == data, "a get gave wrong bytes"
            outcome["get"] = "ok"
        store.close()
    finally:
        relay.stop()
    direct.delete(location)
    assert listing() == before
    outcome["wrong bytes"] = 0
    if os.environ.get(REPORT_ENV):
        report("faults", outcome)
    return outcome


def check_overlapping_adds(
    target: str | tuple[str, int],
    store_through: Callable[[Relay], Store],
    direct: Store,
    listing: Callable[[], set[str]],
    size: int,
) -> errors.AlreadyExists:
    """Two adds of one id whose final writes overlap, the later one ending last (the case
    where each add, reading the image as soon as its write returned, would find its own
    bytes): each goes through a slow relay, the second starts once the first has sent an
    eighth of its image, and its line is slower. Exactly one wins, the image
    holds its bytes, nothing of the other remains. Returns the loser's error (it says
    whether the loser saw the other add, or the server refused its write)."""
    image_id = new_id()
    datas = [random_bytes(size, seed=71), random_bytes(size, seed=72)]
    before = listing()
    outcomes: list[Any] = [None, None]
    relays = [Relay(target, delay=0.03), Relay(target, delay=0.05)]
    eighth_sent = threading.Event()
    relays[0].on_forward = lambda r: eighth_sent.set() if r.forwarded > size // 8 else None

    def add(i: int) -> None:
        store = store_through(relays[i])
        try:
            outcomes[i] = store.add(image_id, io.BytesIO(datas[i]), size)
        except errors.StoreError as exc:
            outcomes[i] = exc
        finally:
            store.close()

    try:
        first = threading.Thread(target=add, args=(0,))
        first.start()
        assert eighth_sent.wait(60), "the first add never sent an eighth of its image"
        add(1)
        first.join()
    finally:
        for relay in relays:
            relay.stop()
    winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, AddResult)]
    assert len(winners) == 1, outcomes
    loser = outcomes[1 - winners[0]]
    assert isinstance(loser, errors.AlreadyExists), loser
    location = _at(direct, outcomes[winners[0]].location)
    with direct.get(location) as reader:
        assert reader.read() == datas[winners[0]]
    direct.delete(location)
    assert listing() == before
    return loser


def _at(store: Store, location: str) -> str:
    """The location ``store`` gives the image at ``location`` (an S3 store behind the relay
    names the relay's address in its locations)."""
    prefix = store.location_prefix
    assert prefix is not None
    return prefix + location.rsplit("/", 1)[1]
