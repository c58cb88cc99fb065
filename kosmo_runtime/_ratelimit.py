"""Client-side rate limiting: a token bucket per account at the service's documented rate.

A loop in a script slows down instead of being rejected with 429. Each request
costs tokens (1 by default; a manifest can price methods, as Whereby's points
budget does); the bucket refills at ``requests / per_seconds`` and holds at most
``requests`` tokens, so short bursts up to the documented rate pass at once.

The bucket itself lives in a :class:`~kosmo_runtime._state.State` (in this process by default;
on SQLite or Redis when several processes or replicas share one account's budget).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._errors import LimitExceeded

if TYPE_CHECKING:
    from ._state import State

__all__ = ["RateLimiter"]


class RateLimiter:
    """A thread-safe token bucket: ``requests`` tokens per ``per_seconds``, kept under ``key`` in ``state``."""

    def __init__(self, requests: float, per_seconds: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, state: State | None = None, key: str = "bucket") -> None:
        from ._state import MemoryState

        self.capacity = float(requests)
        self.rate = requests / per_seconds
        self.key = key
        self._state: State = state if state is not None else MemoryState(":memory:", clock=clock)
        self._sleep = sleep
        self.waited = 0.0  # total seconds callers were held back, for reports

    def _reserve(self, cost: float) -> float:
        """Take ``cost`` tokens now (possibly going negative); the seconds to wait before sending."""
        return self._state.reserve(self.key, cost, self.capacity, self.rate)

    def _refund(self, cost: float) -> None:
        self._state.refund(self.key, cost)

    def acquire(self, cost: float, remaining: float) -> float:
        """Wait until ``cost`` tokens are available; returns the seconds waited.

        Raises LimitExceeded (wall_time) without waiting when the wait would outlast
        the run's ``remaining`` seconds.
        """
        cost = min(cost, self.capacity)
        wait = self._reserve(cost)
        if wait > 0:
            if wait >= remaining:
                self._refund(cost)
                raise LimitExceeded(
                    f"run stopped: the service's rate limit would delay the next request by {wait:.1f} s, "
                    f"past the wall-clock limit", limit="wall_time",
                    hint="make fewer calls per run, or raise --wall-time",
                )
            self._sleep(wait)
            self.waited += wait
        return wait
