"""What "now" is: one clock shared by handlers, simulators and the script's ``os.time``/``os.date``.

A clock is a callable returning the current time as an aware datetime. Real use
reads the real clock (:func:`utc_now`); demo mode runs a simulated one
(:func:`running_from`) so that everything in the demo world agrees on the date.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # datetime loads on the first reading of a clock (a run that reads none never imports it)
    from datetime import datetime

__all__ = ["Clock", "format_time", "parse_time", "read", "running_from", "utc_now"]

Clock = Callable[[], "datetime"]


def utc_now() -> datetime:
    """The real current time, aware, in UTC."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def read(clock: Clock) -> datetime:
    """``clock()`` as an aware UTC datetime (a naive answer is taken as UTC)."""
    from datetime import timezone

    moment = clock()
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class _Running:
    """``origin`` at monotonic time ``t0``, advancing in real time. A plain object, so that it
    pickles: worker processes read the same simulated date (``time.monotonic`` is system-wide)."""

    __slots__ = ("origin", "t0")

    def __init__(self, origin: datetime, t0: float) -> None:
        self.origin, self.t0 = origin, t0

    def __call__(self) -> datetime:
        from datetime import timedelta

        return self.origin + timedelta(seconds=time.monotonic() - self.t0)


def running_from(start: datetime) -> Clock:
    """A clock that reads ``start`` now and then advances in real time (``time.monotonic``)."""
    from datetime import timezone

    return _Running(start if start.tzinfo else start.replace(tzinfo=timezone.utc), time.monotonic())


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 date-time (``Z``, ``z`` or an offset; none means UTC) as an aware datetime, ``None``
    for ``None``. A ``format: date-time`` argument always parses (the framework checked it); other
    text may raise ValueError."""
    if text is None:
        return None
    from datetime import datetime, timezone

    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def format_time(moment: datetime) -> str:
    """``moment`` in UTC to the second, e.g. ``2025-01-15T11:00:00Z``."""
    from datetime import timezone

    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
