"""The wait that makes one of several overlapping adds win (glance_store_ng.overlapping):
what an add waits for, and what it does not. The drivers' races against real servers are
in the S3 and Swift tests (fault_testing.check_overlapping_adds, the conformance race)."""

from __future__ import annotations

from glance_store_ng.overlapping import ADDING, PUBLISHED, PUBLISHING, STALE, OtherAdd, settle


class Backend:
    """Listings of the other adds' marks, one per call (the last one repeated)."""

    def __init__(self, *listings: list[OtherAdd]) -> None:
        self.listings = list(listings)
        self.calls = 0
        self.published = 0
        self.slept = 0.0
        self.owners = 0

    def others(self) -> list[OtherAdd]:
        self.calls += 1
        return self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]

    def publish(self) -> None:
        self.published += 1

    def sleep(self, seconds: float) -> None:
        self.slept += seconds

    def owner(self) -> str:
        self.owners += 1
        return f"read {self.owners}"


def run(backend: Backend) -> Backend:
    """settle() against ``backend``: the owner it returns must be the one read last."""
    owner = settle(backend.others, backend.publish, backend.owner, "test: image", backend.sleep)
    assert owner == f"read {backend.owners}"
    return backend


def test_alone_it_neither_says_published_nor_waits() -> None:
    backend = run(Backend([]))
    assert (backend.calls, backend.published, backend.slept, backend.owners) == (1, 0, 0, 1)


def test_it_says_published_and_waits_until_no_other_is_publishing() -> None:
    busy = OtherAdd("m/b", PUBLISHING, 1.0)
    done = OtherAdd("m/b", PUBLISHED, 0.5)
    backend = run(Backend([busy], [busy], [busy], [done]))
    assert backend.published == 1
    assert backend.calls == 4
    assert backend.slept > 0
    assert backend.owners == 1


def test_adds_still_sending_data_and_dead_adds_hold_nobody_back() -> None:
    writing = OtherAdd("m/b", ADDING, 1.0)
    dead = OtherAdd("m/c", PUBLISHING, STALE + 1)
    unknown = OtherAdd("m/d", "from an older version", 1.0)
    backend = run(Backend([writing, dead, unknown]))
    assert (backend.calls, backend.published, backend.slept, backend.owners) == (1, 1, 0, 1)
