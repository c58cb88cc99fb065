"""Runs of scripts, one at a time, in a hardened Lua 5.4 state, each in a fresh environment.

``Sandbox(limits, ...)`` builds the state (bootstrap compiled once per process),
``Sandbox.run(source, name)`` executes a script and returns a ``RunResult``,
``Sandbox.reset()`` makes the state what it was before its first run, for another run (nothing
of a run survives it: see ``reset`` in ``_bootstrap.lua``), and ``Sandbox.close()`` frees the
Lua state at once.

No Python object the Lua state holds (host functions, the app layer's callables) keeps the
state alive once ``close`` has run: the sandbox and its converter drop every reference to
the state, so the state is freed by reference counting, never left to Python's cycle
collector (the state's memory is invisible to it).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from lupa import lua54

from ._clock import Clock, read, utc_now
from ._errors import (
    CONTEXT_FIELDS,
    CallError,
    IntegrationBug,
    InvalidArgument,
    KosmoError,
    LimitExceeded,
    LuaRuntimeError,
    LuaSyntaxError,
    ScriptError,
)
from ._limits import ERROR_TEXT_BYTES, MAX_SOURCE_BYTES, Limits, limit_exceeded
from ._log import log
from ._luacode import bytecode
from ._patterns import pattern_rate
from ._result import CallRecord, RunResult
from ._values import Converter, LuaTable, Opaque, not_utf8, render

__all__ = ["Sandbox", "error_from_lua"]

_SCALARS = (type(None), bool, int, float)  # results whose JSON is short (integers are 64-bit, floats finite)
#: what a host function may return after settling the cap itself: Lua pushes these without
#: allocating (a table by its reference; integers from the converter are 64-bit)
_PUSHED_AS_IS = frozenset({bool, int, float, type(None), LuaTable})
_SETTLED = 1  # the bootstrap's SETTLED: a host result whose cap is already back
_PERIOD = 1000  # instructions between two runs of the count hook
#: bytes a reset state may hold over what it held after its first reset (more: something of a run stayed,
#: and the state is not reused)
_RESET_SLACK = 64 * 1024
_LOCATION = re.compile(r"^(?P<script>[^\n:]+):(?P<line>\d+): (?P<message>.*)$", re.S)
_KEYWORDS = ("and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto",
             "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while")


def _deny(obj: Any, name: Any, *rest: Any) -> Any:
    raise AttributeError("Python objects are not accessible from the sandbox")


class Sandbox:
    """A hardened Lua state for one run at a time, with limits, captured output and the safe library set.

    ``clock`` (monotonic seconds) times the run for the wall-clock limit; ``date_clock`` is
    the Runtime's clock, which the script's ``os.time()`` and ``os.date(format)`` read.
    """

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic,
                 date_clock: Clock = utc_now, lazy: tuple[str, ...] = ()) -> None:
        self.limits = limits
        self.clock = clock
        self.started = clock()
        self.deadline = self.started + limits.wall_time
        self.limit_hit: str | None = None
        self.calls: list[CallRecord] = []
        self._output: list[str] = []
        self._output_size = 0
        self.on_output: Callable[[str], None] | None = None  # sees each piece of output as it is printed
        self._runs = 0
        self._interrupted = False
        self._pending: list[tuple[str, Callable[[], dict[str, Callable[..., Any]]]]] = []
        #: called when a run (chunk) ends, before its result is made (e.g. ending its parallel calls)
        self.on_end: list[Callable[[], None]] = []
        self._lifts = 0
        self._cap = 0  # no cap (0) until the first run sets it
        self._session = False  # ran chunks that keep their globals (never reset)
        self._pristine: int | None = None  # bytes the state holds after its first reset
        self._limit_error: LimitExceeded | None = None
        self.lua = lua54.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_handlers=(_deny, _deny),
            max_memory=1 << 40,
        )
        self._date_clock = date_clock
        # What the bootstrap needs for every run, as arguments, and the globals ``lazy`` that layers
        # installed lazily will define (``install_lazily``); the rest (``_later``) only when the state
        # loads its kit (_kit.lua). Each Python callable handed to Lua costs a wrapper: the methods go
        # as partials, which lupa wraps in less than half the time of a bound method.
        self._lazy = lazy
        boot = self.lua.compile(bytecode("_bootstrap.lua"), name="=[kosmo]", mode="b")
        now, record_limit, lift, settle, later = (partial(method, self) for method in (
            Sandbox._now, Sandbox._record_limit, Sandbox._lift, Sandbox._settle, Sandbox._later))
        self.kit, self._run_chunk, inspect, mark_array, null = boot(
            _PERIOD, limits.instructions, self.deadline, now, record_limit, lift, settle,
            self._host(self._next_layer), later, *lazy)
        self.convert = Converter(self.lua, inspect, mark_array, null, limits.depth, checkpoint=self._checkpoint,
                                 budgets=_budgets(limits))

    def begin(self, limits: Limits | None = None, date_clock: Clock | None = None) -> None:
        """Start the run's clock now (for a sandbox built ahead of its run), under ``limits`` and reading
        ``date_clock`` if given: a sandbox built ahead takes the limits and the clock (a cassette's) of
        the run it is handed to (none has run on it yet)."""
        if date_clock is not None:
            self._date_clock = date_clock
        if limits is not None and limits != self.limits:
            assert not self._runs, "a sandbox's limits are set before its first run"
            self.limits = limits
            self.convert.depth = limits.depth
            self.convert.budgets = _budgets(limits)
        self.started = self.clock()
        self.deadline = self.started + self.limits.wall_time

    def reset(self) -> bool:
        """Make the state ready for another run, as before its first (``kit.reset`` in the bootstrap: each
        layer's caches restored, the run's values collected, the random generator seeded afresh, a new
        env made); the per-run fields here start again. False when the state must not serve another run:
        it hit a limit, was interrupted, ran a session, or holds more than ``_RESET_SLACK`` over what it
        held after its first reset (something of a run would have stayed)."""
        if self.limit_hit is not None or self._interrupted or self._session or "kit" not in self.__dict__:
            return False
        try:
            self._lifts = 0
            self._lift()
            self._install_pending()
            if not self.kit.reset(*_seeds()):
                return False
        except lua54.LuaError:  # never expected (the cap is lifted, no limit is set): not reused
            log.exception("resetting a sandbox failed")
            return False
        used = self.lua.get_memory_used()
        if self._pristine is None:
            self._pristine = used
        elif used > self._pristine + _RESET_SLACK:
            return False
        self._cap = self._runs = self._output_size = 0
        self.calls, self._output = [], []
        self.on_output = None
        self.on_end.clear()
        self._limit_error = None
        return True

    def close(self) -> None:
        """Free the Lua state now (idempotent); the sandbox cannot run again."""
        self.on_end.clear()
        self._pending.clear()
        self.on_output = None
        convert = self.__dict__.pop("convert", None)
        if convert is not None:
            convert.close()
        self.__dict__.pop("kit", None)
        self.__dict__.pop("_run_chunk", None)
        self.__dict__.pop("lua", None)

    def install_lazily(self, filename: str, names: tuple[str, ...], functions: Callable[[], dict[str, Callable[..., Any]]]) -> None:
        """Install a layer the first time the script reads one of the globals ``names`` defines (named to
        the state here unless they were at boot: ``Sandbox(lazy=names)``)."""
        self._pending.append((filename, functions))
        if names != self._lazy:
            self.kit["provide_lazily"](*names)  # indexing: cheaper than attributes

    def load_pending(self) -> None:
        """Load the lazily installed layers and the standard library layer now, and make the run's
        globals (a pooled sandbox, off the run's path); the script sees them exactly as if they
        had loaded on first use."""
        self._install_pending()
        self.kit.prepare()

    def _install_pending(self) -> None:
        while self._pending:
            filename, functions = self._pending.pop(0)
            self.install(filename, functions())

    def _next_layer(self) -> tuple[Any, ...]:
        """The next pending layer, for the state to load: its bytecode, its host functions and whether
        more are pending (none left: nil)."""
        if not self._pending:
            return (None,)
        filename, functions = self._pending.pop(0)
        return bytecode(filename), self.host_table(functions()), bool(self._pending)

    def _later(self) -> tuple[Any, ...]:
        """What the state's kit (_kit.lua) needs as it loads: its bytecode, the library layer's host
        table (made when that layer loads) and the cap's growth for what a layer keeps."""
        return bytecode("_kit.lua"), self._library_host, self._grow

    def install(self, filename: str, functions: dict[str, Callable[..., Any]]) -> None:
        """Run a Lua layer of this package (e.g. ``_app.lua``) with the given host functions."""
        layer = self.lua.compile(bytecode(filename), name="=[kosmo]", mode="b")
        layer(self.kit, self.host_table(functions))

    def host_table(self, functions: dict[str, Callable[..., Any]]) -> Any:
        """A Lua table of host functions, each wrapped to keep the bootstrap's protocol (``_host``); one
        named ``*_flat`` takes text, numbers and booleans only and lifts the cap itself (``kit.call_flat``)."""
        return self.lua.table_from({name: self._host(fn, lifts=name.endswith("_flat")) for name, fn in functions.items()})

    # -- host functions --------------------------------------------------------

    def _host(self, fn: Callable[..., Any], *, lifts: bool = False) -> Callable[..., tuple[Any, ...]]:
        """Wrap a host function so that it never raises into Lua (see the bootstrap's protocol).

        The bootstrap calls every wrapped function between ``lift`` and ``settle``: its arguments,
        its work on Lua values and its results are made with the memory cap lifted, so no Lua
        memory error can unwind through Python frames (the checkpoint bounds the overshoot).
        With ``lifts`` the wrapper lifts the cap itself, first thing (``kit.call_flat``: arguments
        that are only text, numbers and booleans reach Python without Lua allocating). A result
        Lua takes without allocating (a boolean, a number, a table already made) is returned
        after the wrapper settled the cap itself, marked ``_SETTLED`` instead of ``True``: the
        bootstrap then skips its own ``settle`` (one host crossing fewer).
        """

        def call(*args: Any) -> tuple[Any, ...]:
            if lifts:
                self._lift()
            try:
                try:
                    value = fn(*args)
                    if isinstance(value, tuple):
                        return (True, *value)
                    value = self.convert.to_lua(value)
                    if type(value) in _PUSHED_AS_IS and self._settle_early():
                        return _SETTLED, value
                    return True, value
                except LimitExceeded:
                    raise
                except KosmoError as exc:
                    return False, self.convert.to_lua(exc.to_dict())
                except UnicodeError:
                    error = InvalidArgument("a string passed to or from the host is not valid UTF-8 text")
                    return False, self.convert.to_lua(error.to_dict())
                except lua54.LuaMemoryError:
                    self._record_limit("memory")
                    return "limit", "memory"
                except lua54.LuaError:
                    if self.limit_hit is not None:
                        return "limit", self.limit_hit
                    error = InvalidArgument("a metamethod of a value passed to the runtime raised an error",
                                            hint="pass plain data (tables without metatables)")
                    return False, self.convert.to_lua(error.to_dict())
                except Exception:  # a bug on the host side: logged, never shown to the script as Python
                    log.exception("host function %s failed", getattr(fn, "__name__", fn))
                    bug = IntegrationBug("the runtime failed internally while handling this call",
                                         hint="this is a bug in kosmo-runtime, not in your script; report it")
                    return False, self.convert.to_lua(bug.to_dict())
            except LimitExceeded as exc:
                self.limit(exc)
                return "limit", exc.limit

        return call

    # -- the memory cap ----------------------------------------------------------

    def _lift(self) -> None:
        """Lift the memory cap while the host makes Lua values (nested calls count)."""
        self._lifts += 1
        if self._lifts == 1:
            self.lua.set_max_memory(0)

    def _settle_early(self) -> bool:
        """``_settle`` done by a host function before it returns, for results Lua takes without
        allocating; False (the cap left lifted, for the bootstrap's own ``settle`` to find the state
        over it) when the state is over its cap."""
        if self._lifts > 1:
            self._lifts -= 1
            return True
        if self._cap and self.lua.get_memory_used() > self._cap:
            return False
        self._lifts = 0
        self.lua.set_max_memory(self._cap)
        return True

    def _settle(self) -> bool:
        """Undo one ``_lift``; True when the state is over its cap once the cap is back."""
        self._lifts = max(self._lifts - 1, 0)
        if self._lifts:
            return False
        self.lua.set_max_memory(self._cap)
        return bool(self._cap and self.lua.get_memory_used() > self._cap)

    def _library_host(self) -> Any:
        """The host table of the library layer (_stdlib.lua), made when the state loads it (with
        the memory cap lifted): its host functions, and the bytecode it loads itself (the string
        and table layer at once, the pattern analysis on the first pattern call)."""
        return self.lua.table_from({
            "epoch": self._host(lambda: math.floor(read(self._date_clock).timestamp())),
            "print": self._host(self._print),
            "json_encode": self._host(self._json_encode),
            "json_decode": self._host(self._json_decode),
            "stdlib": bytecode("_stdlib.lua"),
            "strlib": bytecode("_strlib.lua"),
            "model": bytecode("_patmodel.lua"),
            "calibrate": self._host(pattern_rate),
            "rate": pattern_rate() if pattern_rate.cache_info().currsize else None,  # known: no host call
        })

    def _grow(self, kib: float) -> None:
        """The state loaded a layer of its own during a run: the cap grows by what it keeps."""
        if self._cap:
            self._cap += math.ceil(kib * 1024)

    def _checkpoint(self) -> None:
        """Bound host work on Lua values: the wall clock and the memory cap (also while lifted)."""
        if self.clock() > self.deadline or self._interrupted:
            raise self.limit_error("wall_time")
        if self._cap and self.lua.get_memory_used() > self._cap:
            raise self.limit_error("memory")

    def _now(self) -> float:
        return math.inf if self._interrupted else self.clock()

    def interrupt(self) -> None:
        """Stop the running chunk at its next instruction-count check (thread-safe)."""
        self._interrupted = True

    def _record_limit(self, name: str) -> None:
        if self.limit_hit is None:
            self.limit_hit = name

    def limit(self, exc: LimitExceeded) -> None:
        """Record a limit hit detected on the host side (the Lua side then trips)."""
        if self.limit_hit is None:
            self.limit_hit = exc.limit
            self._limit_error = exc

    def remaining(self) -> float:
        """Seconds left before the wall-clock limit."""
        return self.deadline - self.clock()

    def _print(self, parts: Any, count: int, raw: bool = False) -> tuple[bool]:
        """Print the parts (``raw``: strings written as they are, as ``io.write`` does); ``(False,)``
        (nothing printed) when a table holds a string that is not UTF-8: the bootstrap then passes a
        copy with such bytes escaped."""
        pieces = []
        try:
            for i in range(1, count + 1):
                value = parts[i]
                if isinstance(value, str):
                    pieces.append(value)
                else:
                    pieces.append(render(self.convert.to_display(value)))
        except UnicodeDecodeError:
            return (False,)
        self.write("".join(pieces) if raw else "\t".join(pieces) + "\n")
        return (True,)

    def write(self, text: str) -> None:
        """Append to the captured output, enforcing the output limit."""
        size = len(text.encode("utf-8", "replace"))
        room = self.limits.output - self._output_size
        if size > room:
            self._emit(text.encode("utf-8", "replace")[: max(room, 0)].decode("utf-8", "ignore"))
            self._output_size = self.limits.output
            raise self.limit_error("output")
        self._emit(text)
        self._output_size += size

    def _emit(self, text: str) -> None:
        self._output.append(text)
        if self.on_output is not None:
            self.on_output(text)

    def _json_encode(self, value: Any, options: Any = None) -> str:
        data = self.convert.to_python(value, what="json.encode argument")
        settings = self.convert.to_python(options, what="json.encode options") if options is not None else {}
        indent = settings.get("indent") if isinstance(settings, dict) else None
        if indent is not None and (not isinstance(indent, int) or isinstance(indent, bool) or not 0 <= indent <= 16):
            raise InvalidArgument("json.encode: option 'indent' must be a whole number from 0 to 16")
        return json.dumps(data, ensure_ascii=False, indent=indent, allow_nan=False)

    def _json_decode(self, text: Any) -> Any:
        if not isinstance(text, str):
            raise InvalidArgument(f"json.decode expects a string, got {type(text).__name__}")
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(
                f"json.decode: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                hint="check the text is complete JSON (quoted keys, no trailing commas)",
            ) from None
        except RecursionError:
            raise InvalidArgument("json.decode: the JSON nests too deeply to decode",
                                  hint=f"values may nest at most {self.limits.depth} levels (the depth limit)") from None
        except ValueError as exc:
            reason = ("a number has more than 4,300 digits" if "int_max_str_digits" in str(exc) else str(exc))
            raise InvalidArgument(f"json.decode: {reason}", hint="JSON numbers must be finite and of reasonable size") from None
        return data

    # -- limits ----------------------------------------------------------------

    def limit_error(self, name: str) -> LimitExceeded:
        """The error for limit ``name``, naming its value and how to raise it."""
        return limit_exceeded(name, getattr(self.limits, name))

    # -- running -----------------------------------------------------------------

    def run(self, source: str, name: str, *, keep_env: bool = False) -> RunResult:
        """Execute ``source`` as chunk ``name`` and describe what happened.

        With ``keep_env`` the chunk shares its globals with earlier ``keep_env`` chunks of this
        sandbox (a session); instructions, wall time, output and calls are counted per chunk,
        memory for the whole session.
        """
        error: KosmoError | None = None
        result: Any = None
        if self._runs:
            self._next_chunk()
        self._runs += 1
        self._session = self._session or keep_env
        refused = self._refuse_source(source)
        if refused is not None:
            return RunResult(ok=False, error=refused, duration=self.clock() - self.started)
        if not self._cap:
            self._cap = self.lua.get_memory_used() + self.limits.memory
        try:
            # The source and names reach Lua with the cap lifted; the bootstrap's run settles it
            # first thing. After the run the cap stays lifted: the host reads the results.
            self._lifts = 0
            self._lift()
            limits = self.limits
            outcome = self._run_chunk(source, name, self.deadline, limits.instructions, keep_env, limits.wall_time,
                                      limits.memory)
            self._lifts = 0
            self._lift()
            status = outcome[0]
            if self.limit_hit is not None:
                error = self._final_limit_error()
            elif status == "ok":
                result = self._results(outcome[1])
            elif status == "syntax":
                error = _syntax_error(outcome[1], source)
            elif status == "limit":
                self._record_limit(outcome[1])
                error = self._final_limit_error()
            else:
                error = self._runtime_error(*outcome[1:])
        except lua54.LuaMemoryError:
            self._record_limit("memory")
            error = self._final_limit_error()
        except lua54.LuaError as exc:  # raised on the host side of the run (e.g. a limit in a metamethod)
            error = self._final_limit_error() if self.limit_hit else LuaRuntimeError(f"the run failed: {exc}")
        except ScriptError as exc:
            error = exc
        except UnicodeDecodeError:
            error = LuaRuntimeError("the script's result or error contains text that is not valid UTF-8",
                                    hint="use UTF-8 text only, e.g. encode binary data as hex first")
        except InvalidArgument as exc:
            error = LuaRuntimeError(f"the script's return value cannot be returned: {exc.message}", hint=exc.hint)
        if error is not None and self.limit_hit is not None and not isinstance(error, LimitExceeded):
            error = self._final_limit_error()
        for finish in self.on_end:
            finish()
        if error is not None:
            _bound_error(error, ERROR_TEXT_BYTES)
            # its traceback's frames hold Lua values: the state must not outlive the run through them
            error.__traceback__ = error.__context__ = error.__cause__ = None
        return RunResult(
            ok=error is None,
            result=result if error is None else None,
            output="".join(self._output),
            error=error,
            calls=list(self.calls),
            duration=self.clock() - self.started,
        )

    def _refuse_source(self, source: str) -> KosmoError | None:
        """The error for a source too large to compile (checked before it reaches Lua)."""
        size = len(source) if len(source) * 4 <= MAX_SOURCE_BYTES else len(source.encode("utf-8", "surrogatepass"))
        if size > self.limits.memory:
            return LimitExceeded(f"run stopped: the script's source ({size:,} bytes) is larger than the memory "
                                 f"limit of {self.limits.memory:,} bytes", limit="memory", value=self.limits.memory,
                                 hint="send a shorter script: fetch data with integration calls instead of embedding it")
        if size > MAX_SOURCE_BYTES:
            return InvalidArgument(f"the script's source is {size:,} bytes; the maximum is {MAX_SOURCE_BYTES:,}",
                                   hint="send a shorter script: fetch data with integration calls instead of embedding it")
        return None

    def _next_chunk(self) -> None:
        if self.limit_hit is not None:
            raise RuntimeError("this sandbox hit a limit; start a new one")
        self.started = self.clock()
        self.deadline = self.started + self.limits.wall_time
        self.calls.clear()
        self._output.clear()
        self._output_size = 0

    def _final_limit_error(self) -> LimitExceeded:
        if self._interrupted:
            return LimitExceeded("run stopped: interrupted", limit="interrupted",
                                 hint="the run was interrupted on request (Ctrl-C); nothing after that point ran")
        existing = self._limit_error
        error = existing if existing is not None and existing.limit == self.limit_hit else \
            self.limit_error(self.limit_hit or "instructions")
        if error.limit == "memory" and self._was_deep():
            error.hint = _DEEP_HINT
        return error

    def _was_deep(self) -> bool:
        """Whether the run's stack was seen over 100,000 calls deep while it held over half its memory."""
        try:
            return bool(self.kit.was_deep())
        except lua54.LuaError:  # not expected: the state is read, not grown
            return False

    def _results(self, packed: Any) -> Any:
        count = packed["n"]
        values = []
        for i in range(2, count + 1):
            try:
                value = packed[i]
            except UnicodeDecodeError:  # (lupa decodes a string as it reads it)
                raise not_utf8("return value is a string that is not valid UTF-8 text") from None
            values.append(self.convert.to_python(value, what="return value", limit="result"))
        result = None if not values else values[0] if len(values) == 1 else values
        if type(result) in _SCALARS and self.limits.result >= 32:  # at most 24 bytes of JSON
            return result
        size = len(json.dumps(result, ensure_ascii=False))
        if size > self.limits.result:
            raise self.limit_error("result")
        return result

    def _runtime_error(self, err: Any, traceback: str | None = None, message: Any = None) -> KosmoError:
        traceback = _traceback_only(traceback)
        if isinstance(err, str):
            return _located(LuaRuntimeError, err, traceback)
        if lua54.lua_type(err) == "table":
            _, _, _, is_structured = self.kit.inspect(err)
            data = self.convert.to_display(err)
            if is_structured and isinstance(data, dict):
                return error_from_lua(data, traceback)
            if isinstance(message, str):
                return _located(LuaRuntimeError, message, traceback)
            return LuaRuntimeError(f"script raised a table as its error: {render(data)}", traceback=traceback,
                                   hint="raise a string, e.g. error('what went wrong'), or a table with a __tostring metamethod")
        shown = render(self.convert.to_display(err)) if err is not None else "nil"
        return LuaRuntimeError(f"script raised a non-string error value: {shown}", traceback=traceback)


def _seeds() -> tuple[int, int]:
    """Two random 64-bit integers for ``math.randomseed`` (each run's generator starts afresh)."""
    data = os.urandom(16)
    return int.from_bytes(data[:8], "little", signed=True), int.from_bytes(data[8:], "little", signed=True)


def _budgets(limits: Limits) -> dict[str, int]:
    """The converter's budgets: limit name -> units a walk of Lua values may spend."""
    return {"memory": limits.memory, "result": limits.result, "output": limits.output}


def _bound_error(error: KosmoError, size: int) -> None:
    """Shorten an error's message, traceback and text fields to ``size`` characters each."""
    for key in ("message", *CONTEXT_FIELDS):
        value = getattr(error, key, None)
        if isinstance(value, str) and len(value) > size:
            setattr(error, key, value[:size] + f"... ({len(value) - size:,} more characters cut)")
    error.args = (error.message,)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _located(cls: type[ScriptError], text: str, traceback: str | None = None, **extra: Any) -> ScriptError:
    if text.startswith("?:-1: "):  # Lua's own error raised in the runtime's stripped code: no position, as from C
        text = text[6:]
    match = _LOCATION.match(text)
    if match and match["script"] == "[kosmo]":
        frame = re.search(r"^\s*([^\s\[][^:\n]*):(\d+):", traceback or "", re.M)
        text = f"{frame[1]}:{frame[2]}: {match['message']}" if frame else match["message"]
        match = _LOCATION.match(text)
    if match:
        return cls(text, script=match["script"], line=int(match["line"]), traceback=traceback, **extra)
    return cls(text, traceback=traceback, **extra)


def _syntax_error(message: str, source: str) -> ScriptError:
    error = _located(LuaSyntaxError, message)
    keyword = re.search(r"near '(\w+)'", message)
    line = getattr(error, "line", None)
    if keyword and keyword[1] in _KEYWORDS and line:
        lines = source.splitlines()
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        if re.search(rf"\b{keyword[1]}\s*=", text):
            word = keyword[1]
            error.hint = (f"'{word}' is a Lua keyword and cannot be a bare table key: "
                          f"write [\"{word}\"] = ... instead of {word} = ...")
    return error


def _traceback_only(traceback: str | None) -> str | None:
    """The run's traceback from its ``stack traceback:`` line on, the runtime's own frames left out
    (None when no frame of the script's is left)."""
    if not traceback:
        return None
    traceback = _strip_traceback(traceback)
    index = traceback.find("stack traceback:")
    if index < 0:
        return traceback or None
    header, *frames = (line for line in traceback[index:].split("\n") if line)
    if frames and frames[0] == _TAIL_CALLS:  # the runtime's own tail calls, above the script's frames
        frames.pop(0)
    return "\n".join([header, *frames]) if frames else None


#: The memory limit's hint for a run whose stack was very deep (``kit.was_deep``).
_DEEP_HINT = ("the call stack was over 100,000 calls deep as memory ran out: most likely a recursion without a "
              "base case (what Lua calls a stack overflow); give it one, or use a loop (a higher --memory only "
              "moves where it stops)")

_OWN_FRAMES = ("[C]: in ?", "[kosmo]", "[C]: in function 'error'")
_TAIL_CALLS = "\t(...tail calls...)"
_STRIPPED_FRAME = re.compile(r"[ \t\n\v\f\r]*\?:")


def _strip_traceback(traceback: str) -> str:
    """The traceback without the runtime's own frames (as ``strip_traceback`` in _stdlib.lua does for
    ``debug.traceback``): C frames it calls through, its chunks, and the run's ``xpcall`` boundary."""
    lines = [line for line in traceback.split("\n")
             if line and not any(frame in line for frame in _OWN_FRAMES) and not _STRIPPED_FRAME.match(line)]
    if lines and lines[-1] == "\t[C]: in function 'xpcall'":
        lines.pop()
    return "\n".join(lines)


_ERROR_CLASSES: dict[str, type[KosmoError]] = {}


def error_from_lua(data: dict[str, Any], traceback: str | None = None) -> KosmoError:
    """Rebuild the KosmoError a structured Lua error table describes."""
    if not _ERROR_CLASSES:
        from . import _errors

        _ERROR_CLASSES.update({name: getattr(_errors, name) for name in _errors.__all__})
    cls = _ERROR_CLASSES.get(str(data.get("type")), CallError)
    if issubclass(cls, ScriptError):  # a script cannot dress its own error up as a limit hit
        cls = CallError
    context = {k: v for k, v in data.items()
               if k in CONTEXT_FIELDS and k not in ("hint", "traceback") and not isinstance(v, Opaque)}
    hint = data.get("hint")
    return cls(str(data.get("message", "error")), hint=hint if isinstance(hint, str) else None,
               traceback=traceback, **context)
