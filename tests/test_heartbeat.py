"""An add's heartbeat: refreshes as chunks flow, and from a thread of its own while a
request sends no chunk (glance_store_ng.heartbeat)."""

from __future__ import annotations

import threading
import time

from glance_store_ng.heartbeat import Heartbeat


def test_chunks_refresh_the_mark_once_it_is_due() -> None:
    refreshed = []
    heartbeat = Heartbeat(lambda: refreshed.append(1), every=0.0)
    assert list(heartbeat.beating([b"a", b"b", b"c"])) == [b"a", b"b", b"c"]
    assert len(refreshed) == 3


def test_its_thread_refreshes_until_stopped_and_outlives_a_failed_refresh() -> None:
    calls = []
    third = threading.Event()

    def refresh() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the server is away")  # logged; the next refresh tries again
        if len(calls) >= 3:
            third.set()

    heartbeat = Heartbeat(refresh, every=0.02)
    heartbeat.start_thread("a test mark")
    heartbeat.start_thread("a test mark")  # a second start keeps the one thread
    assert third.wait(10)
    heartbeat.stop()
    stopped_at = len(calls)
    time.sleep(0.1)
    assert len(calls) <= stopped_at + 1  # at most the refresh under way when stopped
