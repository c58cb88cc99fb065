"""Worker processes: runs in a pool of N processes, each of which can be killed and replaced.

What runs where. The parent (the ``Runtime`` a caller holds) checks the configuration, keeps the
docs and the approval callback, and hands each run or call, as a plain dict with its merged
``RunOptions`` (without the approver), to an idle worker over a pipe. Each worker is a *spawned* Python process (never a fork of a process with threads)
holding its own in-process ``Runtime``: its sandboxes, HTTP clients and call threads. It answers
with the result envelope (``RunResult.to_dict()``), which the parent turns back into a
``RunResult``: the same result, output, error and calls as in-process.

While a run is under way the worker streams what must not be lost if it dies: every 50 ms, the
output printed and the records of the calls finished since the last time. An ``ask`` write is a question over the same pipe: the
parent calls the approver (an MCP client's user, a terminal) and sends the answer back.

Kill and replace. The parent waits for a run's envelope until its wall-clock limit plus a small
grace (:func:`kill_after`). A run still busy then, e.g. inside one long C call (a pattern match,
``table.concat``), gets its worker killed with SIGKILL; the run ends with the wall-clock
``LimitExceeded`` error, carrying the output and calls streamed so far, and a new worker is
started in its place. A worker that dies on its own (a crash, its address-space cap, a kill from
outside) ends its run with ``WorkerCrashed`` and is replaced the same way. Other runs, on other
workers, never notice.

Memory. Each worker caps its own address space (``RLIMIT_AS``, soft limit, set before each run)
at its baseline after start-up plus :data:`HEADROOM` plus ``4 x`` the run's memory limit, so a
leak or a host-side blow-up fails inside that worker instead of taking the host down.

Shared state. The workers of one pool append to the same audit log (one ``write()`` per line on
an ``O_APPEND`` descriptor, so lines never interleave) and use one state (``_state.py``): each
account's rate bucket, the records and the idempotency claims, in one SQLite file (or at the
configured SQLite or Redis URL).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import multiprocessing
import os
import pickle
import select
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ._errors import KosmoError, WorkerCrashed
from ._limits import limit_exceeded
from ._result import CallRecord, RunResult

if TYPE_CHECKING:
    from ._options import RunOptions
    from ._policy import Approver
    from ._runtime import Runtime

__all__ = ["HEADROOM", "WorkerPool", "kill_after"]

MiB = 1024 * 1024

#: Address space a worker may use above its start-up baseline besides 4 x the run's memory limit:
#: its call threads' stacks (32 x 8 MiB) and the growth of Python, lupa and httpx.
HEADROOM = 384 * MiB

START_TIMEOUT = 120.0  # seconds a new worker may take to import, build its Runtime and warm up
OUTPUT_EVERY = 0.05  # seconds between streamed pieces of a run's output and call records
_MALLOC_ARENA_MAX = -8  # glibc mallopt(): bound the per-thread malloc arenas (64 MiB of address space each)


def kill_after(wall_time: float) -> float:
    """Seconds after dispatch at which a run still busy has its worker killed: 1.1 x its limit + 0.1 s
    (within the documented overrun of 1.2 x + 100 ms; the worker's own clock usually stops it first)."""
    return wall_time * 1.1 + 0.1


# -- the parent side -------------------------------------------------------------------------------


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context: Any, options: dict[str, Any], address_space: int | None) -> None:
        self.conn, child = context.Pipe(duplex=True)
        #: jobs the worker has taken (it counts each up before any of it runs), in memory both processes
        #: share: an acknowledgement the parent reads only when the worker dies, instead of a message
        #: it would be woken for on every run
        self.taken = context.RawValue("q", 0)
        self.sent = 0  # jobs sent to it
        self.process = context.Process(target=worker_main, args=(child, options, address_space, self.taken),
                                       name="kosmo-worker", daemon=True)
        self.process.start()
        child.close()  # the parent keeps only its own end: the worker's death is EOF here
        self.ready = False
        self.send_lock = threading.Lock()
        self._poller = select.poll()
        self._poller.register(self.conn.fileno(), select.POLLIN)

    def readable(self, timeout: float) -> bool:
        """Whether a message (or EOF) can be read within ``timeout`` seconds (one poll object per
        worker: ``Connection.poll`` builds a selector for every call)."""
        return bool(self._poller.poll(max(0, math.ceil(timeout * 1000))))

    @property
    def pid(self) -> int:
        return self.process.pid  # type: ignore[no-any-return]

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(message)

    def kill(self) -> None:
        """SIGKILL, unless it was already reaped (its pid may belong to another process by now)."""
        with contextlib.suppress(ProcessLookupError, OSError, ValueError):
            self.process.kill()

    def reap(self) -> int | None:
        """Wait for the process to end (it was killed or died); its exit code."""
        self.process.join(5.0)
        if self.process.is_alive():
            self.kill()
            self.process.join(5.0)
        self.conn.close()
        return self.process.exitcode  # type: ignore[no-any-return]


