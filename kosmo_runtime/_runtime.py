"""``Runtime``: runs agent Lua scripts (and single calls) against the installed integrations."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ._accounts import AccountsConfig, WritePolicy, default_accounts_path
from ._apphost import AppHost
from ._clock import Clock, utc_now
from ._discovery import Catalog
from ._errors import InvalidArgument, KosmoError, LimitExceeded, NotFound
from ._limits import Limits
from ._options import RunOptions, RunOverrides
from ._pool import SandboxPool
from ._result import RunResult
from ._retry import RetryPolicy
from ._sandbox import Sandbox

if TYPE_CHECKING:  # httpx, sqlite, the docs and the call layer load when first used (a fast `return 1`)
    import httpx
    from opentelemetry.trace import TracerProvider
    from typing_extensions import Unpack

    from ._audit import AuditLog
    from ._calls import Invoker
    from ._cassette import Tape
    from ._docs import Docs
    from ._http import ClientPool
    from ._parallel import CallPool
    from ._policy import Approver
    from ._state import State
    from ._store import Store
    from ._tracing import RunSpan
    from ._workers import WorkerPool

_Made = TypeVar("_Made")

__all__ = ["Runtime", "Session"]

#: The globals the app layer (``_app.lua``) defines.
APP_GLOBALS = ("app", "lua_list_docs", "lua_search_docs", "lua_read_doc")


class Runtime:
    """Runs Lua scripts, each in a fresh sandbox environment, with the configured integration accounts.

    Parameters (all optional):

    ``accounts``           path of the accounts YAML file, or an ``AccountsConfig``. Default:
                           ``$KOSMO_ACCOUNTS``, else the per-user file if it exists, else none.
    ``limits``             default ``Limits`` for runs (each run may lower or raise them up to the ceilings).
    ``integration_paths``  extra folders holding integration folders.
    ``transport``/``mounts``  an httpx transport for every client, or per base-URL prefix (tests, simulators).
    ``writes``             run-wide write policy: ``allow``, ``deny`` or ``ask`` (the stricter of this and
                           the account's applies).
    ``approve``            callback deciding ``ask`` writes; without it, ``ask`` means deny.
    ``options``            the default ``RunOptions`` of every run, call and session (``Runtime.defaults``;
                           ``limits``, ``writes`` and ``approve`` given as keywords win over its own), e.g.
                           ``RunOptions(read_only=True)`` for a Runtime none of whose runs may write.
    ``store``              the local store (path or ``Store``) for facts a service cannot answer later,
                           used by the in-process state.
    ``state``              where rate budgets, records and idempotency claims live: a ``State``, or a URL
                           (``memory``, ``sqlite:///path``, ``redis://host:6379/0``). Default:
                           ``$KOSMO_STATE_URL``, else the accounts file's ``settings: state``, else in
                           this process (records in ``store``).
    ``retry``              the ``RetryPolicy`` for failed requests (its ``sleep`` also paces the rate limiters).
    ``audit_log``          path of a JSON Lines audit log (default: ``$KOSMO_AUDIT_LOG``, else the accounts
                           file's ``settings: audit_log``, else none).
    ``clock``              what "now" is: a callable returning an aware datetime, read by handlers
                           (``ctx.now()``) and by scripts (``os.time()``, ``os.date(format)``). Default: the
                           real clock in UTC; ``Demo.runtime()`` passes the demo's simulated date.
    ``tracer_provider``    an OpenTelemetry ``TracerProvider`` for the runs' spans (extra ``otel``); default:
                           the host's global provider, if it configured one; ``False``: no tracing.
    ``workers``            run scripts and calls in a pool of this many worker processes (``_workers.py``):
                           every core used, a run stuck in C code past its wall-clock limit killed. Default
                           ``None``: in this process. Sessions (the REPL) and recorded or replayed runs always
                           run in this process.
    ``worker_memory``      with ``workers``: each worker's address-space cap in bytes (default: its
                           baseline + 384 MiB + 4x the run's memory limit, set per run).

    ``pool``               how many sandboxes to keep ready ahead of runs (default 2), each a hardened Lua
                           state serving one run at a time; a background thread resets the state of a run
                           that ended, or builds new ones, off the runs' path. 0: no thread; a run's state is
                           reset when the run ends, and kept for the next run.
    ``reuse``              reset a run's state for another run (default ``True``; ``_pool.py`` says what a
                           reset restores and how it is proved complete); ``False``: every run gets a new Lua
                           state, freed when it ends. A state that hit a limit, or a session's, is never reused.

    A Runtime is safe to share between threads; each run gets its own environment, in a Lua state no
    other run is using.
    """

    def __init__(
        self,
        *,
        accounts: str | Path | AccountsConfig | None = None,
        limits: Limits | None = None,
        integration_paths: tuple[str | Path, ...] | list[str | Path] = (),
        transport: httpx.BaseTransport | None = None,
        mounts: Mapping[str, httpx.BaseTransport] | None = None,
        writes: WritePolicy | None = None,
        approve: Approver | None = None,
        store: Store | str | Path | None = None,
        state: State | str | None = None,
        docs_path: str | Path | None = None,
        retry: RetryPolicy | None = None,
        audit_log: str | Path | AuditLog | None = None,
        clock: Clock | None = None,
        pool: int = 2,
        reuse: bool = True,
        tracer_provider: TracerProvider | bool | None = None,
        workers: int | None = None,
        worker_memory: int | None = None,
        options: RunOptions | None = None,
    ) -> None:
        given = {"limits": limits, "writes": writes, "approve": approve}
        base = (options or RunOptions()).replace(**{name: value for name, value in given.items() if value is not None})
        if base.idempotency_key is not None:
            raise ValueError("Runtime(options=...) cannot carry an idempotency_key: a key names one run and its "
                             "retries; pass it to Runtime.run or Runtime.call")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise ValueError(f"workers must be a whole number of processes (0 or None: in this process), got {workers!r}")
        self.workers = workers or None
        self._worker_memory = worker_memory
        self._integration_paths = tuple(integration_paths)
        self._on_call: Callable[[Any, dict[str, Any]], None] | None = None  # a worker streams its call records
        self.limits = base.limits or Limits()
        self._dry_run, self._read_only = base.dry_run, base.read_only
        self.clock: Clock = clock or utc_now
        self.catalog = Catalog(integration_paths)
        self._docs_path = docs_path
        self.writes, self.approve = base.writes, base.approve
        self._defaults: tuple[tuple[Any, ...], RunOptions] | None = None  # see defaults
        self.retry = retry or RetryPolicy()
        self._accounts_source = accounts
        self._accounts: AccountsConfig | None = None
        self._transports = (transport, mounts)
        self._store_source = store
        self._state_source = state
        self._made: dict[str, Any] = {}  # docs, clients, calls, store: made on first use (see _once)
        self._memos: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._audit_source = audit_log
        self._audit: AuditLog | None = None
        self._audit_ready = False
        self._pool_size = max(0, pool)  # with workers, each worker keeps its own sandboxes built ahead
        self._reuse = reuse
        self._sandboxes: SandboxPool[_Prebuilt] = SandboxPool(self._prebuilt, 0 if self.workers else self._pool_size,
                                                              reuse=reuse)
        self._tracer_provider = tracer_provider

    # -- configuration -------------------------------------------------------------

    @property
    def accounts(self) -> AccountsConfig:
        """The accounts configuration, loaded (and checked) on first use."""
        with self._lock:
            if self._accounts is None:
                self._accounts = self._load_accounts()
            return self._accounts

    def _load_accounts(self) -> AccountsConfig:
        source = self._accounts_source
        if isinstance(source, AccountsConfig):
            return source
        if source is None:
            source = os.environ.get("KOSMO_ACCOUNTS") or None
            if source is None and default_accounts_path().is_file():
                source = default_accounts_path()
        if source is None:
            return AccountsConfig.empty()
        return AccountsConfig.load(source, self._manifest_for, self.catalog.names)

    @property
    def audit_log(self) -> AuditLog | None:
        """The audit log: the ``audit_log`` argument, else ``$KOSMO_AUDIT_LOG``, else the accounts file's setting."""
        accounts = self.accounts
        with self._lock:
            if not self._audit_ready:
                source = self._audit_source or os.environ.get("KOSMO_AUDIT_LOG") or accounts.settings.get("audit_log")
                if isinstance(source, (str, Path)):
                    from ._audit import AuditLog

                    source = AuditLog(source)
                self._audit = source
                self._audit_ready = True
            return self._audit

    def _once(self, name: str, make: Callable[[], _Made]) -> _Made:
        """The Runtime-wide object ``name``, made on first use: a run that needs none imports nothing for it."""
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]  # type: ignore[no-any-return]

    @property
    def docs(self) -> Docs:
        """The doc pages scripts and the CLI read."""
        from ._docs import Docs

        return self._once("docs", lambda: Docs(self.catalog, self._docs_path))

    @property
    def _pool(self) -> ClientPool:
        """The HTTP clients, one per account."""
        from ._http import ClientPool

        state = self.state
        return self._once("clients", lambda: ClientPool(*self._transports, sleep=self.retry.sleep, state=state))

    @property
    def _calls(self) -> CallPool:
        """The threads ``app.parallel`` runs calls on."""
        from ._parallel import CallPool

        return self._once("calls", CallPool)

    @property
    def state(self) -> State:
        """Where rate budgets, records and idempotency claims live (see ``state`` above), made on first use."""
        source = self._state_source
        if source is not None and not isinstance(source, str):
            return source
        url = source or os.environ.get("KOSMO_STATE_URL") or None
        if url is None:
            configured = self.accounts.settings.get("state")
            url = str(configured) if configured else None

        def make() -> State:
            from ._state import open_state

            return open_state(url, store=self._store_source)

        return self._once("state", make)

    @property
    def worker_pool(self) -> WorkerPool | None:
        """The worker processes (started on first use), or ``None`` when runs happen in this process."""
        if self.workers is None:
            return None
        pool = self._made.get("workers")
        if pool is not None:
            return pool  # type: ignore[no-any-return]
        from ._workers import WorkerPool, temp_dir, worker_options

        options = worker_options(self, lambda: self._once("workers_dir", temp_dir).name)
        size = self.workers
        return self._once("workers", lambda: WorkerPool(size, options, address_space=self._worker_memory))

    def _manifest_for(self, name: str) -> Any:
        loaded = self.catalog.find(name)
        return loaded.manifest if loaded else None

    def close(self) -> None:
        """Close the HTTP connections, the state (when made here), the audit log and the sandbox pool."""
        self._sandboxes.close()
        with self._lock:
            made = [self._made.pop(name, None) for name in ("workers", "calls", "clients", "state")]
            folder = self._made.pop("workers_dir", None)
        for part in made:
            if part is not None:
                part.close()
        if folder is not None:
            folder.cleanup()
        if self._audit is not None and self._audit is not self._audit_source:
            self._audit.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running ---------------------------------------------------------------------

    @property
    def defaults(self) -> RunOptions:
        """The Runtime's own run options (``options``, its ``limits``, ``writes`` and ``approve``), which each
        run's are merged over."""
        key = (self.limits, self._dry_run, self._read_only, self.writes, self.approve)
        made = self._defaults
        if made is None or made[0] != key:  # made once, again only when one of them was reassigned
            made = self._defaults = (key, RunOptions(limits=self.limits, dry_run=self._dry_run,
                                                     read_only=self._read_only, writes=self.writes,
                                                     approve=self.approve))
        return made[1]

    def run_options(self, options: RunOptions | None = None, **overrides: Unpack[RunOverrides]) -> RunOptions:
        """The options a run gets: ``options`` (default none), ``overrides`` applied, merged over ``defaults``
        (none of either: ``defaults`` itself, which merged over itself is unchanged)."""
        if options is None and not overrides:
            return self.defaults
        return (options or RunOptions()).replace(**overrides).over(self.defaults)

    def run(
        self,
        source: str,
        *,
        name: str | None = None,
        options: RunOptions | None = None,
        on_output: Callable[[str], None] | None = None,
        record: str | Path | None = None,
        replay: str | Path | None = None,
        **overrides: Unpack[RunOverrides],
    ) -> RunResult:
        """Run a Lua script in a fresh sandbox and return what happened (never raises for script errors).

        ``name`` is the script name in error messages (default ``script.lua``). ``options`` is the run's
        ``RunOptions``; its fields may also be given as keywords, which win over ``options``: ``limits``,
        ``dry_run`` (reads run, each write becomes a description of what would be sent), ``read_only``
        (writes denied), ``writes``, ``approve``, ``idempotency_key`` (a retry of this run with the same
        key, on any replica sharing the state, gets each write's recorded result instead of sending it
        again; see ``_idempotency.py``).
        ``on_output`` is called with each piece of printed text as it is printed (it is also in ``output``).
        ``record`` writes every upstream exchange of the run to that cassette file; ``replay`` answers
        them from one instead of the network (see ``_cassette``).
        """
        run = self.run_options(options, **overrides)
        script = name or "script.lua"
        if self.workers is not None and record is None and replay is None:
            span = self._run_span(script)
            return _ended(span, self._in_worker({"kind": "run", "source": source, "name": script}, run,
                                                on_output=on_output))
        span = self._run_span(script)
        tape = self._tape(record, replay) if record is not None or replay is not None else None
        if isinstance(tape, RunResult):
            return _ended(span, tape)
        ready = self._sandbox(run, tape=tape, span=span)
        if isinstance(ready, RunResult):
            return _ended(span, ready)
        ready.sandbox.on_output = on_output
        try:
            result = ready.sandbox.run(source, script)
        finally:
            self._sandboxes.release(ready)  # reset for another run or freed, now or by the pool's thread right after
        return _ended(span, tape.finish(result, script) if tape is not None else result)

    def _run_span(self, script: str) -> RunSpan | None:
        """The span of a run when tracing is on (see ``_tracing``); a process that does not trace imports nothing."""
        if self._tracer_provider is False or (self._tracer_provider is None and "opentelemetry.trace" not in sys.modules):
            return None
        from ._tracing import tracing_for

        tracing = tracing_for(self._tracer_provider)
        return tracing.run(script) if tracing is not None else None

    def _tape(self, record: str | Path | None, replay: str | Path | None) -> Tape | RunResult:
        """The cassette of a recorded or replayed run (own clients, own clock), or the RunResult of its error."""
        from ._cassette import open_tape

        try:
            return open_tape(record=record, replay=replay, pool=self._pool, clock=self.clock)
        except KosmoError as exc:
            return RunResult(ok=False, error=exc)

    def _in_worker(self, job: dict[str, Any], run: RunOptions,
                   on_output: Callable[[str], None] | None = None) -> RunResult:
        """A run or call on a worker process; configuration errors are found here first, as in-process."""
        started = time.monotonic()
        try:
            _ = self.accounts, self.audit_log
            pool = self.worker_pool
        except KosmoError as exc:
            return RunResult(ok=False, error=exc, duration=time.monotonic() - started)
        assert pool is not None
        return pool.execute(job, run, on_output=on_output)

    def session(self, *, options: RunOptions | None = None, **overrides: Unpack[RunOverrides]) -> Session:
        """A session of chunks sharing one Lua state and its globals (for a REPL), with ``options`` and
        ``overrides`` as for ``run``.

        Limits apply per chunk (memory for the whole session); a chunk that hits a limit ends the
        session's state, and the next chunk starts a fresh one (``Session.restarted`` says so).
        """
        run = self.run_options(options, **overrides)
        return Session(lambda: _sandbox_of(self._sandbox(run)))

    def _sandbox(self, run: RunOptions, *, tape: Tape | None = None, span: RunSpan | None = None) -> _Prebuilt | RunResult:
        """The run's sandbox and its app host (a pooled one, which takes the run's limits and clock, else one
        built now, whose app layer loads when the script first uses it), or the RunResult of a configuration
        error (the accounts file is checked for every run). ``run`` is merged (``options``)."""
        started = time.monotonic()
        try:
            _ = self.accounts
            _ = self.audit_log  # an audit log that cannot be written stops the run here, naming path and reason
        except KosmoError as exc:
            return RunResult(ok=False, error=exc, duration=time.monotonic() - started)
        limits = run.limits or self.limits
        date_clock = tape.clock if tape is not None else self.clock  # a taped run reads the tape's clock
        ready = self._sandboxes.take()
        if ready is None:
            ready = self._built(limits, date_clock)
        else:
            ready.sandbox.begin(limits, date_clock)
        ready.host.bind(run, tape=tape, span=span)
        return ready

    def _built(self, limits: Limits, date_clock: Clock) -> _Prebuilt:
        """A new sandbox, its app layer installed to load when the script first uses it."""
        sandbox = Sandbox(limits, date_clock=date_clock, lazy=APP_GLOBALS)
        ready = _Prebuilt(sandbox, AppHost(self, sandbox))
        sandbox.install_lazily("_app.lua", APP_GLOBALS, ready.host.functions)
        return ready

    def _prebuilt(self) -> _Prebuilt:
        """A sandbox for the pool: the Runtime's limits, the app layer already loaded."""
        ready = self._built(self.limits, self.clock)
        ready.sandbox.load_pending()
        return ready

    def call(
        self,
        function: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        account: str | None = None,
        options: RunOptions | None = None,
        **overrides: Unpack[RunOverrides],
    ) -> RunResult:
        """Call one integration function without Lua, e.g. ``call("whereby.list_rooms", {"limit": 5})``.

        ``function`` is ``integration.function`` or ``integration.account.function``. Validation,
        policy and the result envelope are the same as for a script (``options`` and ``overrides`` as for ``run``).
        """
        run = self.run_options(options, **overrides)
        if self.workers is not None:
            return _ended(self._run_span(function), self._in_worker(
                {"kind": "call", "function": function, "arguments": dict(arguments or {}), "account": account}, run))
        return self._call_here(function, arguments, account, run)

    def _call_here(self, function: str, arguments: Mapping[str, Any] | None, account: str | None,
                   run: RunOptions) -> RunResult:
        """``call`` in this process (``run`` merged)."""
        limits = run.limits or self.limits
        started = time.monotonic()
        records: list[Any] = []
        deadline = started + limits.wall_time
        span = self._run_span(function)
        try:
            invoker = self._invoker(run, records=records, remaining=lambda: deadline - time.monotonic(), span=span)
            ident, account_name, name = self._split(function, account, invoker)
            result = invoker.call(ident, account_name, name, dict(arguments or {}))
            return _ended(span, RunResult(ok=True, result=result, calls=records, duration=time.monotonic() - started))
        except KosmoError as exc:
            return _ended(span, RunResult(ok=False, error=exc, calls=records, duration=time.monotonic() - started))

    def _split(self, function: str, account: str | None, invoker: Invoker) -> tuple[str, str | None, str]:
        parts = function.split(".")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"cannot read function name {function!r}",
                                  hint="write integration.function (e.g. whereby.list_rooms) or integration.account.function")
        ident = invoker.integration(parts[0]).manifest.id
        if len(parts) == 3:
            if account is not None and account != parts[1]:
                raise InvalidArgument(f"{function!r} names account {parts[1]!r} but account={account!r} was given")
            account = parts[1]
        kind, name = invoker.resolve_member(ident, account, parts[-1])
        if kind != "function":
            raise NotFound(f"{function!r} names an account, not a function", hint=f"add the function: {function}.<function>")
        return ident, account, name

    def _invoker(self, run: RunOptions, *, sandbox: Sandbox | None = None, records: list[Any] | None = None,
                 remaining: Callable[[], float] | None = None, tape: Tape | None = None,
                 span: RunSpan | None = None) -> Invoker:
        """The call layer of one run (``run`` merged) in ``sandbox``, or of one call."""
        from ._calls import Invoker
        from ._idempotency import Idempotency

        limits = run.limits or self.limits
        audit = self.audit_log
        on_call: Callable[[Any, dict[str, Any]], None] | None = audit.record if audit is not None else None
        if self._on_call is not None:
            on_call = _both(on_call, self._on_call)
        return Invoker(
            catalog=self.catalog,
            accounts=self.accounts,
            pool=tape.pool if tape else self._pool,
            store=self.state,
            memos={} if tape else self._memos,  # a cassette holds every request of its run: nothing remembered
            remaining=remaining or (sandbox.remaining if sandbox else (lambda: limits.wall_time)),
            records=records if records is not None else sandbox.calls,  # type: ignore[union-attr]
            max_calls=limits.calls,
            dry_run=run.dry_run,
            run_policy=run.write_policy,
            approve=run.approve,
            retry=self.retry,
            run_id=os.urandom(6).hex(),
            on_call=on_call,
            clock=tape.clock if tape else self.clock,
            idempotency=Idempotency(self.state, run.idempotency_key) if run.idempotency_key else None,
            tracing=span,
        )

    def _members(self, ident: str, account: str | None) -> list[str]:
        manifest = self.catalog.find(ident).manifest  # type: ignore[union-attr]
        names = list(manifest.functions)
        if account is None:
            names += ["default", *[a for a in self.accounts.account_names(ident) if a != "default"]]
        return names




