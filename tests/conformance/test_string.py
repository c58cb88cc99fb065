"""The string library (Lua 5.4 manual §6.4): results and error messages as in plain Lua 5.4.

Each snippet runs in plain ``lupa.lua54.LuaRuntime()`` and in the sandbox; the two must give
the same text. The sandbox wraps find/match/gmatch/gsub/rep (the pattern-cost guard) and the
functions that read the clock on big inputs: none of that may show in a result or an error.
"""

from __future__ import annotations

import pytest

from kosmo_runtime import Runtime

from . import SHOW, plain, same, sandboxed

SAME = [
    # find: init, plain, anchors, captures, position captures, special characters
    'return show(("hello world"):find("o w"), ("hello"):find("l"), ("hello"):find("l", -2), ("hello"):find("xl"))',
    'return show(("a.b"):find(".", 1, true), ("a.b"):find("%."), ("a+b"):find("+", 1, true), ("abc"):find("b", 10))',
    'return show(("abc"):find("", 4), ("abc"):find("", 5), ("abc"):find("^b"), ("abc"):find("^a()"), ("abc"):find("c$"))',
    'return show(string.find("key = value", "(%w+)%s*=%s*(%w+)"), string.find(12345, 34), string.find("x", 1))',
    'return show(("[[x]]"):find("%b[]"), ("THE (quick) fox"):find("%f[%a]%a+%f[%A]"), ("aXb"):find("%u"))',
    # match and gmatch
    'return show(("  trim me  "):match("^%s*(.-)%s*$"), ("2024-01-05"):match("(%d+)-(%d+)-(%d+)"))',
    'return show(("abc"):match("()b()"), ("abc"):match(".", -1), ("abc"):match("x"), ("a1"):match("%d", 3))',
    'local t = {} for k, v in ("a=1, b=2, c=3"):gmatch("(%w+)=(%w+)") do t[#t + 1] = k .. v end '
    'return table.concat(t, ",")',
    'local t = {} for w in ("one two  three"):gmatch("%S+") do t[#t + 1] = w end return table.concat(t, ",")',
    'local t = {} for l in ("a\\nb\\n\\nc\\n"):gmatch("([^\\n]*)\\n") do t[#t + 1] = "[" .. l .. "]" end '
    'return table.concat(t)',
    'local t = {} for a in ("^a^a"):gmatch("^a") do t[#t + 1] = a end return #t',
    'local t = {} for a in ("abcabc"):gmatch("b", 3) do t[#t + 1] = a end return #t',
    'local t = {} for a, b in ("xyz"):gmatch("()(.)") do t[#t + 1] = a .. b end return table.concat(t, ",")',
    # gsub: string, table and function replacements, %0/%1, the count, n
    'return show(("hello world"):gsub("o", "0"), ("hello"):gsub("l", "L", 1), ("abc"):gsub("", "-"))',
    'return show(("hello world"):gsub("(%w+)", "<%1>"), ("abc"):gsub("%w", "%0%0"), ("a%b"):gsub("%%", "%%%%"))',
    'return show(("$name is $age"):gsub("%$(%w+)", {name = "Ann", age = 7}), ("x y"):gsub("%w", {x = false}))',
    'return show(("1 2 3"):gsub("%d", function(d) return d * 2 end), ("a b"):gsub("%w", function() end))',
    'return show(string.gsub("abc", ".", {a = 1, b = true}))',
    # rep, sub, byte, char, format, upper/lower/len/reverse, pack/unpack
    'return show(("ab"):rep(3), ("ab"):rep(3, ","), ("x"):rep(0), ("x"):rep(-1), ("x"):rep(1, "sep"), string.rep("", 5))',
    'return show(("hello"):sub(2, -2), ("hello"):sub(-3), ("hello"):sub(0), ("hello"):sub(10), ("hello"):byte(1, -1))',
    'return show(string.char(72, 105), ("%5.2f|%d|%s|%q|%x|%-3s|"):format(3.14159, 42, "s", "a\\n", 255, "x"))',
    'return show(("MiXeD"):upper(), ("MiXeD"):lower(), ("abc"):len(), #"", ("abc"):reverse(), string.format("%g", 1e300))',
    'return show(string.unpack("<i4", string.pack("<i4", 7)), string.packsize("i4i8"))',
    'return show(string.format("%10.3s|", "abcdef"), string.format("%c%c", 76, 117), tostring(string.format("%a", 1)))',
    # errors: names, argument numbers, "got no value", positions, from pcall and direct calls
    'return show(pcall(string.find, {}, "x"))',
    'return show(pcall(string.find))',
    'return show(pcall(string.find, "x"))',
    'return show(pcall(string.find, "x", "x", {}))',
    'return show(pcall(string.match, "x", {}))',
    'return show(pcall(string.gmatch, nil, "x"))',
    'return show(pcall(string.gmatch, "x"))',
    'return show(pcall(string.gsub, "x"))',
    'return show(pcall(string.gsub, "x", "x"))',
    'return show(pcall(string.gsub, "x", "x", true))',
    'return show(pcall(string.gsub, "x", "x", "y", "z"))',
    'return show(pcall(string.rep))',
    'return show(pcall(string.rep, "x"))',
    'return show(pcall(string.rep, "x", "a"))',
    'return show(pcall(string.rep, "x", 1.5))',
    'return show(pcall(string.rep, "x", 1e10))',
    'return show(pcall(string.rep, "x", 2^31, "y"))',
    'return show(pcall(string.rep, ("x"):rep(100), math.maxinteger))',
    'return show(pcall(string.rep, "", 1e18, "x"))',
    'return show(pcall(string.upper))',
    'return show(pcall(string.sub))',
    'return show(pcall(string.format, "%d", "x"))',
    'return show(pcall(string.format, "%y", 1))',
    'return show(pcall(string.char, 256))',
    'return show(pcall(function() local a = string.find({}, "x") return a end))',
    'return show(pcall(function() local a = ("x"):find({}) return a end))',
    'return show(pcall(function() local a = ("x"):find() return a end))',
    'return show(pcall(function() local a = ("x").find() return a end))',
    'return show(pcall(function() local f = string.find local a = f({}) return a end))',
    'return show(pcall(function() local a = string.rep() return a end))',
    'return show(pcall(function() local a = string.rep("x", 1e10) return a end))',
    'return show(pcall(function() local a = ("x"):upper(1, 2) .. string.upper({}) return a end))',
    'return show(pcall(function() local a = string.gsub("x", "x", "%2") return a end))',
    'local a = string.find({}, "x") return a',
    'local a = ("x"):rep() return a',
    # errors raised inside the matcher
    'return show(pcall(string.find, "x", "[a"))',
    'return show(pcall(string.find, "x", "%"))',
    'return show(pcall(string.find, "x", "(x"))',
    'return show(pcall(string.find, "x", "x)"))',
    'return show(pcall(string.find, "x", "%1"))',
    'return show(pcall(string.find, "x", "%f"))',
    'return show(pcall(string.find, "x", "%b"))',
    'return show(pcall(string.gsub, "x", "x", "%2"))',
    'return show(pcall(string.gsub, "x", "x", "%"))',
    'return show(pcall(string.gsub, "x", "x", {x = {}}))',
    'return show(pcall(string.find, "aaa", ("(a?)"):rep(40)))',
    'return show(pcall(function() local a = ("x"):find("[") return a end))',
    # errors raised by the script's own callbacks pass through untouched
    'return show(pcall(string.gsub, "abc", "%w", function(c) error("boom") end))',
    'return show(pcall(string.gsub, "abc", "%w", function(c) error("boom", 0) end))',
    'return show(pcall(string.gsub, "abc", "%w", function(c) error({}) end))',
    'return show(pcall(string.gsub, "abc", "%w", function(c) return c + 1 end))',
    'return show(pcall(string.gsub, "abc", "%w", setmetatable({}, {__index = function() error("idx") end})))',
    'return show(pcall(string.format, "%s", setmetatable({}, {__tostring = function() error("ts") end})))',
    # extending the string table reaches methods, within the run
    'function string.shout(s) return s:upper() .. "!" end return ("hi"):shout()',
    'string.upper = function() return "mine" end return ("x"):upper()',
    'string.rep = nil return show(pcall(function() local a = ("x"):rep(2) return a end))',
    'return show(("x").find == string.find, ("").gsub == string.gsub)',
]