class _Lost(Exception):
    """The worker's pipe broke: it died (or failed to start, with ``error``); ``taken``: after it
    acknowledged the job (before that, nothing of the job ran and another worker may take it)."""

    def __init__(self, error: KosmoError | None = None, *, taken: bool = True) -> None:
        super().__init__()
        self.error = error
        self.taken = taken


class WorkerPool:
    """``size`` worker processes built from ``options`` (``Runtime`` keyword arguments, picklable)."""

    def __init__(self, size: int, options: dict[str, Any], *, address_space: int | None = None) -> None:
        if size < 1:
            raise ValueError(f"workers must be at least 1, got {size}")
        try:
            pickle.dumps(options)
        except Exception as exc:
            raise ValueError(f"workers= needs a configuration that can be sent to another process: {exc}") from None
        self.size = size
        self._options = options
        self._address_space = address_space
        self._context = multiprocessing.get_context("spawn")
        self._alive: list[_Worker] = []
        self._idle: deque[_Worker] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self.killed = 0  # workers killed at a run's deadline
        self.crashed = 0  # workers that died on their own
        with self._changed:
            for _ in range(size):
                self._start()

    def _start(self) -> None:
        """A new worker, idle (it becomes ready in the background); call with ``_changed`` held."""
        worker = _Worker(self._context, self._options, self._address_space)
        self._alive.append(worker)
        self._idle.append(worker)
        self._changed.notify()

    @property
    def pids(self) -> list[int]:
        """The process ids of the live workers."""
        with self._changed:
            return [worker.pid for worker in self._alive]

    def _acquire(self) -> _Worker:
        """An idle worker; one that died while idle (killed from outside) is replaced, not handed out."""
        while True:
            with self._changed:
                while not self._idle:
                    if self._closed:
                        raise _Lost(KosmoError("the runtime was closed while the run waited for a worker"))
                    if len(self._alive) < self.size:
                        self._start()
                        break
                    self._changed.wait()
                if self._closed:
                    raise _Lost(KosmoError("the runtime was closed while the run waited for a worker"))
                worker = self._idle.popleft()
            if worker.process.is_alive():
                return worker
            self.crashed += 1
            self._replace(worker)

    def _release(self, worker: _Worker) -> None:
        with self._changed:
            if self._closed:
                worker.send(("stop",))
                return
            self._idle.append(worker)
            self._changed.notify()

    def _replace(self, worker: _Worker, *, restart: bool = True) -> int | None:
        worker.kill()
        code = worker.reap()
        with self._changed:
            if worker in self._alive:
                self._alive.remove(worker)
            if restart and not self._closed:
                self._start()
            self._changed.notify_all()
        return code

    def _ready(self, worker: _Worker) -> None:
        """Wait for a new worker's start-up message."""
        if worker.ready:
            return
        try:
            if not worker.conn.poll(START_TIMEOUT):
                raise _Lost(WorkerCrashed(f"a worker process did not start within {START_TIMEOUT:g} seconds",
                                          hint="the machine may be overloaded; try again"))
            message = worker.conn.recv()
        except (EOFError, OSError):
            code = worker.reap()
            raise _Lost(WorkerCrashed(
                f"a worker process failed to start ({_how(code)}); its standard error says why",
                hint="a program that starts workers must guard its entry point with "
                     "if __name__ == '__main__': (workers are spawned processes that import the main module)")) from None
        if message[0] == "failed":
            raise _Lost(KosmoError.from_dict(message[1]))
        worker.ready = True

    def execute(self, job: dict[str, Any], run: RunOptions, *,
                on_output: Callable[[str], None] | None = None) -> RunResult:
        """Run ``job`` (a run or a call, as a dict) with the options ``run`` (merged over the Runtime's) on an
        idle worker; kill it past ``kill_after`` its wall-clock limit. The worker gets ``run`` without its
        approver, whose questions come back here.

        A worker that dies before it acknowledged the job (killed while idle) ran none of it: the job
        goes to another worker."""
        assert run.limits is not None, "execute takes merged options (Runtime.run_options)"
        job = {**job, "options": run.for_worker(), "ask": run.approve is not None}
        for _ in range(self.size + 2):
            result = self._attempt(job, run.limits.wall_time, on_output, run.approve)
            if result is not None:
                return result
        return RunResult(ok=False, error=WorkerCrashed(
            "no worker process could take the run: each died before it started",
            hint="the machine may be short of memory or processes; see the server's standard error"))

    def _attempt(self, job: dict[str, Any], wall_time: float, on_output: Callable[[str], None] | None,
                 approve: Approver | None) -> RunResult | None:
        started = time.monotonic()
        output: list[str] = []
        calls: list[dict[str, Any]] = []
        try:
            worker = self._acquire()
        except _Lost as lost:
            return RunResult(ok=False, error=lost.error, duration=time.monotonic() - started)
        try:
            self._ready(worker)
            started = time.monotonic()  # the wall clock starts when a ready worker takes the job
            try:
                worker.send(("job", job))
            except OSError:  # it died between the liveness check and now
                raise _Lost(taken=False) from None
            worker.sent += 1
            envelope = self._follow(worker, started + kill_after(wall_time), output, calls, on_output, approve)
        except _Lost as lost:
            code = self._replace(worker, restart=lost.error is None)
            self.crashed += 1
            if not lost.taken:
                return None
            error = lost.error or _crashed(code)
            return RunResult(ok=False, output="".join(output), error=error,
                             calls=[CallRecord.from_dict(c) for c in calls], duration=time.monotonic() - started)
        if envelope is None:  # past the deadline, still busy (e.g. inside one long C call): kill and replace
            self.killed += 1
            self._replace(worker)
            return RunResult(ok=False, output="".join(output), error=limit_exceeded("wall_time", wall_time),
                             calls=[CallRecord.from_dict(c) for c in calls], duration=time.monotonic() - started)
        self._release(worker)
        return RunResult.from_dict(envelope)

    def _follow(self, worker: _Worker, kill_at: float, output: list[str], calls: list[dict[str, Any]],
                on_output: Callable[[str], None] | None, approve: Approver | None) -> dict[str, Any] | None:
        """Read the worker's messages until its envelope (``None``: the deadline passed first)."""
        conn = worker.conn
        while True:
            left = kill_at - time.monotonic()
            try:
                if left <= 0 or not worker.readable(left):
                    if time.monotonic() >= kill_at:
                        return None
                    continue
                message = conn.recv()
            except (EOFError, OSError):
                raise _Lost(taken=worker.taken.value >= worker.sent) from None
            kind = message[0]
            if kind == "result":
                envelope: dict[str, Any] = message[1]
                streamed = sum(map(len, output))
                if on_output is not None and len(envelope["output"]) > streamed:
                    on_output(envelope["output"][streamed:])  # what was printed since the last piece
                return envelope
            elif kind == "output":
                output.append(message[1])
                if on_output is not None:
                    on_output(message[1])
            elif kind == "calls":
                calls += message[1]
            elif kind == "approve":
                _answer_later(worker, message[1], message[2], approve)

    def close(self) -> None:
        """Stop every worker: idle ones are asked to exit, busy ones killed; none is left behind."""
        with self._changed:
            self._closed = True
            workers, idle = list(self._alive), set(self._idle)
            self._alive.clear()
            self._idle.clear()
            self._changed.notify_all()
        for worker in workers:
            if worker in idle:
                with contextlib.suppress(OSError):
                    worker.send(("stop",))
            else:
                worker.kill()
        for worker in workers:
            worker.reap()