class _Prebuilt(NamedTuple):
    """A run's sandbox and the host of its app layer (what the pool holds)."""

    sandbox: Sandbox
    host: AppHost

    def reset(self) -> bool:
        return self.sandbox.reset()

    def close(self) -> None:
        self.sandbox.close()


def _sandbox_of(ready: _Prebuilt | RunResult) -> Sandbox | RunResult:
    return ready if isinstance(ready, RunResult) else ready.sandbox


def _both(first: Callable[[Any, dict[str, Any]], None] | None,
          then: Callable[[Any, dict[str, Any]], None]) -> Callable[[Any, dict[str, Any]], None]:
    if first is None:
        return then

    def record(call: Any, arguments: dict[str, Any]) -> None:
        first(call, arguments)
        then(call, arguments)

    return record


def _ended(span: RunSpan | None, result: RunResult) -> RunResult:
    """``result``, its run's span (if any) ended with it."""
    if span is not None:
        span.end(result)
    return result


class Session:
    """Chunks run one after another in one Lua state, globals kept (see ``Runtime.session``)."""

    def __init__(self, factory: Callable[[], Sandbox | RunResult]) -> None:
        self._factory = factory
        self._sandbox: Sandbox | None = None
        self.restarted = False  # the last chunk ran in a fresh state because the previous one hit a limit
        self._ended_by_limit = False

    def run(self, source: str, name: str = "repl") -> RunResult:
        """Run one chunk; its globals stay visible to the next chunks."""
        self.restarted = self._ended_by_limit and self._sandbox is None
        if self._sandbox is None:
            made = self._factory()
            if isinstance(made, RunResult):
                return made
            self._sandbox = made
        result = self._sandbox.run(source, name, keep_env=True)
        self._ended_by_limit = isinstance(result.error, LimitExceeded)
        if self._ended_by_limit:
            self.close()
        return result

    def interrupt(self) -> None:
        """Stop the chunk that is running now, from another thread; the session's state is discarded."""
        sandbox = self._sandbox
        if sandbox is not None:
            sandbox.interrupt()

    def close(self) -> None:
        """End the session: its Lua state is freed now."""
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            sandbox.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
