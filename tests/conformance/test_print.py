"""Lua 5.4 manual §6.1 (print): output as in Lua, bytes that are not UTF-8 escaped, never an error."""

from __future__ import annotations

import pytest

from tests.conformance import same, sandboxed

SAME = [
    "print(1, nil, 'x', true, 2.5, -0.0, 1e100, math.mininteger)",
    "print()",
    "print('')",
    "print('a\\tb', 'c\\nd')",
    "print(setmetatable({}, {__tostring = function() return 'custom' end}))",
    "print(setmetatable({}, {__tostring = function() return 'caf\\xe9' end}))",
    "print((setmetatable({}, {__name = 'Point'}) ~= nil))",
    "print(pcall(print, setmetatable({}, {__tostring = function() return 1 end})))",
    "print(pcall(print, setmetatable({}, {__tostring = function() error('ts') end})))",
    "print(setmetatable({}, {__tostring = function() return 1 end}))",
    "print('\\xff')",
    "print('caf\\xe9', '\\xc3\\xa9', '\\xe2\\x82', '\\xed\\xa0\\x80', 'ok')",
    "print(('\\0'):rep(3) .. 'x')",
    "io = nil print('still prints')",
    "for i = 1, 3 do print(i) end",
]


@pytest.mark.parametrize("source", SAME)
def test_same_as_lua(source: str) -> None:
    same(source)


# Deliberate difference: a table prints its contents (Lua prints its address).
@pytest.mark.parametrize("source,output", [
    ("print({1, 2, x = 'y'})", '{1, 2, x = "y"}\n'),
    ("print({'\\xff', k = 'a\\xfe'})", '{"\\\\xff", k = "a\\\\xfe"}\n'),
    ("print({['\\xff'] = 1})", '{["\\\\xff"] = 1}\n'),
    ("local t = {'\\xff'} t.self = t print(t)", '{"\\\\xff", self = <cycle>}\n'),
    ("print({json.null, json.array()})", "{null, {}}\n"),
    ("print({f = print})", "{f = <function>}\n"),
])
def test_tables_print_their_contents(source: str, output: str) -> None:
    got = sandboxed(source)
    assert got.ok, got
    assert got.output == output


# Written as Lua's print and io.write write (each value as it goes, checked against lupa's own C
# functions writing to stdout): what precedes a failing value is out, and a __tostring's own print
# comes after the values before it. (The plain side of `same` builds its print's line whole.)
@pytest.mark.parametrize("source,output", [
    ("print('before', setmetatable({}, {__tostring = function() error('x') end}))", "before"),
    ("print('x', setmetatable({}, {__tostring = function() print('inner') return 'T' end}))", "xinner\n\tT\n"),
    ("print({1}, setmetatable({}, {__tostring = function() return 'T' end}), {'\\xff'})", '{1}\tT\t{"\\\\xff"}\n'),
    ("io.write('a', 'b', {})", "ab"),
    ("pcall(io.write, 'a', nil) io.write('|')", "a|"),
])
def test_output_is_written_as_lua_writes_it(source: str, output: str) -> None:
    assert sandboxed(source).output == output