def _answer_later(worker: _Worker, question: int, request: dict[str, Any], approve: Approver | None) -> None:
    """Ask the approver in a thread of its own (a run's parallel writes may ask at once)."""
    from ._policy import WriteRequest

    def answer() -> None:
        try:
            allowed = bool(approve(WriteRequest(**request))) if approve is not None else False
        except Exception:  # an approver that fails denies the write
            allowed = False
        with contextlib.suppress(OSError):
            worker.send(("answer", question, allowed))

    threading.Thread(target=answer, name="kosmo-approval", daemon=True).start()


def _how(code: int | None) -> str:
    """How a process ended, from its exit code."""
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _crashed(code: int | None) -> WorkerCrashed:
    return WorkerCrashed(
        f"run stopped: the worker process running it died ({_how(code)}); calls lists the calls it had finished",
        hint="a new worker took its place. If the script builds very large values or strings, do less per run "
             "(each worker's memory is capped from the memory limit); otherwise report it")


def worker_options(runtime: Runtime, store_dir: Callable[[], str]) -> dict[str, Any]:
    """The keyword arguments a worker builds its own ``Runtime`` from (the parent's configuration)."""
    transport, mounts = runtime._transports
    if transport is not None or mounts:
        raise ValueError("workers= cannot be combined with transport= or mounts= (a transport object cannot be "
                         "sent to another process); give accounts with base_url settings instead")
    audit = runtime.audit_log
    return {
        "accounts": runtime.accounts,
        "options": runtime.defaults.for_worker(),  # its approver stays here: a worker's questions come back
        "integration_paths": list(runtime._integration_paths),
        "state": _shared_state(runtime, store_dir),
        "docs_path": runtime._docs_path,
        "retry": runtime.retry,
        "audit_log": audit.path if audit is not None else None,
        "clock": runtime.clock,
        "pool": runtime._pool_size,
        "reuse": runtime._reuse,
    }


