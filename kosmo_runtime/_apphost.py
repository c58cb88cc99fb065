"""The Python side of ``_app.lua`` for one sandbox: namespaces, integration calls, docs.

Its functions are registered once per Lua state (when the state is built, or when the
script first reads ``app``); each run's options (dry run, write policy, approver) are bound
when that run starts, and the run's ``Invoker`` (with its run id, records and call layer) is
made on the first call that needs one, so a run that only looks names up pays for none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._options import RunOptions

if TYPE_CHECKING:
    from ._calls import Invoker
    from ._cassette import Tape
    from ._limits import Limits
    from ._parallel import ParallelCalls
    from ._runtime import Runtime
    from ._sandbox import Sandbox
    from ._tracing import RunSpan

__all__ = ["AppHost"]

_UNBOUND = RunOptions()  # until bind: frozen, so one serves every host


class AppHost:
    """What ``_app.lua``'s host table calls, for one sandbox and the run it serves (``bind``)."""

    def __init__(self, runtime: Runtime, sandbox: Sandbox) -> None:
        self._runtime = runtime
        self._sandbox = sandbox
        self._limits: Limits = sandbox.limits
        self._run = _UNBOUND
        self._tape: Tape | None = None
        self._span: RunSpan | None = None
        self._invoker: Invoker | None = None
        self._parallel: ParallelCalls | None = None
        #: the functions the script looked up, by the handle their calls pass: (integration, account, name)
        self._looked_up: list[tuple[str, str | None, str]] = []
        self._handles: dict[tuple[str, str | None, str], int] = {}

    def bind(self, run: RunOptions, *, tape: Tape | None = None, span: RunSpan | None = None) -> None:
        """The run's options (merged over the Runtime's: ``Runtime.run_options``), cassette and span."""
        self._limits = run.limits or self._sandbox.limits
        self._run, self._tape, self._span = run, tape, span
        self._invoker = self._parallel = None  # a reset sandbox's previous run's

    def functions(self) -> dict[str, Callable[..., Any]]:
        """The host functions ``_app.lua`` gets when it loads, by name (the rest: ``rare``)."""
        return {"integration": self.integration, "member": self.member, "call": self.call,
                "call_flat": self.call_flat, "rare": self.rare}

    def rare(self) -> tuple[Any]:
        """The host functions ``_app.lua`` asks for on first use (listing, ``app.parallel``, the docs)."""
        return (self._sandbox.host_table({
            "integrations": self.integrations, "members": self.members, "submit": self.submit,
            "wait_any": self.wait_any, "list_docs": self.list_docs, "search_docs": self.search_docs,
            "read_doc": self.read_doc,
        }),)

    @property
    def invoker(self) -> Invoker:
        """The run's Invoker, made on first use."""
        if self._invoker is None:
            self._invoker = self._runtime._invoker(self._run, sandbox=self._sandbox, tape=self._tape, span=self._span)
        return self._invoker

    @property
    def parallel(self) -> ParallelCalls:
        """The run's in-flight ``app.parallel`` calls, made on first use (ended with the run)."""
        if self._parallel is None:
            from ._parallel import ParallelCalls

            self._parallel = ParallelCalls(self.invoker, self._sandbox.convert, self._runtime._calls,
                                           self._sandbox.remaining, self._limits.wall_time)
            self._sandbox.on_end.append(self._parallel.close)
        return self._parallel

    # -- namespaces ------------------------------------------------------------------

    def integration(self, key: str) -> str:
        loaded = self._runtime.catalog.find(key)
        if loaded is None:
            return self.invoker.integration(key).manifest.id  # raises NotFound, with the closest names
        return loaded.manifest.id

    def integrations(self) -> list[str]:
        return self._runtime.catalog.names()

    def member(self, ident: str, account: str | None, key: str) -> tuple[str, str] | tuple[str, str, int]:
        """``(kind, name)`` of a namespace's member; a function's also has the handle its calls pass."""
        kind, name = self.invoker.resolve_member(ident, account, key)
        if kind != "function":
            return kind, name
        target = (ident, account, name)
        handle = self._handles.get(target)
        if handle is None:
            handle = self._handles[target] = len(self._looked_up)
            self._looked_up.append(target)
        return kind, name, handle

    def members(self, ident: str, account: str | None) -> list[str]:
        return self._runtime._members(ident, account)

    # -- calls -------------------------------------------------------------------------

    def call(self, handle: int, args: Any) -> Any:
        """A call of the function ``member`` gave ``handle``, its named arguments a Lua table."""
        ident, account, function = self._looked_up[handle]
        invoker = self._invoker or self.invoker
        return invoker.call(ident, account, function, self._sandbox.convert.arguments(args, ident + "." + function))

    def call_flat(self, handle: int, *pairs: Any) -> Any:
        """A call whose named arguments are all text, booleans or finite numbers, passed by
        ``_app.lua`` as name, value, ... (no table to walk)."""
        ident, account, function = self._looked_up[handle]
        invoker = self._invoker or self.invoker
        if len(pairs) == 2:
            return invoker.call(ident, account, function, {pairs[0]: pairs[1]})
        names_values = iter(pairs)
        return invoker.call(ident, account, function, dict(zip(names_values, names_values, strict=True)))

    def submit(self, ident: str, account: str | None, function: str, args: Any) -> int:
        return self.parallel.submit(ident, account, function, args)

    def wait_any(self) -> list[dict[str, Any]]:
        return self.parallel.wait_any()

    # -- docs ----------------------------------------------------------------------------

    def list_docs(self) -> Any:
        return self._runtime.docs.list()

    def search_docs(self, query: str, limit: int | None = None) -> Any:
        return self._runtime.docs.search(query, 10 if limit is None else limit)

    def read_doc(self, path: str) -> Any:
        return self._runtime.docs.read(path)
