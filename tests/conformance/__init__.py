"""Conformance with Lua 5.4: each case runs in plain ``lupa.lua54.LuaRuntime()`` and in the sandbox.

A case is a chunk of Lua. ``same(source)`` asserts that both give the same outcome (the
returned values, the printed output of scalars, and the error message of an uncaught error,
all with the chunk named ``script.lua``). ``refused(source, *words)`` asserts that the sandbox
refuses on purpose: the error names the thing and the reason (each of ``words`` appears) and is
never Lua's bare "attempt to call a nil value".

Both sides normalise values the same way: no value is ``None``, one value is itself, several
are a list; a table whose keys are exactly ``1..n`` is a list, any other table a dict (keys as
strings). Cases should return data, not print tables: ``print`` of a table is a deliberate
difference (the sandbox prints its contents).

Library modules (``test_string.py`` ...) import these helpers::

    from tests.conformance import refused, same

    @pytest.mark.parametrize("source", CASES)
    def test_same_as_lua(source: str) -> None:
        same(source)
"""

from __future__ import annotations

import atexit
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from lupa import lua54

from kosmo_runtime import AccountsConfig, Limits, Runtime

__all__ = ["SHOW", "Outcome", "plain", "refused", "same", "sandboxed"]

#: Limits for conformance cases: generous enough for any case, small enough to end a runaway one.
LIMITS = Limits(instructions=50_000_000, wall_time=10.0, memory=64 * 1024 * 1024)
CHUNK = "script.lua"
#: A prelude defining ``show(...)``: values as one string, tables and functions by their type only
#: (addresses differ between states); put before a case whose values would not compare as data.
SHOW = """local function show(...)
  local t, out = table.pack(...), {}
  for i = 1, t.n do
    local v = t[i]
    out[i] = (type(v) == "table" or type(v) == "function") and "<" .. type(v) .. ">" or tostring(v)
  end
  return table.concat(out, "|")
end
"""


@dataclass(frozen=True)
class Outcome:
    """What one run of a case gave: its values, its output, or its error message."""

    ok: bool
    value: Any = None
    output: str = ""
    error: str | None = None


# Runs the case as the sandbox does (chunk "=script.lua", text only), capturing print's scalars.
_PLAIN_DRIVER = b"""
local source, name = ...
local out = {}
print = function(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  out[#out + 1] = table.concat(t, "\\t", 1, t.n) .. "\\n"
end
local fn, err = load(source, "=" .. name, "t")
if not fn then return false, err, table.concat(out) end
local r = table.pack(xpcall(fn, function(e) return e end))
if not r[1] then
  local e = r[2]
  if type(e) ~= "string" then
    local mt = getmetatable(e)
    e = (type(mt) == "table" and mt.__tostring) and tostring(e) or nil
  end
  return false, e, table.concat(out)
end
return true, table.pack(table.unpack(r, 2, r.n)), table.concat(out)
"""


def _text(value: Any) -> Any:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def _py(value: Any, depth: int = 0) -> Any:
    """A Lua value from plain lupa, normalised as the sandbox normalises results."""
    if lua54.lua_type(value) == "table":
        if depth > 32:
            raise ValueError("table nests too deeply for a conformance case")
        keys = list(value.keys())
        if keys and all(isinstance(k, int) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
            return [_py(value[k], depth + 1) for k in range(1, len(keys) + 1)]
        return {str(_text(k)): _py(v, depth + 1) for k, v in value.items()}
    if lua54.lua_type(value) is not None:  # function, thread, userdata: not data
        return f"<{lua54.lua_type(value)}>"
    return _text(value)


def _values(packed: list[Any]) -> Any:
    return None if not packed else packed[0] if len(packed) == 1 else packed


def plain(source: str) -> Outcome:
    """Run ``source`` in a fresh, unrestricted ``lupa.lua54.LuaRuntime()``."""
    lua = lua54.LuaRuntime(encoding=None, unpack_returned_tuples=True)
    driver = lua.execute
    ok, value, output = driver(_PLAIN_DRIVER, source.encode("utf-8", "surrogateescape"), CHUNK.encode())
    if not ok:
        return Outcome(False, output=_text(output), error=_text(value))
    packed = [_py(value[i]) for i in range(1, value[b"n"] + 1)]
    return Outcome(True, _values(packed), _text(output))


@cache
def _runtime() -> Runtime:
    runtime = Runtime(accounts=AccountsConfig.empty(), store=":memory:")
    atexit.register(runtime.close)
    return runtime


def sandboxed(source: str, limits: Limits = LIMITS) -> Outcome:
    """Run ``source`` in the sandbox (``Runtime().run``)."""
    result = _runtime().run(source, limits=limits, name=CHUNK)
    if not result.ok:
        assert result.error is not None
        return Outcome(False, output=result.output, error=result.error.message)
    return Outcome(True, result.result, result.output)


def same(source: str) -> Outcome:
    """Assert that plain Lua 5.4 and the sandbox give the same outcome; return it."""
    expected = plain(source)
    got = sandboxed(source)
    if not expected.ok and expected.error is None:
        # An uncaught error value that is not a string: Lua's own `lua` prints "(error object is a
        # table value)"; the sandbox's error describes the value (a deliberate difference).
        assert not got.ok and got.error and re.search(r"error value|as its error", got.error), got
        assert got.output == expected.output, f"\nsource: {source}\nplain:   {expected}\nsandbox: {got}"
        return got
    assert got == expected, f"\nsource: {source}\nplain:   {expected}\nsandbox: {got}"
    return got


def refused(source: str, *words: str) -> Outcome:
    """Assert that the sandbox refuses ``source`` on purpose, naming what and why (``words``)."""
    got = sandboxed(source)
    text = got.error if not got.ok else _refusal_in(got.value)
    assert text is not None, f"\nsource: {source}\nexpected a refusal, got {got}"
    assert not re.search(r"attempt to (call|index) a nil value", text), text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    assert "[kosmo]" not in text, text
    return got


def _refusal_in(value: Any) -> str | None:
    """The message of a refusal the case caught itself: ``[false, message]`` from ``pcall``, or
    ``[nil, message]`` from a function that returns its failure (``load``)."""
    if isinstance(value, list) and len(value) >= 2 and value[0] in (False, None):
        if isinstance(value[1], dict) and isinstance(value[1].get("message"), str):  # a structured error
            return value[1]["message"]
        if isinstance(value[1], str):
            return value[1]
    return None