def _shared_state(runtime: Runtime, store_dir: Callable[[], str]) -> str:
    """A state every worker opens, so that rate budgets, records and claims are shared: the configured
    URL (SQLite or Redis), else a ``SqliteState`` in the records store's file (rate buckets and claims
    join its records), an in-memory store (the demo's) being copied into a file of the pool first."""
    from pathlib import Path

    from ._store import Store, default_store_path

    state, source = runtime.state, runtime._state_source
    if state.url != "memory":
        if isinstance(source, str):
            return source
        configured = os.environ.get("KOSMO_STATE_URL") or runtime.accounts.settings.get("state")
        return str(configured) if source is None and configured else state.url
    store = runtime._store_source
    if store is None:
        return str(default_store_path())
    if isinstance(store, (str, Path)) and str(store) != ":memory:":
        return str(Path(store).expanduser())
    if isinstance(store, Store) and store.path != ":memory:":
        return str(Path(store.path).expanduser())
    path = os.path.join(store_dir(), "state.sqlite3")
    if isinstance(store, Store):
        import sqlite3

        target = sqlite3.connect(path)
        try:
            store._db().backup(target)
        finally:
            target.close()
    return path


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    """The pool's own folder (the shared state when the records store was in memory), removed at close."""
    return tempfile.TemporaryDirectory(prefix="kosmo-workers-")


# -- the worker side -------------------------------------------------------------------------------