@pytest.fixture(scope="module")
def runtime():
    with Runtime() as rt:
        yield rt


@pytest.mark.parametrize("snippet", SAME)
def test_same_as_plain_lua(snippet: str) -> None:
    same(SHOW + snippet)


def test_a_tail_called_wrapper_names_the_function_without_a_line(runtime: Runtime) -> None:
    # The one difference left: `return string.find({})` tail-calls the sandbox's Lua wrapper,
    # whose caller's frame is gone, so the message has the name but not the line.
    snippet = SHOW + 'return string.find({}, "x")'
    assert plain(snippet).error == "script.lua:9: bad argument #1 to 'find' (string expected, got table)"
    assert sandboxed(snippet).error == "bad argument #1 to 'find' (string expected, got table)"


def test_the_string_metatable_is_hidden(runtime: Runtime) -> None:
    # deliberate: getmetatable("") is false, so no script can reach or replace it
    assert runtime.run('return getmetatable("")').result is False
    assert plain('return getmetatable("").__index == string').value is True


def test_string_changes_stay_in_their_run(runtime: Runtime) -> None:
    first = runtime.run('function string.shout(s) return s:upper() end string.upper = nil return ("a"):shout()')
    assert not first.ok and "attempt to call a nil value (method 'upper')" in first.error.message
    second = runtime.run("return string.shout, (''):upper(), ('ab'):rep(2)")
    assert second.ok and second.result == [None, "", "abab"]
