"""The table library (Lua 5.4 manual §6.6): results and error messages as in plain Lua 5.4.

The sandbox wraps insert/remove/concat/unpack/sort (they read the clock on big tables) and
move (bounded by the run's time): none of that may show, except the one deliberate refusal
of a move too big for the time the run has left.
"""

from __future__ import annotations

import pytest

from kosmo_runtime import Limits, Runtime

from . import SHOW, same

SAME = [
    'local t = {1, 2, 3} table.insert(t, 4) table.insert(t, 1, 0) return table.concat(t, ",")',
    'local t = {1, 2, 3} return show(table.remove(t), table.remove(t, 1), #t, table.remove({}), table.remove(t, #t + 1))',
    'return show(table.concat({1, 2, "x"}, "-"), table.concat({}, ","), table.concat({1, 2, 3}, ",", 2, 3))',
    'return show(table.unpack({1, 2, 3})), show(table.unpack({1, 2, 3}, 2)), show(table.unpack({1, 2}, 1, 4))',
    'local t = table.pack(1, nil, 3) return show(t.n, t[1], t[2], t[3])',
    'local t = {5, 2, 8, 1} table.sort(t) return table.concat(t, ",")',
    'local t = {5, 2, 8, 1} table.sort(t, function(a, b) return a > b end) return table.concat(t, ",")',
    'local t = {"b", "a", "C"} table.sort(t) return table.concat(t, ",")',
    'return table.concat(table.move({1, 2, 3}, 1, 3, 2), ",")',
    'return table.concat(table.move({1, 2, 3}, 2, 3, 1, {9, 9, 9}), ",")',
    'return show(#table.move({1, 2, 3}, 3, 1, 1, {}), table.move({}, 1, 0, 1) ~= nil)',
    # errors
    'return show(pcall(table.insert, {}, 1, 2, 3))',
    'return show(pcall(table.insert, {}, 5, 2))',
    'return show(pcall(table.insert, nil, 1))',
    'return show(pcall(table.insert))',
    'return show(pcall(table.remove, {}, 5))',
    'return show(pcall(table.concat, {1, {}, 3}))',
    'return show(pcall(table.concat, {}, {}))',
    'return show(pcall(table.unpack, {}, 1, 1e8))',
    'return show(pcall(table.unpack))',
    'return show(pcall(table.sort, {3, 1, "x"}))',
    'return show(pcall(table.sort, {1, 2, 3}, 1))',
    'return show(pcall(table.sort, {3, 2, 1}, function(a, b) error("cmp") end))',
    'return show(pcall(table.sort, {3, 2, 1, 5, 4, 7, 6}, function(a, b) return true end))',
    'return show(pcall(table.move, {}, 1, math.maxinteger, 2))',
    'return show(pcall(table.move, {}, -1, math.maxinteger, 2))',
    'return show(pcall(table.move, {}, math.mininteger, math.maxinteger, 1, {}))',
    'return show(pcall(table.move, {}, -2^62, 2^62, 1, {}))',
    'return show(pcall(table.move, {}, 1, 2))',
    'return show(pcall(table.move, {}, 1, 2, 3, 4))',
    'return show(pcall(table.move, {}, 1.5, 2, 3))',
    'return show(pcall(table.move, {}, "1", "2", "3"))',
    'return show(pcall(function() local t = table.concat({{}}) return t end))',
    'return show(pcall(function() local t = table.insert({}, 1, 2, 3) return t end))',
    'return show(pcall(function() local t = table.move({}, 1, 2) return t end))',
    # metamethods are honoured
    'local log = {} local t = setmetatable({}, {__index = function(_, k) return k * 10 end, '
    '__newindex = function(_, k, v) log[#log + 1] = k .. "=" .. v end}) '
    'table.move(t, 1, 3, 1, t) return table.concat(log, ",")',
    'local t = setmetatable({}, {__len = function() return 2 end, __index = function(_, k) return "v" .. k end}) '
    'return table.concat(t, ","), show(table.unpack(t))',
]


@pytest.fixture(scope="module")
def runtime():
    with Runtime() as rt:
        yield rt


@pytest.mark.parametrize("snippet", SAME)
def test_same_as_plain_lua(snippet: str) -> None:
    same(SHOW + snippet)


def test_a_move_longer_than_the_run_has_left_is_refused_before_it_starts(runtime: Runtime) -> None:
    # Lua would loop 1e12 times in C, out of the clock's reach
    result = runtime.run("return table.move({}, 1, 1e12, 1, {})", limits=Limits(wall_time=5))
    assert not result.ok and result.error.code == "invalid_argument"
    assert "moving 1000000000000 elements would take longer than the run has left" in result.error.message
    assert result.error.hint


def test_a_big_move_that_fits_the_time_runs(runtime: Runtime) -> None:
    result = runtime.run("local t = table.move({}, 1, 3e5, 1, {}) local s = {} for i = 1, 1e5 do s[i] = i end "
                         "return #table.move(s, 1, 1e5, 1, {})")
    assert result.ok and result.result == 100000
