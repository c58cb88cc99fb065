"""Lua 5.4 manual §6.1 (basic functions): the same results and errors as plain Lua."""

from __future__ import annotations

import pytest

from tests.conformance import refused, same, sandboxed

SAME = [
    # assert
    "return assert(1, 2, 3)",
    "return pcall(assert, false)",
    "return pcall(assert, nil, 'message')",
    "return pcall(assert, false, {code = 1})",
    "return pcall(assert)",
    "assert(false, 'boom')",
    "assert(1 == 2)",
    # error and its levels
    "error('plain')",
    "error('no position', 0)",
    "local function f() error('caller', 2) end f()",
    "local function f() error('caller', 2) end local ok, e = pcall(function() f() end) return e",
    "local function f() error('three', 3) end local function g() f() end local ok, e = pcall(function() g() end) return e",
    "return pcall(error)",
    "return pcall(error, nil)",
    "return pcall(error, {1, 2})",
    "return select(2, pcall(error, 'level 2 through pcall', 2))",
    "return pcall(error, 'x', 1.0)",
    "return pcall(error, 'x', 'y')",
    "local t = setmetatable({}, {__tostring = function() return 'custom error' end}) error(t)",
    # ipairs / pairs / next
    "local r = {} for i, v in ipairs({10, 20, nil, 40}) do r[#r + 1] = i .. '=' .. v end return r",
    "local r = {} for k, v in pairs({a = 1}) do r[#r + 1] = k .. v end return r",
    "local t = setmetatable({}, {__pairs = function(t) return function(_, k) if not k then return 1, 'one' end end, t, nil end})"
    " local r = {} for k, v in pairs(t) do r[k] = v end return r",
    "local t = setmetatable({}, {__index = function(_, i) if i <= 3 then return i * 10 end end})"
    " local r = {} for i, v in ipairs(t) do r[i] = v end return r",
    "return next({}), next({5})",
    "return pcall(next, {}, 'nokey')",
    "return pcall(pairs)",
    "return pcall(ipairs)",
    # select
    "return select('#', 1, nil, 3), select(2, 'a', 'b', 'c'), select(-1, 'a', 'b')",
    "return pcall(select, 0, 'a')",
    "return pcall(select, 'x')",
    # tonumber / tostring / type
    "return tonumber('0x10'), tonumber('10', 2), tonumber('z', 36), tonumber(' 5 '), tonumber('5e1'), tonumber('x')",
    "return tonumber('1e1', 10), tonumber(nil)",
    "return pcall(tonumber)",
    "return pcall(tonumber, '10', 99)",
    "return tostring(1), tostring(1.5), tostring(-0.0), tostring(1e100), tostring(nil), tostring(true)",
    "return math.type(2^53), tostring(2^63), tostring(math.mininteger)",
    "return type(print), type(nil), type({}), type('x'), type(2), type(coroutine.create(print))",
    "return pcall(type)",
    "return tostring(setmetatable({}, {__name = 'MyType'})):match('^MyType: ') ~= nil",
    # raw functions
    "local t = setmetatable({}, {__index = function() return 'meta' end, __newindex = function() error('no') end})"
    " rawset(t, 'k', 'v') return rawget(t, 'k'), rawget(t, 'other'), t.other, rawlen({1, 2}), rawlen('abc'), rawequal(t, t)",
    "return rawset({}, 1, 2)[1]",
    "return pcall(rawset, {}, nil, 1)",
    "return pcall(rawset, {}, 0/0, 1)",
    "return pcall(rawset, 1, 2, 3)",
    "return pcall(rawset, {}, 1)",
    "return pcall(rawget, 1, 2)",
    "return pcall(rawlen, 5)",
    "return pcall(rawequal, 1)",
    # pcall / xpcall
    "return pcall(function(...) return select('#', ...), ... end, 1, nil, 3)",
    "return pcall(pcall)",
    "return pcall(nil)",
    "return pcall(xpcall)",
    "return pcall(xpcall, print)",
    "return xpcall(function() error('x') end, function(e) return 'handled: ' .. e end)",
    "return xpcall(function(a, b) return a + b end, print, 1, 2)",
    "return xpcall(function() error('x') end, function(e) error('again', 0) end)",
    "local function f() return pcall(f) end local r = {f()} return #r > 10",
    "local ok, e = pcall(function() local x = nil; return x.y end) return e",
    "local ok, e = pcall(function() return 1 + {} end) return e",
    "local ok, e = pcall(function() return #5 end) return e",
    "local ok, e = pcall(function() return ('x') < 1 end) return e",
    "local ok, e = pcall(function() undefined_function() end) return e",
    "local ok, e = pcall(function() local t = {} t.x.y = 1 end) return e",
    # _VERSION, _G
    "return _VERSION",
    "return _G == _ENV, _G._G == _G, rawget(_G, '_G') == _G",
    "x = 5 return _G.x, _ENV.x, rawget(_G, 'x')",
    "local _ENV = {print = print} y = 1 return y",
    # goto, integer division, bitwise: the language itself
    "local i = 0 ::top:: i = i + 1 if i < 3 then goto top end return i",
    "return 7 // 2, -7 // 2, 7 % -3, 7.0 // 2, 1 / 0 > 0, 3 & 5, 3 | 5, 3 ~ 5, ~0, 1 << 62, 256 >> 4",
    "return pcall(function() return 1 // 0 end)",
    "return pcall(function() return 1 % 0 end)",
    "return pcall(function() return 1.5 | 0 end)",
    "return math.maxinteger + 1 == math.mininteger, 10 == 10.0, '10' + 1, '3' * '4', 10 .. ''",
    "local x <const> = 5 return x",
    "local log = {} do local a <close> = setmetatable({}, {__close = function() log[#log + 1] = 'closed' end}) end return log",
    "local ok, e = pcall(function() local a <close> = 5 end) return e",
    "local log = {} local ok, e = pcall(function() local a <close> = setmetatable({}, {__close = function(_, err) log[1] = err end})"
    " error('inner', 0) end) return log[1], e",
    "return string.format('%5.1f|%d|%s|%q', 3.14159, 42, nil, 'a\\n')",
]

# Deliberate differences: refused by name.
REFUSED = [
    ("dofile('x.lua')", "`dofile` is not available in the sandbox", "no file access"),
    ("loadfile('x.lua')", "`loadfile` is not available in the sandbox", "no file access"),
    ("warn('@on')", "`warn` is not available in the sandbox", "print"),
    ("return pcall(dofile)", "`dofile` is not available"),
]


@pytest.mark.parametrize("source", SAME)
def test_same_as_lua(source: str) -> None:
    same(source)


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_by_name(case: tuple[str, ...]) -> None:
    refused(*case)


def test_a_weak_valued_env_keeps_the_standard_functions() -> None:
    """As in Lua, where the registry holds the library's functions: the env's are held for the run."""
    got = sandboxed("setmetatable(_G, {__mode = 'v'}) collectgarbage() collectgarbage()"
                    " return type(load), type(require), type(pairs), type(string), type(print)")
    assert got.value == ["function", "function", "function", "table", "function"], got
