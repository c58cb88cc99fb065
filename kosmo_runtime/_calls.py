"""Dispatching one integration call: validate, authorise, execute, record.

``CallContext`` is what a handler receives; ``Invoker`` does the rest for one run.
A declarative function (``request`` in the manifest) is executed by
``run_declarative``; otherwise the manifest's named hooks function is called as
``handler(ctx, args)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._accounts import Account, AccountsConfig, WritePolicy
from ._clock import Clock, utc_now
from ._context import CallContext
from ._data import as_data
from ._discovery import Catalog
from ._errors import AccountError, BadResponse, ConfigError, IntegrationBug, InvalidArgument, KosmoError, NotFound, UpstreamError
from ._expressions import Scope, add_fields, apply_shape, evaluate
from ._http import ClientPool, DryRunIntercept, Http, RetryPolicy, Trace, redact
from ._idempotency import Idempotency
from ._limits import limit_exceeded
from ._local_pages import page_slice
from ._log import log
from ._manifest import FunctionSpec, LoadedIntegration, PaginateSpec, RequestSpec
from ._policy import Approver, WriteRequest, ask_approval, authorize
from ._result import CallRecord
from ._state import State
from ._store import ScopedStore
from ._templates import fill, fill_path
from ._validation import validate_arguments

if TYPE_CHECKING:
    from ._tracing import RunSpan

__all__ = ["CallContext", "Invoker", "run_declarative"]



@dataclass
class Invoker:
    """Runs integration calls for one run and records them."""

    catalog: Catalog
    accounts: AccountsConfig
    pool: ClientPool
    store: State
    memos: dict[tuple[str, str], dict[str, Any]]
    remaining: Callable[[], float]
    records: list[CallRecord]
    max_calls: int
    dry_run: bool = False
    run_policy: WritePolicy | None = None
    approve: Approver | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    run_id: str = ""
    on_call: Callable[[CallRecord, dict[str, Any]], None] | None = None
    tracing: RunSpan | None = None  # the run's span when tracing is on (_tracing)
    _bindings: dict[tuple[str, str | None], _Binding] = field(default_factory=dict, repr=False)
    _targets: dict[tuple[str, str], _Target] = field(default_factory=dict, repr=False)
    _plans: dict[tuple[str, str | None, str], _Plan] = field(default_factory=dict, repr=False)
    clock: Clock = utc_now
    idempotency: Idempotency | None = None  # the run's idempotency key: its writes are sent once
    _pages: int = field(default=0, init=False, repr=False)  # pages after a call's first: each counts as a call

    def __post_init__(self) -> None:
        self._next_page = self._count_page  # bound once: each call's context gets it

    def spent(self) -> int:
        """The calls counted against the run's ``calls`` limit so far: those made and their further pages."""
        return len(self.records) + self._pages

    def _count_page(self) -> None:
        """Before each further page of a collecting call: one more call against the run's ``calls`` limit."""
        if self.spent() + 1 >= self.max_calls:
            raise limit_exceeded("calls", self.max_calls)
        self._pages += 1

    def integration(self, name: str) -> LoadedIntegration:
        """The installed integration called ``name``; raises NotFound with the closest names."""
        loaded = self.catalog.find(name)
        if loaded is None:
            raise _unknown("integration", name, self.catalog.names(), hint_prefix="installed integrations")
        return loaded

    def resolve_member(self, ident: str, account: str | None, key: str) -> tuple[str, str]:
        """Whether ``key`` on a namespace is a function or an account: ``(kind, canonical name)``."""
        manifest = self.integration(ident).manifest
        function = manifest.resolve_function(key)
        if function is not None:
            return "function", function
        accounts = self.accounts.account_names(ident)
        if account is None and (key in accounts or key == "default"):
            return "account", key
        members = manifest.all_function_names() + ([] if account else ["default", *[a for a in accounts if a != "default"]])
        where = f"{ident}.{account}" if account else ident
        raise _unknown("function" if account else "function or account", key, members,
                       hint_prefix=f"{where} has", label=where)

    def _bind(self, loaded: LoadedIntegration, account_name: str | None) -> _Binding:
        key = (loaded.manifest.id, account_name)
        bound = self._bindings.get(key)
        if bound is None:
            account = self.accounts.account(loaded.manifest.id, account_name)
            bound = self._bindings[key] = _Binding(
                account, self.pool.client(loaded.manifest, account), self.pool.limiter(loaded.manifest, account),
                self.store.scoped(loaded.manifest.id, account.name),
                self.memos.setdefault((loaded.manifest.id, account.name), {}))
        return bound

    def _target(self, ident: str, function: str) -> _Target:
        """What every call of ``ident.function`` needs, resolved once per run (kept in its plans)."""
        target = self._targets.get((ident, function))
        if target is None:
            loaded = self.integration(ident)
            spec = loaded.manifest.functions[function]
            target = self._targets[(ident, function)] = _Target(
                loaded, spec, f"{ident}.{function}", self.accounts.default_account(ident) or "default")
        return target

    def _plan(self, ident: str, account_name: str | None, function: str) -> _Plan:
        """What every call of ``ident.function`` on ``account_name`` needs, resolved on its first call
        (the account's binding may fail: that call is recorded with its error)."""
        target = self._target(ident, function)
        bound = self._bind(target.loaded, account_name)
        manifest = target.loaded.manifest
        http = Http(bound.client, manifest, function=function, account=bound.account.name, remaining=self.remaining,
                    dry_run=self.dry_run, retry=self.retry, limiter=bound.limiter)
        plan = self._plans[(ident, account_name, function)] = _Plan(
            target, bound.account, http, (bound.store, bound.memo, self.clock, manifest.lookups, manifest, self._next_page))
        return plan

    def call(self, ident: str, account_name: str | None, function: str, arguments: dict[str, Any]) -> Any:
        """Validate, authorise and execute one call; returns JSON-compatible Python."""
        plan = self._plans.get((ident, account_name, function))
        target = plan.target if plan is not None else self._target(ident, function)  # no plan: its first call
        spec, label, write = target.spec, target.label, target.write
        started = time.monotonic()
        trace = Trace()
        # positional (CallRecord's field order): half the cost of keywords on this path
        record = CallRecord(ident, function, account_name or target.default_account, spec.operation, 0.0, False,
                            None, None, 0, self.dry_run, self.run_id, trace.requests)
        span = self.tracing.call(record) if self.tracing is not None else None
        if span is not None:
            trace.observer = span.request
        try:
            if len(self.records) + self._pages >= self.max_calls:  # spent(), inline: every call asks
                raise limit_exceeded("calls", self.max_calls)
            args = target.validate(arguments)
            if plan is None:
                plan = self._plan(ident, account_name, function)
            account = plan.account
            record.account = account.name
            # A keyed write is asked about only if it is to be sent: a replay of one an earlier attempt sent is not.
            keyed = write and self.idempotency is not None and not self.dry_run
            if write:
                request = WriteRequest(ident, function, account.name, redact(args))
                policy = authorize(account, request, run_policy=self.run_policy, approve=self.approve,
                                   dry_run=self.dry_run, ask=not keyed)
                if span is not None:
                    span.policy = policy
            context = CallContext(ident, function, account, plan.http, *plan.context, trace=trace)
            try:
                if keyed and self.idempotency is not None:
                    asking = (lambda: ask_approval(request, self.approve)) if policy == "ask" else None
                    result = self.idempotency.once(ident, account.name, function, args,
                                                   lambda: target.run(context, args),
                                                   replayed=lambda: setattr(record, "replayed", True), ask=asking)
                else:
                    result = target.run(context, args)
            except DryRunIntercept as intercepted:
                result = {"dry_run": True, "would_send": intercepted.request,
                          "note": "dry run: this write was not sent; requests after it (if any) depend on its answer"}
            except _AUTHORED as exc:  # raised by the integration's code or its requests: led by the label
                _lead(exc, label)
                raise
            result = as_data(result, label)  # what a hook returns must be data (a tuple is taken as a list)
            record.ok = True
            return result
        except KosmoError as exc:
            record.error = exc.code
            for key, value in (("integration", ident), ("function", function), ("account", record.account)):
                if getattr(exc, key, None) is None:
                    setattr(exc, key, value)
            raise
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            log.exception("integration handler %s failed", label)
            if any(r.get("status", 0) and r["status"] < 400 for r in trace.requests):
                # the service answered, but not in the shape it documents
                record.error = BadResponse.code
                raise BadResponse(f"{label}: the service's answer does not have the documented shape "
                                  f"({type(exc).__name__}: {exc})", integration=ident, function=function,
                                  hint="the service may have changed its API or be having problems") from None
            record.error = IntegrationBug.code
            raise IntegrationBug(f"{label}: the integration failed internally ({type(exc).__name__})",
                                 integration=ident, function=function,
                                 hint="this is a bug in the integration, not in your script; report it") from None
        except Exception as exc:  # a bug in integration code: log it, never show a traceback to the script
            log.exception("integration handler %s failed", label)
            record.error = IntegrationBug.code
            raise IntegrationBug(f"{label}: the integration failed internally ({type(exc).__name__})",
                                 integration=ident, function=function,
                                 hint="this is a bug in the integration, not in your script; report it") from None
        finally:
            record.duration = time.monotonic() - started
            if trace.requests:
                record.status = trace.status
                record.retries = trace.retries
            if span is not None:
                span.end(record)
            self.records.append(record)
            if self.on_call is not None:
                self.on_call(record, arguments)


