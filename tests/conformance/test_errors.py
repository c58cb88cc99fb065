"""No error a script sees names the sandbox's own code: every provided function, called wrongly.

Each global and library function (string and table: see test_string.py/test_table.py) is called
with odd arguments, directly and through pcall; every message must be free of the bootstrap's
chunk name and of its internal function names, and where plain Lua raises the same error the
message must be the same.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conformance import plain, same, sandboxed

ROOT = Path(__file__).resolve().parents[2] / "kosmo_runtime"
LIBRARIES = ["coroutine", "math", "utf8", "os"]
GLOBALS = ["assert", "collectgarbage", "error", "getmetatable", "ipairs", "load", "next", "pairs", "pcall",
           "print", "rawequal", "rawget", "rawlen", "rawset", "require", "select", "setmetatable", "tonumber",
           "tostring", "type", "xpcall"]
ARGUMENTS = ["", "nil", "{}", "1", "'x'", "print", "1, 2", "{}, {}", "nil, nil, nil", "'x', {}", "-1, 'y'",
             "coroutine.create(print)", "setmetatable({}, {__name = 'Named'})"]
# Lua 5.4 names, which messages may quote; any other identifier defined in the sandbox's Lua is internal.
STANDARD = set(GLOBALS) | {"string", "table", "math", "utf8", "os", "coroutine", "debug", "io", "package", "json",
                           "app", "_G", "_ENV", "print", "for iterator", "?"}
STANDARD |= set(plain("local r = {} for _, lib in ipairs({'string', 'table', 'math', 'utf8', 'os', 'coroutine', 'io', "
                      "'debug', 'package'}) do for k in pairs(_G[lib]) do r[#r + 1] = k end end return r").value)


def _internal_names() -> set[str]:
    names: set[str] = set()
    for path in ROOT.glob("_*.lua"):
        for found in re.findall(r"\blocal\s+([\w,\s]+?)\s*=", path.read_text()):
            names |= {n.strip() for n in found.split(",")}
        names |= set(re.findall(r"\blocal\s+function\s+(\w+)", path.read_text()))
    return {n for n in names if n and n not in STANDARD and len(n) > 2}


INTERNAL = _internal_names()


def _calls() -> list[str]:
    functions = [name for name in GLOBALS if name not in ("print",)]
    for lib in LIBRARIES:
        functions += [f"{lib}.{name}" for name in _members(lib)]
    return [f"{fn}({args})" for fn in functions for args in ARGUMENTS]


def _members(lib: str) -> list[str]:
    got = sandboxed(f"local r = {{}} for k, v in pairs({lib}) do if type(v) == 'function' then r[#r + 1] = k end end"
                    " table.sort(r) return r")
    assert got.ok, got
    skip = {"exit", "execute", "getenv", "remove", "rename", "tmpname", "setlocale", "yield"}  # refused / main chunk
    return [name for name in got.value if name not in skip]


def _check(text: str | None) -> None:
    if text is None:
        return
    assert "[kosmo]" not in text, text
    quoted = set(re.findall(r"'([A-Za-z_]\w*)'", text))
    assert not quoted & INTERNAL, (text, quoted & INTERNAL)


@pytest.mark.parametrize("call", _calls())
def test_errors_name_no_sandbox_internals(call: str) -> None:
    # not `return {call}`: a tail call loses the caller's position in the sandbox (see test_tail_call_position)
    source = f"local ok, e = pcall(function() local r = table.pack({call}) return r end) " \
             f"local ok2, e2 = pcall({call.split('(')[0]}, {call[call.index('(') + 1:-1] or 'nil'}) " \
             "return ok and 'ok' or tostring(e), ok2 and 'ok' or tostring(e2)"
    got = sandboxed(source)
    assert got.ok or got.error, got
    values = got.value if got.ok else [got.error]
    for text in values if isinstance(values, list) else [values]:
        _check(text if isinstance(text, str) else None)
    expected = plain(source)
    if expected.ok and got.ok and isinstance(expected.value, list) and isinstance(got.value, list):
        for lua_text, our_text in zip(expected.value, got.value, strict=True):
            if lua_text != "ok" and our_text != "ok" and ": 0x" not in lua_text and "sandbox" not in our_text:
                assert our_text == lua_text, (call, lua_text, our_text)


def test_tail_call_position() -> None:
    """A deliberate difference: a function the sandbox implements in Lua, called as a tail call,
    replaces its caller's frame, so its error has no position (Lua's C function names the line)."""
    source = "local function f() return setmetatable(1) end\nlocal ok, e = pcall(f) return e"
    assert plain(source).value == "script.lua:1: bad argument #1 to 'setmetatable' (table expected, got number)"
    assert sandboxed(source).value == "bad argument #1 to 'setmetatable' (table expected, got number)"


def test_unbounded_recursion() -> None:
    """Lua's catchable "stack overflow" when the stack fills first; with frames this small the stack's
    memory reaches the run's memory limit first (a documented difference), which ends the run."""
    same("local function r(n) local t = {} return 1 + r(n + 1) end return pcall(r, 1)")
    small = "local function r() return r() + 1 end return pcall(r)"
    assert plain(small).value == [False, "script.lua:1: stack overflow"]
    got = sandboxed(small)
    assert not got.ok and got.error is not None and "memory limit" in got.error


