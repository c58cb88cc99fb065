"""What "now" is: one clock shared by handlers, simulators and the script's ``os.time``/``os.date``.

A clock is a callable returning the current time as an aware datetime. Real use
reads the real clock (:func:`utc_now`); demo mode runs a simulated one
(:func:`running_from`) so that everything in the demo world agrees on the date.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

__all__ = ["Clock", "read", "running_from", "utc_now"]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real current time, aware, in UTC."""
    return datetime.now(timezone.utc)


def read(clock: Clock) -> datetime:
    """``clock()`` as an aware UTC datetime (a naive answer is taken as UTC)."""
    moment = clock()
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def running_from(start: datetime) -> Clock:
    """A clock that reads ``start`` now and then advances in real time (``time.monotonic``)."""
    origin = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
    t0 = time.monotonic()
    return lambda: origin + timedelta(seconds=time.monotonic() - t0)