@dataclass(frozen=True)
class _Binding:
    """What every call of one integration account needs, resolved once per run."""

    account: Account
    client: Any
    limiter: Any
    store: ScopedStore
    memo: dict[str, Any]


class _Plan:
    """One function on one account, resolved once per run: its target, the account, the Http its calls
    copy (each with its own trace) and the rest of their CallContext."""

    __slots__ = ("account", "context", "http", "target")

    def __init__(self, target: _Target, account: Account, http: Http, context: tuple[Any, ...]) -> None:
        self.target, self.account, self.http, self.context = target, account, http, context


class _Target:
    """One function of one integration, resolved once per run: its spec, label, default account,
    a validation plan and (on first use) its code."""

    __slots__ = ("_code", "_plain", "default_account", "label", "loaded", "spec", "write")

    def __init__(self, loaded: LoadedIntegration, spec: FunctionSpec, label: str, default_account: str) -> None:
        self.loaded, self.spec, self.label, self.default_account = loaded, spec, label, default_account
        self.write = spec.operation == "write"
        self._code: Callable[[CallContext, dict[str, Any]], Any] | None = None  # loaded by the first call
        self._plain = _plain_plan(spec)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """``validate_arguments``, with its common case done inline: every parameter a plain string,
        integer, number or boolean (no enum, bounds, format or fields) and every value of exactly its
        type. Anything else, valid or not, goes to ``validate_arguments`` (which words the errors)."""
        plan = self._plain
        if plan is None:
            return validate_arguments(self.label, self.spec, arguments)
        checked: dict[str, Any] = {}
        if len(arguments) == len(plan):  # every parameter given? (then the names are the plan's)
            for name, (types, _, _) in plan.items():
                value = arguments.get(name)
                if type(value) not in types:
                    checked.clear()
                    break
                checked[name] = value
            else:
                return checked
        if not arguments.keys() <= plan.keys():
            return validate_arguments(self.label, self.spec, arguments)
        for name, (types, required, default) in plan.items():
            value = arguments.get(name)
            if value is None:
                if required:
                    return validate_arguments(self.label, self.spec, arguments)
                if default is not None:
                    checked[name] = default  # a str, int, float or bool: nothing to copy
            elif type(value) in types:
                checked[name] = value
            else:
                return validate_arguments(self.label, self.spec, arguments)
        return checked

    def run(self, context: CallContext, args: dict[str, Any]) -> Any:
        """Execute the call: the manifest's declaration (with its transform) or the named handler."""
        if self._code is None:
            self._code = _code(self.loaded, context.function, self.spec)
        return self._code(context, args)


