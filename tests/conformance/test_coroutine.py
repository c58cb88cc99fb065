"""Lua 5.4 manual §2.6 and §6.2 (coroutines): the main chunk is not a coroutine, wrap is Lua's own."""

from __future__ import annotations

import pytest

from tests.conformance import same

SAME = [
    # the main chunk, as in Lua
    "print(coroutine.isyieldable(), select(2, coroutine.running()))",
    "return coroutine.status(coroutine.running())",
    "return pcall(coroutine.yield, 1)",
    "coroutine.yield(1)",
    "return coroutine.resume(coroutine.running())",
    "return pcall(coroutine.close, coroutine.running())",
    "coroutine.close(coroutine.running())",
    # create / resume / yield / status
    "local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end)"
    " return coroutine.resume(co, 1), coroutine.resume(co, 5), coroutine.status(co), coroutine.resume(co)",
    "local co = coroutine.create(function(...) return select('#', ...), coroutine.yield(...) end)"
    " return {coroutine.resume(co, 1, nil, 3)}, {coroutine.resume(co, 'x', 'y')}",
    "local co = coroutine.create(function() return coroutine.isyieldable(), select(2, coroutine.running()) end)"
    " return coroutine.resume(co)",
    "local co co = coroutine.create(function() return coroutine.status(co) end) return coroutine.resume(co)",
    "local outer outer = coroutine.create(function() local inner = coroutine.create(function()"
    " return coroutine.status(outer) end) return coroutine.resume(inner) end) return coroutine.resume(outer)",
    "local co = coroutine.create(function() error('in co') end) return coroutine.resume(co)",
    "local co = coroutine.create(function() error({1}) end) local ok, e = coroutine.resume(co) return ok, type(e), e[1]",
    "local co = coroutine.create(function() error('in co') end) coroutine.resume(co) return coroutine.status(co), coroutine.resume(co)",
    "local co = coroutine.create(function() local x = nil; return x.field end) return coroutine.resume(co)",
    "return pcall(coroutine.resume, 1)",
    "return pcall(coroutine.create, 1)",
    "coroutine.create(1)",
    "return pcall(coroutine.status, {})",
    "return pcall(coroutine.close, 1)",
    "return coroutine.resume(coroutine.create(function() return pcall(coroutine.yield, 'through pcall') end))",
    "local co = coroutine.create(function() local ok, v = pcall(coroutine.yield, 1) return ok, v end)"
    " coroutine.resume(co) return coroutine.resume(co, 'back')",
    "local co = coroutine.create(function() table.sort({3, 2, 1}, function(a, b) coroutine.yield() return a < b end) end)"
    " return coroutine.resume(co)",
    "local co = coroutine.create(function() return ('x'):gsub('x', function() coroutine.yield() end) end) return coroutine.resume(co)",
    "local co = coroutine.create(function() local t = setmetatable({}, {__index = function(_, k) return coroutine.yield(k) end})"
    " return t.key end) return {coroutine.resume(co)}, {coroutine.resume(co, 'value')}",
    # wrap, its errors and their position prefix (Lua adds the caller's position)
    "local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end) return gen(), gen(), gen()",
    "local f = coroutine.wrap(function() error('x') end) f()",
    "local f = coroutine.wrap(function() error('x') end) return pcall(f)",
    "local f = coroutine.wrap(function() error('x') end) local function g() f() end return pcall(g)",
    "local f = coroutine.wrap(function() error({code = 7}) end) local ok, e = pcall(f) return ok, e.code",
    "local f = coroutine.wrap(function() return 1 end) f() return pcall(f)",
    "local f = coroutine.wrap(function() return 1 end) f() f()",
    "local A; A = coroutine.wrap(function() return pcall(A) end); print(A())",
    "local A; A = coroutine.wrap(function() return A() end); return pcall(A)",
    "return pcall(coroutine.wrap, 1)",
    "return pcall(coroutine.wrap(function(...) return ... end), 1, 2)",
    # close and to-be-closed variables
    "local co = coroutine.create(function() local x <close> = setmetatable({}, {__close = function() print('closed') end})"
    " coroutine.yield(1) end) coroutine.resume(co) return coroutine.close(co), coroutine.status(co)",
    "local co = coroutine.create(function() local x <close> = setmetatable({}, {__close = function() error('in close', 0) end})"
    " coroutine.yield(1) end) coroutine.resume(co) return coroutine.close(co)",
    "local co = coroutine.create(function() error('dead') end) coroutine.resume(co) return coroutine.close(co)",
    "return coroutine.close(coroutine.create(print))",
    "local co = coroutine.wrap(function() local x <close> = setmetatable({}, {__close = function() print('closed') end})"
    " error('fail', 0) end) print(pcall(co))",
    # deep recursion through coroutines ends cleanly, as in Lua
    "local function f(n) if n == 0 then return 0 end return coroutine.wrap(f)(n - 1) + 1 end return pcall(f, 50)",
]


@pytest.mark.parametrize("source", SAME)
def test_same_as_lua(source: str) -> None:
    same(source)
