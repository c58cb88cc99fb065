"""Lua 5.4 manual §6.7 (math), §6.5 (utf8) and §6.9 (os, the part the sandbox keeps)."""

from __future__ import annotations

import pytest

from tests.conformance import refused, same

SAME = [
    # math
    "return math.floor(2.5), math.ceil(2.5), math.floor(-2.5), math.abs(-3), math.max(1, 5, 3), math.min(2, -1)",
    "return tostring(math.huge), tostring(-math.huge), math.pi, math.maxinteger, math.mininteger",
    "return math.fmod(7, 3), math.fmod(-7, 3), math.modf(3.7), math.sqrt(16), math.exp(0), math.log(8, 2), math.log(100, 10)",
    "return math.tointeger(3.0), math.tointeger(3.5), math.tointeger('8'), math.type(1), math.type(1.0), math.type('1')",
    "return math.ult(1, -1), math.sin(0), math.cos(0), math.tan(0), math.asin(0), math.acos(1), math.atan(1, 1)",
    "return pcall(math.floor, 'x')",
    "return pcall(math.fmod, 1, 0)",
    "return pcall(math.max)",
    "return pcall(math.random, 2, 1)",
    "return pcall(math.tointeger)",
    "math.randomseed(42) local a = math.random(1, 100) math.randomseed(42) return a == math.random(1, 100)",
    "local r = math.random() return r >= 0 and r < 1, math.type(math.random(10))",
    "return math.abs(math.mininteger), -math.mininteger == math.mininteger",
    "return 0/0 ~= 0/0, math.huge > math.maxinteger, 1e308 * 10 == math.huge",
    # utf8
    "return utf8.char(72, 228, 8364, 128512), #utf8.charpattern",
    "return utf8.len('häll€'), utf8.len('\\xff'), utf8.len('abc', 2), utf8.codepoint('häll€', 1, -1)",
    "local r = {} for p, c in utf8.codes('aä€') do r[#r + 1] = p .. ':' .. c end return r",
    "return utf8.offset('aä€x', 3), utf8.offset('aä€x', -1)",
    "return pcall(utf8.codepoint, '\\xff')",
    "return pcall(utf8.char, -1)",
    "return pcall(utf8.len, 'abc', 10)",
    "return pcall(function() for p, c in utf8.codes('a\\xffb') do end end)",
    "return utf8.len('\\u{7FFFFFFF}', 1, -1, true)",
    # os, the kept part (time and date with an explicit time are the host's C library, as in Lua)
    "return os.time({year = 2020, month = 1, day = 1, hour = 12}) - os.time({year = 2020, month = 1, day = 1, hour = 0})",
    "return os.date('!%Y-%m-%d %H:%M:%S', 0), os.date('!%j', 86400 * 40)",
    "local t = os.date('!*t', 3600) return t.year, t.month, t.day, t.hour, t.min, t.sec, t.isdst",
    "return os.difftime(10, 4), math.type(os.clock())",
    "return pcall(os.time, {})",
    "return pcall(os.time, {year = 2020})",
    "local ok, e = pcall(os.time, {year = 2020, month = 1}) return e",
    "os.time({year = 2020})",
    "return pcall(os.date, '%Ez', 0)",
    "return pcall(os.date, {}, 0)",
    "return pcall(os.date, '*t', 2^60)",
    "return math.type(os.time()), os.date('%Y') == os.date('*t').year .. ''",
    # called as methods, and with a date table whose __index is the script's (its errors pass as they are)
    "local r = os:date('%Y')",
    "local ok, e = pcall(function() local o = {d = os.date} local r = o:d() end) return e",
    "string.date = os.date local r = ('%Q'):date(0)",
    "string.date = os.date local ok, e = pcall(function() local r = ('%Y'):date('x') end) return e",
    "string.time = os.time local r = ('x'):time()",
    "local r = os.time(setmetatable({}, {__index = function(t, k) error('idx ' .. k) end}))",
    "local r = os.time(setmetatable({}, {__index = function(t, k) error('idx ' .. k, 0) end}))",
    "local ok, e = pcall(function() local r = os.time(setmetatable({}, {__index = function() error('x', 3) end})) end)"
    " return e",
    "return pcall(coroutine.wrap(function() local r = os.time(setmetatable({}, {__index = function()"
    " coroutine.yield() end})) end))",
    "local t = setmetatable({}, {__index = os.time}) local r = t.x",
    "local t = setmetatable({}, {__index = function(t) return os.time(t) end}) return pcall(os.time, t)",
    "local ok, e = pcall(function() local r = os.time({year = 2020}) end) return e",
]

REFUSED = [
    ("os.execute('ls')", "`os.execute` is not available in the sandbox", "processes"),
    ("return os.getenv('HOME')", "`os.getenv` is not available in the sandbox", "environment"),
    ("os.exit(1)", "`os.exit` is not available in the sandbox", "returning"),
    ("os.remove('x')", "`os.remove` is not available in the sandbox", "no file access"),
    ("os.rename('x', 'y')", "`os.rename` is not available in the sandbox", "no file access"),
    ("return os.tmpname()", "`os.tmpname` is not available in the sandbox", "no file access"),
    ("os.setlocale('C')", "`os.setlocale` is not available in the sandbox"),
]


@pytest.mark.parametrize("source", SAME)
def test_same_as_lua(source: str) -> None:
    same(source)


@pytest.mark.parametrize("case", REFUSED, ids=[c[1].split("`")[1] for c in REFUSED])
def test_refused_by_name(case: tuple[str, ...]) -> None:
    refused(*case)