#: the exact Python types a plain parameter's value may have to pass without coercion
_PLAIN_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                             "boolean": (bool,)}


#: the ParamSpec fields a plain parameter may set; any other one set (enum, bounds, format, fields,
#: items, or a field added later) sends its calls to validate_arguments
_PLAIN_FIELDS = frozenset({"type", "description", "required", "default", "example"})


def _plain_plan(spec: FunctionSpec) -> dict[str, tuple[tuple[type, ...], bool, Any]] | None:
    """``{name: (types, required, default)}`` when every parameter is plain, else None."""
    plan = {}
    for name, param in spec.params.items():
        types = _PLAIN_TYPES.get(param.type)
        if types is None or not isinstance(param.default, (type(None), str, int, float, bool)) or any(
                getattr(param, key) != info.default for key, info in type(param).model_fields.items()
                if key not in _PLAIN_FIELDS):
            return None
        plan[name] = (types, param.required, param.default)
    return plan


def _code(loaded: LoadedIntegration, function: str, spec: FunctionSpec) -> Callable[[CallContext, dict[str, Any]], Any]:
    """The declaration's executor (with its transform) or the named handler; with the manifest's
    ``string_keys``, what either returns passes through them."""
    code: Callable[[CallContext, dict[str, Any]], Any]
    if spec.request is not None:
        name = spec.response.transform
        transform = loaded.slot(function, "transform", name) if name else None

        def code(context: CallContext, args: dict[str, Any]) -> Any:
            return run_declarative(spec, context, args, transform)
    else:
        code = loaded.handler(function)
    patterns = tuple(pattern.lower() for pattern in loaded.manifest.string_keys)
    if not patterns:
        return code
    from ._string_keys import string_keys

    return lambda context, args: string_keys(code(context, args), patterns)