# error(message, level) counts frames as Lua does where the sandbox's wrappers stand between a callback
# and the script (gsub, sort, format's __tostring, insert's __newindex, sort's big-table comparator),
# and the level argument is checked as Lua's
LEVELS = [
    "local function lvl(n) local ok, e = pcall(function() local r = ('x'):gsub('x', function() error('L', n) end)"
    " return r end) return e end return lvl(1), lvl(2), lvl(3), lvl(4), lvl(5)",
    "local ok, e = pcall(function() table.sort({1, 2}, function() error('L3', 3) end) end) return e",
    "local ok, e = pcall(function() table.insert(setmetatable({}, {__newindex = function() error('L3', 3) end}), 1)"
    " end) return e",
    "local ok, e = pcall(function() local s = string.format('%s', setmetatable({}, {__tostring = function()"
    " error('ts', 3) end})) end) return e",
    "local ok, e = pcall(function() local t = {} for i = 1, 100000 do t[i] = -i end"
    " table.sort(t, function(a, b) if a == -5 then error('big3', 3) end return a < b end) end) return e",
    "local ok, e = pcall(function() local t = setmetatable({}, {__lt = function() error('lt3', 3) end})"
    " local l = {} for i = 1, 100000 do l[i] = t end table.sort(l) end) return e",
    "local ok, e = pcall(string.gsub, 'x', 'x', function() error('P3', 3) end) return e",
    "local ok, e = pcall(pcall, function() error('PP3', 3) end) return e",
    "local co = coroutine.wrap(function() local r = ('x'):gsub('x', function() error('C3', 3) end) return r end)"
    " local ok, e = pcall(co) return e",
    "error('x', 1.5)",
    "return pcall(function() error('x', 2.5) end), pcall(function() error('x', '1.5') end)",
    "return pcall(function() error('x', math.huge) end), pcall(function() error('x', 2.0) end)",
    "local ok, e = pcall(function() error({}, 1.5) end) return ok, type(e)",
    "return xpcall(error, function(m) return m end, 'x', 1.5)",
]

# Lua's runtime errors raised inside a library's C code carry no position; luaL_error's do
C_RAISED = [
    "local ok, e = pcall(function() table.sort({1, 'x', 2}) end) return e",
    "table.sort({{}, {}})",
    "local ok, e = pcall(function() local x = table.unpack() return x end) return e",
    "local ok, e = pcall(function() local x = table.unpack(nil, 1, 2) return x end) return e",
    "local ok, e = pcall(function() local t = {} for i = 1, 100000 do t[i] = (i * 7919) % 100003 end t[500] = 'x'"
    " table.sort(t) end) return e",
    "local ok, e = pcall(function() local t = {} for i = 1, 100 do t[i] = 101 - i end"
    " table.sort(t, function() return true end) end) return e",
    "local function f(s) local r = string.gsub(s, '.', f) return r end local ok, e = pcall(f, 'a') return ok, e",
    "local function f(s) local r = string.gsub(s, '.', f) return r end f('a')",
]


@pytest.mark.parametrize("source", LEVELS + C_RAISED)
def test_same_as_lua(source: str) -> None:
    same(source)


def test_no_error_reads_a_position_in_the_runtimes_own_code() -> None:
    """A C stack overflow met inside the runtime's (stripped) Lua code reads as Lua's C code raises it,
    whatever ran before on the same state (the first case leaves code loaded that the next ones meet)."""
    for source in ["local t = setmetatable({}, {__index = os.time}) local r = t.x",
                   "local t = setmetatable({}, {__index = function(t) return os.time(t) end}) return pcall(os.time, t)",
                   "local t = setmetatable({}, {}) getmetatable(t).__tostring = function(s) print(s) return 'x' end"
                   " return pcall(print, t)"]:
        got = sandboxed(source)
        text = got.error if not got.ok else str(got.value)
        assert "C stack overflow" in text and "?:-1:" not in text, (source, got)
