"""The retry policy every driver's requests go through (glance_store_ng.retry), as pure logic."""

from __future__ import annotations

import pytest

from glance_store_ng import errors
from glance_store_ng.retry import RetryPolicy


def test_only_temporary_errors_are_retried():
    for error in (
        errors.NotFound("gone"),
        errors.PermissionDenied("no"),
        errors.BackendUnavailable("bad certificate", retry=errors.Retry.PERMANENT),
    ):
        calls: list[int] = []

        def fail(error=error, calls=calls):
            calls.append(1)
            raise error

        with pytest.raises(type(error)) as caught:
            RetryPolicy(attempts=5, base=0).call(fail)
        assert caught.value is error and len(calls) == 1


def test_other_exceptions_pass_through_at_once():
    calls = []

    def interrupted():
        calls.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        RetryPolicy(attempts=5, base=0).call(interrupted)
    assert len(calls) == 1


def test_retried_until_it_passes():
    outcomes = [
        errors.BackendUnavailable("busy"),
        errors.ChecksumMismatch("bent", retry=errors.Retry.TEMPORARY),
        "done",
    ]

    def flaky():
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    assert RetryPolicy(attempts=3, base=0).call(flaky) == "done"


def test_the_last_error_is_marked_exhausted_and_says_so():
    calls = []

    def down():
        calls.append(1)
        raise errors.BackendUnavailable(f"down #{len(calls)}")

    with pytest.raises(errors.BackendUnavailable) as caught:
        RetryPolicy(attempts=4, base=0).call(down)
    assert len(calls) == 4
    assert caught.value.retry is errors.Retry.EXHAUSTED
    assert caught.value.retryable  # later
    assert str(caught.value).startswith("down #4 (gave up after 4 attempts in ")


def test_a_single_try_stays_temporary():
    def down():
        raise errors.BackendUnavailable("down")

    with pytest.raises(errors.BackendUnavailable) as caught:
        RetryPolicy.none().call(down)
    assert caught.value.retry is errors.Retry.TEMPORARY
    assert str(caught.value) == "down"


def test_backoff_is_exponential_with_full_jitter_and_capped():
    policy = RetryPolicy(attempts=10, base=0.5, cap=3.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jittered over the whole range, not fixed
        assert min(delays) < ceiling / 2
