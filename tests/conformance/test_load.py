"""Lua 5.4 manual §6.1 (load): chunk names, modes, environments as in Lua; binary chunks refused."""

from __future__ import annotations

import pytest

from tests.conformance import refused, same

SAME = [
    "return load('x x', 'mychunk')",
    "return load('x x')",
    "return load('x x', '=named')",
    "return load('x x', '@file.lua')",
    "return load('\\n\\n  x x')",
    "return load('return 1 +')",
    "return load(string.rep('x', 100) .. ' y')",
    "local f = load('error(\"inside\")', 'mychunk') return pcall(f)",
    "local f = load('error(\"inside\")') return pcall(f)",
    "local f = load('local x = nil return x.y', '=c') return pcall(f)",
    "return load('return 1', 'x', 'b')",
    "return load('return 1', 'x', 'x')",
    "return load('return 40 + 2', 'x', 't')()",
    "return load('return 40 + 2', 'x', 'bt')()",
    "return load('return 40 + 2', nil, nil)()",
    "return load('return ...', 'c', 't')(7, 8)",
    "return pcall(load('return x.y', '=c', 't', nil))",
    "return pcall(load('return print', '=c', 't', nil))",
    "local f = load('return x', 'c', 't', {x = 5}) return f()",
    "local env = {} load('y = 3', 'c', 't', env)() return env.y, y",
    "return load('return _ENV == _G')()",
    "x = 'global' return load('return x')()",
    "local x = 'local' return load('return x')()",
    "return load(function() return nil end) ~= nil",
    "local i = 0 return load(function() i = i + 1 return ({'return ', '42'})[i] end)()",
    "local parts = {'return ', '', 'never'} local i = 0 return load(function() i = i + 1 return parts[i] end)()",
    "local f, e = load(function() return {} end) return f, e",
    "return load(function() error('reader failed') end)",
    "return load(function() error({}) end) == nil",
    "local f = load(function() return nil end, 'named') return pcall(f)",
    "return pcall(load)",
    "return pcall(load, {})",
    "return pcall(load, 'return 1', {})",
    "return pcall(load, 'return 1', 'x', {})",
    "return load('\\27Lua', 'x', 't')",
    "return load(123)",
    "return select('#', load('return 1')), select('#', load('return 1', 'c', 't', {})), select('#', load('x x'))",
    "return select('#', load(function() return nil end))",
    # the reader is called by Lua's load, from C: numbers are text, a yield cannot cross it
    "local i = 0 return load(function() i = i + 1 return ({'return ', 42})[i] end)()",
    "local i = 0 local f, e = load(function() i = i + 1 return ({'return 1', {}})[i] end) return f, e",
    "local i = 0 return pcall(load, function() i = i + 1 if i == 1 then return true end end)",
    "local co = coroutine.create(function() return load(function() coroutine.yield('in reader') end) end)"
    " local a = {coroutine.resume(co)} local b = {coroutine.resume(co, 'R')} return a, b",
    "return coroutine.wrap(function() return select(2, load(function() coroutine.yield() end)) end)()",
    "local f, e = load(function() error('not enough memory', 0) end) return f, e",  # the reader's own error
    "local i = 0 return load(function() i = i + 1 if i == 1 then return '\\27Lua' end end, 'x', 't')",
    "local i = 0 return load(function() i = i + 1 if i == 1 then return 'return 1' end end, 'x', 'b')",
    "local i = 0 local f, e = load(function() i = i + 1 if i == 1 then return 'x = ' end end, '=mine') return e",
    "local i = 0 local f = load(function() i = i + 1 if i == 1 then return 'return y' end end, 'c', 't', nil)"
    " return pcall(f)",
]

BINARY = r'"\27Lua\84\0\25\147\13\10\26\10\4\8\8\120\86\0\0\0\0\0\0\0\0\0\0\0\40\119\64\1"'
REFUSED = [
    (f"return load({BINARY})", "binary (precompiled) chunks are not allowed in the sandbox"),
    (f"return load({BINARY}, 'x', 'b')", "binary (precompiled) chunks are not allowed in the sandbox"),
    (f"return load({BINARY}, 'x', 'bt', {{}})", "binary (precompiled) chunks are not allowed in the sandbox"),
    ("local i = 0 return load(function() i = i + 1 if i == 1 then return '\\27Lua' end end)",
     "binary (precompiled) chunks are not allowed in the sandbox"),
    ("return load(string.dump(print))", "`string.dump` is not available in the sandbox", "bytecode"),
]


@pytest.mark.parametrize("source", SAME)
def test_same_as_lua(source: str) -> None:
    same(source)


@pytest.mark.parametrize("case", REFUSED[:4], ids=["string", "mode-b", "mode-bt-env", "reader"])
def test_binary_chunks_refused(case: tuple[str, ...]) -> None:
    got = refused(*case)
    assert got.ok and got.value[0] is None  # load returns nil, message, as for any chunk it cannot load


def test_string_dump_refused_by_name() -> None:
    got = refused(*REFUSED[4])  # uncaught: the refusal names string.dump and why, at the script's line
    assert not got.ok and got.error is not None and got.error.startswith("script.lua:1: ")
    same("return type(string.dump)")  # present, as in Lua: a script probing for it finds a function
