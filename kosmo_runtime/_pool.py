"""Sandboxes ready ahead of their runs, so a run starts on a state that is already hardened.

A sandbox serves one run at a time: ``take`` removes it from the pool, and when its run ends
``release`` either resets it for another run or frees it. A reset (``Sandbox.reset``) makes the
state what it was before its first run: each run has its own env and its own copies of every
table a script can change, so once the run's values are collected nothing of it is left but
the layers' caches, which the reset restores; the random generator is seeded afresh.
``tests/runtime/test_reset.py`` proves the reset complete by walking everything the state
holds. A state that hit a limit, was interrupted or ran a session is never reset: it is freed,
and a new one is built. With ``reuse=False`` every run gets a new state, freed when it ends.

One background thread per pool does the work off the runs' path: it resets (or frees) the
state of the run that just ended (at most one waits for it; a second is dealt with on the
spot), then builds sandboxes while fewer than ``size`` are ready. It is started when a second
run ends or by ``wait_full``, and ends when the pool is closed or garbage-collected (it holds the
pool only weakly); the first run's state is freed, not reset (a one-run process such as ``kosmo
run`` resets nothing and never starts the thread). With ``size`` 0 there is no thread: a run's
state is reset on the spot and kept, alone, for the next run. A forked child starts with an empty
pool and no thread.

With ``background=False`` (a worker process) no thread is started: the owner calls ``top_up``
between runs, which resets the finished state and builds on the calling thread.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from ._log import log

__all__ = ["SandboxPool"]


class _Reusable(Protocol):
    def reset(self) -> bool: ...

    def close(self) -> None: ...


_Item = TypeVar("_Item", bound=_Reusable)


_JOIN_SECONDS = 10.0  # building one state takes well under a second; a wedged thread is not waited for longer


class SandboxPool(Generic[_Item]):
    """Up to ``size`` items made by ``make`` ahead of use; each handed to one user at a time, and reset for
    the next (``reuse``) or freed when it comes back."""

    def __init__(self, make: Callable[[], _Item], size: int, *, background: bool = True, reuse: bool = True) -> None:
        self._make = make
        self.size = size
        self.reuse = reuse
        self._background = background
        self._ready: deque[_Item] = deque()
        self._used: deque[_Item] = deque()  # finished, waiting for the thread to reset or free them
        self._lock = threading.Lock()
        self._filled = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._ended = 0  # runs ended
        weakref.finalize(self, self._wake.set)  # an abandoned pool's thread wakes up and ends
        _POOLS.add(self)

    def take(self) -> _Item | None:
        """A ready item, removed from the pool (None when none is ready: the caller builds its own)."""
        try:
            return self._ready.popleft()
        except IndexError:
            return None

    def release(self, item: _Item) -> None:
        """A run ended with ``item``: reset it for another run or free it (on the thread when it is idle),
        and top the pool up."""
        self._ended += 1
        if self._background and self._thread is None and self._ended < 2:
            item.close()  # a process's first run may be its only one (kosmo run): no reset for no one
        elif self.size <= 0 or self._closed or self._used:
            self._recycle(item)
        else:
            self._used.append(item)
        if self._ended >= 2 and self._background:
            self.refill()

    def _recycle(self, item: _Item) -> None:
        """Reset ``item`` into the ready ones (with ``reuse``, while fewer than ``size``, at least one, are
        ready, and if its reset succeeds), else free it."""
        room = max(self.size, 1)
        if self.reuse and not self._closed and len(self._ready) < room and item.reset():
            with self._lock:
                if not self._closed and len(self._ready) < room:  # (the thread may have built one meanwhile)
                    self._ready.append(item)
                    self._filled.notify_all()
                    return
        item.close()

    def top_up(self) -> None:
        """Reset (or free) the finished item and build until ``size`` are ready, on the calling thread."""
        while self._build_one():
            pass

    def refill(self) -> None:
        """Ask the builder thread to top the pool up (off the caller's path; without a thread: now)."""
        if self.size <= 0 or self._closed or (len(self._ready) >= self.size and not self._used):
            return
        if not self._background:
            self.top_up()
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=_build, args=(weakref.ref(self), self._wake),
                                                    name="kosmo-sandbox-pool", daemon=True)
                    self._thread.start()
        self._wake.set()

    def wait_full(self, timeout: float) -> bool:
        """Block until ``size`` items are ready (benchmarks and tests); False on timeout."""
        self.refill()
        with self._filled:
            return self._filled.wait_for(lambda: (len(self._ready) >= self.size and not self._used) or self._closed,
                                         timeout)

    def close(self) -> None:
        """Stop building, close the items never handed out, and wait for the thread to finish the one
        it may be building or freeing (so that nothing of the pool outlives its close)."""
        with self._lock:
            self._closed = True
            ready: list[_Item] = [*self._ready, *self._used]
            self._ready.clear()
            self._used.clear()
            self._filled.notify_all()
            thread = self._thread
        self._wake.set()
        for item in ready:
            item.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=_JOIN_SECONDS)

    def _build_one(self) -> bool:
        """Reset or free a finished item, else make one if the pool wants one; False when there is nothing to do."""
        try:
            used = self._used.popleft()
        except IndexError:
            pass
        else:
            self._recycle(used)
            if not self._used and len(self._ready) >= self.size:
                with self._lock:
                    self._filled.notify_all()
            return True
        if self._closed or len(self._ready) >= self.size:
            return False
        try:
            item = self._make()
        except Exception:  # never fatal: runs then build their own sandbox
            log.exception("building a pooled sandbox failed")
            return False
        with self._lock:
            if not self._closed:
                self._ready.append(item)
                self._filled.notify_all()
                return True
        item.close()
        return False


def _forked(self: SandboxPool[_Item]) -> None:
    """In a forked child: no thread runs there and the locks may be held by one that did."""
    self._lock = threading.Lock()
    self._filled = threading.Condition(self._lock)
    self._wake = threading.Event()
    self._thread = None
    self._ready.clear()  # copies of the parent's states: dropped, never handed to a child's run
    self._used.clear()
    self._ended = 0
    weakref.finalize(self, self._wake.set)


_POOLS: weakref.WeakSet[SandboxPool[Any]] = weakref.WeakSet()
if hasattr(os, "register_at_fork"):
    def _after_fork() -> None:
        for pool in list(_POOLS):
            _forked(pool)

    os.register_at_fork(after_in_child=_after_fork)


def _build(ref: weakref.ref[SandboxPool[_Item]], wake: threading.Event) -> None:
    """The builder thread: tops the pool up each time it is woken, until the pool is gone."""
    while True:
        wake.wait()
        wake.clear()
        while True:
            pool = ref()
            if pool is None or pool._closed:
                return
            built = pool._build_one()
            del pool  # hold the pool only while building, so an abandoned one can be collected
            if not built:
                break