class _Channel:
    """The worker's end of the pipe: one lock for sending, one for reading, buffered output.

    Between runs the main thread reads the next job itself; during a run the only messages are
    answers to approval questions, read by the thread that asked."""

    def __init__(self, conn: Connection, taken: Any) -> None:
        self.conn = conn
        self._taken = taken  # the parent's count of jobs taken (see _Worker.taken)
        self._lock = threading.Lock()
        self._reading = threading.Lock()
        self._answers: dict[int, list[Any]] = {}  # question -> [Event, answer]
        self._questions = itertools.count(1)
        self._output: list[str] = []
        self._calls: list[CallRecord] = []
        self.running = threading.Event()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self.conn.send(message)

    def _receive(self) -> tuple[Any, ...]:
        try:
            return self.conn.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError):  # the parent died or closed the pipe: nobody wants what this worker does
            os._exit(0)

    def next_job(self) -> dict[str, Any] | None:
        """The next job (``None``: stop), acknowledged before anything of it runs (dying before the
        acknowledgement loses nothing: the parent gives the job to another worker)."""
        with self._reading:
            message = self._receive()
        if message[0] != "job":
            return None
        self._taken.value += 1
        return message[1]  # type: ignore[no-any-return]

    def ask(self, request: Any) -> bool:
        """Forward an ``ask`` write to the parent's approver and wait for its answer."""
        question = next(self._questions)
        waiting: list[Any] = [threading.Event(), False]
        self._answers[question] = waiting
        try:
            self.send(("approve", question, asdict(request)))
            while not waiting[0].is_set():
                with self._reading:  # one reader at a time; it hands every answer to its asker
                    if waiting[0].is_set():
                        break
                    message = self._receive()
                    if message[0] == "answer" and message[1] in self._answers:
                        self._answers[message[1]][1] = message[2]
                        self._answers[message[1]][0].set()
            return bool(waiting[1])
        finally:
            del self._answers[question]

    def output(self, text: str) -> None:
        with self._lock:
            self._output.append(text)

    def flush(self) -> None:
        """Send the output and call records gathered since the last time."""
        with self._lock:
            if self._output:
                text = "".join(self._output)
                self._output.clear()
                self.conn.send(("output", text))
            if self._calls:
                self.conn.send(("calls", [call.to_dict() for call in self._calls]))
                self._calls = []

    def finish(self, result: RunResult) -> None:
        """Send a run's envelope: its output and calls are in it (what is gathered is dropped)."""
        with self._lock:
            self._output.clear()
            self._calls = []
            self.conn.send(("result", result.to_dict()))

    def stream_output(self) -> None:
        while True:
            self.running.wait()
            time.sleep(OUTPUT_EVERY)
            self.flush()

    def record(self, call: CallRecord, arguments: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(call)  # made a dict only when streamed (most runs end before that)


def _exit_with_parent() -> None:
    """End this worker the moment its parent process ends, even in the middle of a run."""
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os._exit(0)


def worker_main(conn: Connection, options: dict[str, Any], address_space: int | None, taken: Any) -> None:
    """A worker process: build a Runtime, warm it up, then run jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it closes the pool)
    _bound_malloc_arenas()
    threading.Thread(target=_exit_with_parent, name="kosmo-worker-parent", daemon=True).start()
    channel = _Channel(conn, taken)
    try:
        from ._runtime import Runtime

        runtime = Runtime(**options)
        runtime._on_call = channel.record
        _foreground_sandboxes(runtime)
        _warm_up(runtime)
    except KosmoError as exc:
        channel.send(("failed", exc.to_dict()))
        return
    baseline = _address_space_used()
    channel.send(("ready", os.getpid()))
    threading.Thread(target=channel.stream_output, name="kosmo-worker-output", daemon=True).start()
    cap = 0
    while (job := channel.next_job()) is not None:
        run: RunOptions = job["options"]
        wanted = address_space or baseline + HEADROOM + 4 * (run.limits or runtime.limits).memory
        if wanted != cap:  # (system calls: only when the run's memory limit changes the cap)
            _cap_address_space(wanted)
            cap = wanted
        channel.running.set()
        try:
            result = _execute(runtime, job, run.replace(approve=channel.ask) if job["ask"] else run, channel)
        finally:
            channel.running.clear()
        channel.finish(result)
        runtime._sandboxes.top_up()  # the run's state reset (or freed and another built), once its result is sent
    runtime.close()


def _execute(runtime: Runtime, job: dict[str, Any], run: RunOptions, channel: _Channel) -> RunResult:
    """The job, with the parent's run options (its approver: a question to the parent)."""
    if job["kind"] == "call":
        return runtime.call(job["function"], job["arguments"], account=job["account"], options=run)
    return runtime.run(job["source"], name=job["name"], on_output=channel.output, options=run)


def _foreground_sandboxes(runtime: Runtime) -> None:
    """The worker builds its next sandbox itself, between jobs, after sending a result: a pool
    thread would build it at the same moment (when a run ends) and hold the GIL the run needs to
    finish and send its result (a busy worker spent 50-100 µs a run more on those hand-overs)."""
    from ._pool import SandboxPool

    runtime._sandboxes.close()
    runtime._sandboxes = SandboxPool(runtime._prebuilt, runtime._pool_size, background=False, reuse=runtime._reuse)


def _warm_up(runtime: Runtime) -> None:
    """Load what every run needs before the first one: the app layer, the call layer, the manifests."""
    from . import _calls, _http, _parallel  # noqa: F401 - imported for their cost, now

    for name in runtime.catalog.names():
        runtime.catalog.find(name)
    accounts = runtime.accounts
    for ident in accounts.integrations():
        loaded = runtime.catalog.find(ident)
        for name in accounts.account_names(ident):
            with contextlib.suppress(KosmoError):  # an account that cannot be used says so when a run uses it
                runtime._pool.client(loaded.manifest, accounts.account(ident, name))  # type: ignore[union-attr]
    runtime.run("local _ = app.integrations return #lua_list_docs()", name="warm-up.lua")
    runtime._sandboxes.top_up()


def _bound_malloc_arenas() -> None:
    """Two malloc arenas instead of one per thread: each reserves 64 MiB of address space, which the
    address-space cap would otherwise spend on nothing (glibc only; elsewhere nothing to do)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).mallopt(_MALLOC_ARENA_MAX, 2)


def _address_space_used() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 256 * MiB


def _cap_address_space(size: int) -> None:
    """The soft RLIMIT_AS of this process (the hard limit stays: the next run may need more)."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (size if hard == resource.RLIM_INFINITY else min(size, hard), hard))