def run_declarative(spec: FunctionSpec, context: CallContext, args: dict[str, Any],
                    transform: Callable[[CallContext, dict[str, Any], Any], Any] | None = None) -> Any:
    """Execute a ``request``/``response`` declaration: fill templates (asking the service for the
    manifest's ``lookups`` they name, once per account), send the included reads and then the request
    (each included answer under its name in the request's) or, for a request that collects pages,
    collect its items into a list; then extract, shape, add, slice, remember, transform, wrap."""
    assert spec.request is not None
    values = {**context.account.settings, **args}
    request = spec.request
    for name in context.lookups:
        if values.get(name) is None and name in request.placeholders:
            values[name] = context.lookup(name)
    included = {name: _send(extra, context, args, values) for name, extra in request.include.items()}
    data = _send(request, context, args, values)
    if included:
        data = {**(data or {}), **included}
    response = spec.response
    if response.extract or response.shape or response.add:
        data = shape(data, response.extract, None, response.add, context.scope(args), response.shape)
    if response.slice is not None:
        data = page_slice(data, args.get(response.slice.limit), args.get(response.slice.page) or 1)
    for lookup, expression in response.remember.items():
        if (found := evaluate(expression, data, context.scope(args))) is not None:
            context.memo[lookup] = found
    if transform is not None:
        data = transform(context, args, data)
    return {spec.response.wrap_as: data} if spec.response.wrap_as else data


def _send(request: RequestSpec, context: CallContext, args: dict[str, Any], values: dict[str, Any]) -> Any:
    """One declared request, its templates filled from ``values`` (settings, arguments, lookups); its
    answer, or the list of items it collects across pages."""
    template = next((path for name, path in request.path_when.items() if args.get(name) is not None), request.path)
    path = fill_path(template, values)
    query = {k: fill(v, values) for k, v in request.query.items()}
    headers = {k: str(v) for k, template in request.headers.items() if (v := fill(template, values)) is not None}
    if request.paginate is not None and request.paginate.collect is not None:
        return _collect(request.paginate, context, args, path, query, headers or None)
    body: Any = None
    if isinstance(request.body, str):
        body = fill(request.body, values)
    elif request.body is not None:
        body = {k: v for k, template in request.body.items() if (v := fill(template, values)) is not None}
    return context.http.request(request.method, path, params=query, json=body, headers=headers or None)


def _collect(paginate: PaginateSpec, context: CallContext, args: dict[str, Any], path: str, query: dict[str, Any],
             headers: dict[str, str] | None) -> list[Any]:
    """The items a declared read collects: up to ``collect`` (or its ``collect_param`` argument, at
    most ``collect``), the page parameters sent by the named pagination's strategy."""
    assert paginate.collect is not None
    most = paginate.collect
    if paginate.collect_param is not None and args.get(paginate.collect_param) is not None:
        most = min(most, args[paginate.collect_param])
    return list(context.collect(path, paginate.using, query, headers, most=most))


def shape(data: Any, extract: str | None, wrap_as: str | None, add: dict[str, str] | None = None,
          scope: Scope | None = None, named: str | None = None) -> Any:
    """Take ``extract`` (an expression, usually a dotted path) out of ``data``, apply the ``named``
    shape and add the ``add`` fields (``{new: expression}``, to each item of a list), then wrap it
    as ``{wrap_as: ...}``."""
    scope = scope or Scope()
    if extract:
        data = evaluate(extract, data, scope)
    if named:
        data = apply_shape(named, data, scope)
    if add:
        data = add_fields(data, add, scope)
    return {wrap_as: data} if wrap_as else data


# the errors an integration's code raises (kosmo_runtime.integration), and its requests' (UpstreamError)
_AUTHORED = (InvalidArgument, NotFound, UpstreamError, AccountError, ConfigError)


def _lead(exc: KosmoError, label: str) -> None:
    """Lead the message of an error the integration's code or its requests raised with the call's label
    (``whereby.get_room: ...``), unless it already is: hooks and the HTTP layer raise bare messages."""
    if not exc.message.startswith(label + ":"):
        exc.message = f"{label}: {exc.message}"
        exc.args = (exc.message,)


def _unknown(kind: str, name: str, options: list[str], *, hint_prefix: str, label: str | None = None) -> NotFound:
    import difflib

    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    where = f" on {label}" if label else ""
    message = f"unknown {kind} '{name}'{where}" + (f"; did you mean '{close[0]}'?" if close else "")
    listing = ", ".join(options) if len(options) <= 30 else ", ".join(options[:30]) + ", ..."
    return NotFound(message, candidates=close or None, hint=f"{hint_prefix}: {listing or 'none'}")
