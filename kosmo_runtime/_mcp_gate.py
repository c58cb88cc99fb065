"""How many runs the MCP server does at once: ``running`` in worker threads, ``waiting`` more queued.

A tool call beyond both gets :class:`~kosmo_runtime._errors.ServerBusy` at once, with ``retry_after``
estimated from how long recent runs took, instead of a thread (or a place in an unbounded queue);
one that waited ``longest`` seconds (a run's wall-clock limit) for a slot gets it then, unrun.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from ._errors import ServerBusy

__all__ = ["RunGate"]

T = TypeVar("T")

_SMOOTHING = 0.2  # weight of the latest run in the moving average of run durations


class RunGate:
    """Admits at most ``running`` runs at once and ``waiting`` more in line; the rest are told to come back.

    Use it from the server's event loop (one loop: the counters need no lock).
    """

    def __init__(self, running: int = 8, waiting: int = 32, *, longest: float = 30.0) -> None:
        if running < 1 or waiting < 0:
            raise ValueError("a run gate needs running >= 1 and waiting >= 0")
        self.running = running
        self.waiting = waiting
        self.longest = longest  # a run's wall-clock limit: no one waits longer than this for a slot
        self._slots: anyio.CapacityLimiter | None = None
        self._threads: anyio.CapacityLimiter | None = None  # as many as slots: never waited for
        self._admitted = 0
        self._average = 1.0

    @property
    def admitted(self) -> int:
        """Runs running or waiting now."""
        return self._admitted

    async def run(self, work: Callable[[], T]) -> T | ServerBusy:
        """``work()`` in a worker thread once a slot is free; ServerBusy when the line is full, or when no
        slot freed within ``longest`` seconds (then ``work`` never started)."""
        if self._admitted >= self.running + self.waiting:
            return self.busy()
        if self._slots is None or self._threads is None:
            self._slots, self._threads = anyio.CapacityLimiter(self.running), anyio.CapacityLimiter(self.running)
        self._admitted += 1
        try:
            with anyio.move_on_after(self.longest) as waited:
                await self._slots.acquire()
            if waited.cancelled_caught:
                return self.busy(waited=True)
            try:
                return await anyio.to_thread.run_sync(self._timed, work, limiter=self._threads)
            finally:
                self._slots.release()
        finally:
            self._admitted -= 1

    def _timed(self, work: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return work()
        finally:
            self._average += _SMOOTHING * (time.monotonic() - started - self._average)

    def busy(self, *, waited: bool = False) -> ServerBusy:
        """The answer when the line is full (or a place in it lasted ``longest``): when to come back."""
        ahead = self._admitted - self.running + 1  # runs that must end before a slot frees for the retry
        retry_after = float(min(math.ceil(self.longest), max(1, math.ceil(self._average * ahead / self.running))))
        why = (f"no run slot freed within {self.longest:g} s" if waited else
               f"{self.running} runs in progress and {self.waiting} waiting, the most it takes")
        return ServerBusy(
            f"the server is busy: {why}",
            retry_after=retry_after,
            hint=f"nothing was run; call the tool again in {retry_after:g} s (kosmo mcp --max-runs/--max-queued "
                 "set these bounds)")
