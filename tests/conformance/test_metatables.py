"""Lua 5.4 manual §2.4 (metatables and metamethods) and the globals table `_G`."""

from __future__ import annotations

import pytest

from tests.conformance import refused, same

SAME = [
    # the globals table has no metatable until the script sets one
    "return getmetatable(_G), getmetatable(_ENV)",
    "setmetatable(_G, {__index = function(_, k) error('undefined ' .. k, 2) end})"
    " return pcall(function() return undefinedvar end)",
    "setmetatable(_G, {__newindex = function(_, k) error('assignment to undeclared ' .. k, 2) end})"
    " return pcall(function() newglobal = 1 end)",
    "local mt = {} setmetatable(_G, mt) return getmetatable(_G) == mt",
    "setmetatable(_G, {__index = function(_, k) return k .. '!' end}) return some_name, rawget(_G, 'some_name')",
    "setmetatable(_G, {__metatable = 'sealed'}) return getmetatable(_G), pcall(setmetatable, _G, {})",
    "setmetatable(_G, {}) setmetatable(_G, nil) return getmetatable(_G)",
    "local declared = {} setmetatable(_G, {__newindex = function(t, k, v) declared[k] = true rawset(t, k, v) end})"
    " x = 1 y = 2 return declared.x, declared.y, x + y",
    # setmetatable / getmetatable
    "return pcall(setmetatable, 1)",
    "return pcall(setmetatable, {})",
    "return pcall(setmetatable, {}, 1)",
    "setmetatable({})",
    "return pcall(setmetatable)",
    "return pcall(getmetatable)",
    "local t = setmetatable({}, {__metatable = 'locked'}) return getmetatable(t), pcall(setmetatable, t, {})",
    "local t = setmetatable({}, {__metatable = false}) return getmetatable(t)",
    "local mt = {} local t = setmetatable({}, mt) return getmetatable(t) == mt, setmetatable(t, nil) == t, getmetatable(t)",
    "return getmetatable(1), getmetatable(print), getmetatable(nil)",
    # metamethods
    "local V = {} V.__index = V function V.new(x) return setmetatable({x = x}, V) end function V:get() return self.x end"
    " V.__add = function(a, b) return V.new(a.x + b.x) end V.__eq = function(a, b) return a.x == b.x end"
    " V.__lt = function(a, b) return a.x < b.x end V.__le = function(a, b) return a.x <= b.x end"
    " V.__tostring = function(v) return 'V(' .. v.x .. ')' end V.__len = function(v) return v.x end"
    " V.__call = function(v, y) return v.x * y end V.__concat = function(a, b) return 'cat' end"
    " V.__unm = function(v) return V.new(-v.x) end"
    " local a, b = V.new(1), V.new(2) return (a + b):get(), a == V.new(1), a < b, a <= b, tostring(a), #b, a(10), a .. b, (-a).x",
    "local t = setmetatable({}, {__index = {inherited = 'yes'}}) return t.inherited, rawget(t, 'inherited')",
    "local log = {} local t = setmetatable({}, {__newindex = function(t, k, v) log[#log + 1] = k rawset(t, k, v) end})"
    " t.a = 1 t.a = 2 return log, t.a",
    "local t = setmetatable({}, {__mode = 'k'}) return getmetatable(t).__mode",
    "local t = setmetatable({}, {__close = function() end}) do local x <close> = t end return 'ok'",
    "local a = setmetatable({}, {__idiv = function() return 'idiv' end, __band = function() return 'band' end,"
    " __shl = function() return 'shl' end, __bnot = function() return 'bnot' end, __mod = function() return 'mod' end,"
    " __pow = function() return 'pow' end, __div = function() return 'div' end, __mul = function() return 'mul' end,"
    " __sub = function() return 'sub' end, __bor = function() return 'bor' end, __bxor = function() return 'bxor' end,"
    " __shr = function() return 'shr' end}) return a // 1, a & 1, a << 1, ~a, a % 1, a ^ 1, a / 1, a * 1, a - 1, a | 1, a ~ 1, a >> 1",
    "local ok, e = pcall(function() return setmetatable({}, {}) + 1 end) return e",
    "local ok, e = pcall(function() return setmetatable({}, {}) < setmetatable({}, {}) end) return e",
    "local t = setmetatable({}, {__index = function(t, k) return t[k + 1] end}) return pcall(function() return t[1] end)",
    "local t = setmetatable({}, {__tostring = function() return 42 end}) return pcall(tostring, t)",
    "local t = setmetatable({}, {__name = 'Point'}) return (tostring(t):gsub('0x%x+', 'ADDR'))",
    "local t = setmetatable({}, {__name = 'Point'}) return pcall(math.floor, t)",
    "return pcall(setmetatable, setmetatable({}, {__name = 'Point'}), 5)",
]

REFUSED = [
    ("setmetatable({}, {__gc = function() end})", "__gc finalizers are not allowed in the sandbox"),
    ("return pcall(setmetatable, {}, {__gc = false})", "__gc finalizers are not allowed in the sandbox"),
]


@pytest.mark.parametrize("source", SAME)
def test_same_as_lua(source: str) -> None:
    same(source)


@pytest.mark.parametrize("case", REFUSED, ids=["gc", "gc-false"])
def test_refused(case: tuple[str, ...]) -> None:
    refused(*case)
