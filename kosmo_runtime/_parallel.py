"""Integration calls made concurrently for ``app.parallel``.

The Lua side runs each branch in its own coroutine; when a branch calls an
integration function, the call is submitted here (arguments converted on the Lua
thread) and the branch yields. Worker threads run the calls; the scheduler waits
for any of them to finish and resumes that branch. Concurrency is bounded three
ways: ``app.parallel``'s own ``concurrency`` (branches in flight), a per-account
bound here, and the account's rate limiter in the HTTP layer.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from ._errors import IntegrationBug, KosmoError, LimitExceeded
from ._limits import limit_exceeded

if TYPE_CHECKING:
    from ._calls import Invoker
    from ._values import Converter

__all__ = ["PER_ACCOUNT", "CallPool", "ParallelCalls"]

CLOSE_GRACE = 2.0  # seconds past the deadline a run's end waits for its calls under way (they time out by then)
PER_ACCOUNT = 16  # calls in flight per integration account, whatever the scripts ask (rate limits still apply)


class _NotSent(Exception):
    """A queued call the run's end stopped before it was sent."""


class CallPool:
    """The Runtime's worker threads and per-account bounds, shared by all runs."""

    def __init__(self, workers: int = 32) -> None:
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._bounds: dict[tuple[str, str], threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def submit(self, key: tuple[str, str], job: Callable[[], Any]) -> Future[Any]:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="kosmo-call")
            bound = self._bounds.setdefault(key, threading.BoundedSemaphore(PER_ACCOUNT))

        def bounded() -> Any:
            with bound:
                return job()

        return self._executor.submit(bounded)

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None


class ParallelCalls:
    """One run's in-flight calls: ``submit`` returns a ticket, ``wait_any`` the finished ones."""

    def __init__(self, invoker: Invoker, convert: Converter, pool: CallPool, remaining: Callable[[], float],
                 wall_time: float) -> None:
        self._invoker = invoker
        self._wall_time = wall_time
        self._convert = convert
        self._pool = pool
        self._remaining = remaining
        self._tickets = itertools.count(1)
        self._pending: dict[Future[Any], int] = {}
        self._generation = 0  # one per run or session chunk

    def submit(self, ident: str, account: str | None, function: str, args: Any) -> int:
        """Start one call; the call limit counts the calls in flight too (and the further pages of those made)."""
        arguments = self._convert.arguments(args, f"{ident}.{function}")
        if self._invoker.spent() + len(self._pending) >= self._invoker.max_calls:
            raise limit_exceeded("calls", self._invoker.max_calls)
        ticket = next(self._tickets)
        generation = self._generation

        def job() -> Any:
            if generation != self._generation:  # its run ended while it waited for a worker or its account's bound
                raise _NotSent()
            return self._invoker.call(ident, account, function, arguments)

        future = self._pool.submit((ident, account or "default"), job)
        self._pending[future] = ticket
        return ticket

    def close(self) -> None:
        """The run (or a session's chunk) ended: calls not started are never sent, calls under way
        are awaited (and so recorded in its calls and the audit log before its result is made)."""
        self._generation += 1
        running = [future for future in self._pending if not future.cancel()]
        self._pending.clear()
        if running:
            wait(running, timeout=max(0.0, self._remaining()) + CLOSE_GRACE)

    def wait_any(self) -> list[dict[str, Any]]:
        """Block until at least one call finishes; each finished call as ``{ticket, ok, value}``."""
        if not self._pending:
            return []
        done, _ = wait(list(self._pending), timeout=max(0.0, self._remaining()), return_when=FIRST_COMPLETED)
        if not done:
            raise limit_exceeded("wall_time", self._wall_time)
        finished = []
        for future in done:
            ticket = self._pending.pop(future)
            try:
                finished.append({"ticket": ticket, "ok": True, "value": future.result()})
            except LimitExceeded:
                raise
            except _NotSent:
                continue
            except KosmoError as exc:
                finished.append({"ticket": ticket, "ok": False, "value": exc.to_dict()})
            except Exception:  # Invoker.call already turns handler bugs into IntegrationBug
                error = IntegrationBug("the runtime failed internally while running a parallel call")
                finished.append({"ticket": ticket, "ok": False, "value": error.to_dict()})
        return finished
