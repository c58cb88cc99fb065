"""``RetryPolicy``: how failed requests are retried (apart from the HTTP layer, so that building a
Runtime does not import httpx)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass
class RetryPolicy:
    """How failed requests are retried (reads; writes only when provably not applied)."""

    attempts: int = 4                    # first try plus up to three retries
    base_delay: float = 0.25
    max_delay: float = 8.0
    retry_statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return retry_after
        import random

        backoff: float = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return backoff * (0.5 + random.random() / 2)
