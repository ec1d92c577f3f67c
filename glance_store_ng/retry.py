"""One retry policy for every driver's backend requests.

A driver sends each request (a HEAD, a part, a segment, an object write) as a
function that raises :mod:`glance_store_ng.errors` (its error boundary already
translated the client's exceptions). :meth:`RetryPolicy.call` calls it again
while it fails with an error whose ``retry`` is TEMPORARY, sleeping with
exponential backoff and full jitter between tries, and raises the last error
marked EXHAUSTED once the tries allowed are spent. Any other error (PERMANENT,
or an exception that is not a StoreError: the caller's source, Ctrl-C) goes
through at once, unchanged.

Retry one request, never a whole add: a request whose body came from a
stream that cannot be read again must not be retried (give it
``RetryPolicy.none()``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import Retry, StoreError

__all__ = ["RetryPolicy", "exhausted"]

LOG = logging.getLogger("glance_store_ng.retry")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``attempts`` tries; before try n+1 sleep uniform(0, min(cap, base * 2**(n-1)))."""

    attempts: int = 5
    """Tries in all (1: no retry)."""
    base: float = 0.5
    """Seconds: the longest first wait; it doubles after each failure."""
    cap: float = 20.0
    """Seconds: the longest wait between two tries."""

    @classmethod
    def none(cls) -> RetryPolicy:
        """One try only: for a request that cannot be sent twice."""
        return cls(attempts=1)

    def delay(self, attempt: int) -> float:
        """The sleep before the next try, after ``attempt`` tries failed (full jitter)."""
        return random.uniform(0.0, min(self.cap, self.base * (2 ** (attempt - 1))))

    def call(
        self,
        request: Callable[[], T],
        what: str = "request",
        *,
        cancelled: threading.Event | None = None,
    ) -> T:
        """``request()``, tried again while it raises a TEMPORARY StoreError.

        Raises the first error that is not TEMPORARY as it is, or the last
        TEMPORARY one marked EXHAUSTED (see :func:`exhausted`) when every try failed.
        Once ``cancelled`` is set (the work it belongs to failed), no new try starts.
        """
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return request()
            except StoreError as exc:
                if exc.retry is not Retry.TEMPORARY:
                    raise
                if attempt >= self.attempts:
                    raise exhausted(exc, attempt, time.monotonic() - started) from exc.__cause__
                if cancelled is not None and cancelled.is_set():
                    raise
                self.wait(attempt, what, exc)

    def wait(self, attempt: int, what: str, error: BaseException) -> None:
        """Sleep before the next try after ``attempt`` failed ones, and log why."""
        delay = self.delay(attempt)
        LOG.debug(
            "%s failed (%s: %s); try %d of %d in %.2fs",
            what,
            type(error).__name__,
            error,
            attempt + 1,
            self.attempts,
            delay,
        )
        time.sleep(delay)


def exhausted(error: StoreError, attempts: int, seconds: float) -> StoreError:
    """``error`` marked EXHAUSTED, its message saying how long it was tried.

    With a single try nothing was spent: the error stays TEMPORARY (a caller may
    try again later).
    """
    if attempts > 1:
        error.message += f" (gave up after {attempts} attempts in {seconds:.1f}s)"
        error.args = (error.message,)
        error.retry = Retry.EXHAUSTED
    return error
