"""Run limits: every limit stops a script that exceeds it, cleanly and uncatchably.

Each limit (instructions, memory, wall_time, output, result, depth, calls) has a
script that hits it; the error is a ``LimitExceeded`` naming the limit and its
configured value, with a hint naming the flag that raises it; ``pcall``, ``xpcall``
and coroutines cannot swallow it; and the next run in the same process works.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kosmo_runtime import AccountsConfig, LimitExceeded, Limits, RunResult, Runtime
from kosmo_runtime._limits import CEILINGS
from kosmo_runtime._sandbox import Sandbox

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "integrations"
MiB = 1024 * 1024
NAMES = ["instructions", "memory", "wall_time", "output", "result", "depth", "calls"]

# How each limit's message refers to it.
WORDS = {"instructions": "instruction", "memory": "memory", "wall_time": "wall-clock", "output": "output",
         "result": "result", "depth": "nesting", "calls": "call"}


class _Pooled(Runtime):
    """A Runtime whose every run starts on a sandbox its pool built ahead (with the Runtime's limits):
    the pooled sandbox takes the run's limits."""

    def run(self, *args: Any, **kwargs: Any) -> RunResult:
        assert self._sandboxes.wait_full(timeout=30)
        return super().run(*args, **kwargs)


@pytest.fixture(scope="module", params=["fresh", "pooled"])
def rt(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    """Every test both ways: each run on a state built for it, and each on a pooled one."""
    kind = Runtime if request.param == "fresh" else _Pooled
    runtime = kind(integration_paths=[FIXTURES], store=":memory:", accounts=AccountsConfig.empty(),
                   pool=0 if request.param == "fresh" else 2)
    yield runtime
    runtime.close()


def shown(value: float) -> str:
    """A limit value the way messages print it."""
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def assert_limit(result: RunResult, name: str, limits: Limits) -> LimitExceeded:
    """The run ended with limit ``name``, described completely."""
    assert result.ok is False, f"expected the {name} limit, got {result.result!r}"
    error = result.error
    assert isinstance(error, LimitExceeded), error and error.to_dict()
    assert error.type == "LimitExceeded" and error.code == "limit_exceeded"
    assert error.limit == name
    assert error.value == getattr(limits, name)
    assert WORDS[name] in error.message, error.message
    assert shown(error.value) in error.message, error.message
    assert error.hint and Limits.flag(name) in error.hint, error.hint
    data = error.to_dict()
    assert data["limit"] == name and data["value"] == error.value and data["type"] == "LimitExceeded"
    assert result.result is None
    assert result.duration < 5
    return error


def assert_next_run_works(rt: Runtime) -> None:
    result = rt.run("local t = {} for i = 1, 1000 do t[i] = i end return #t, type(rawget(_G, 'python')), ('x'):rep(3)")
    assert result.ok, result.error and result.error.to_dict()
    assert result.result == [1000, "nil", "xxx"]


# -- each limit ---------------------------------------------------------------------------

BOMBS = [
    pytest.param("instructions", "while true do end", Limits(instructions=1_000_000), id="instructions-tight-loop"),
    pytest.param("instructions", "local n = 0 repeat n = n + 1 until false", Limits(instructions=1_000_000),
                 id="instructions-counting-loop"),
    pytest.param("instructions", "local function f(n) if n > 0 then return f(n - 1) end return f(1e9) end return f(1)",
                 Limits(instructions=1_000_000), id="instructions-tail-calls"),
    pytest.param("memory", 'local s = string.rep("x", 1e9) return #s', Limits(memory=8 * MiB), id="memory-string-rep"),
    pytest.param("memory", 'local s = "x" while true do s = s .. s end', Limits(memory=8 * MiB), id="memory-doubling"),
    pytest.param("memory", "local t = {} for i = 1, 1e9 do t[i] = i end", Limits(memory=8 * MiB), id="memory-table-growth"),
    pytest.param("memory", "local t = {} for i = 1, 1e9 do t[#t + 1] = {i, tostring(i)} end", Limits(memory=8 * MiB),
                 id="memory-many-tables"),
    pytest.param("memory", 'local t = {} for i = 1, 1e7 do t[i] = "item" .. i end return table.concat(t)',
                 Limits(memory=8 * MiB), id="memory-concat"),
    pytest.param("wall_time", "while true do end", Limits(wall_time=0.2, instructions=CEILINGS["instructions"]),
                 id="wall-time-loop"),
    pytest.param("wall_time", "while true do local t = {} for i = 1, 100 do t[i] = i end end",
                 Limits(wall_time=0.2, instructions=CEILINGS["instructions"]), id="wall-time-allocating-loop"),
    pytest.param("output", 'while true do print(string.rep("y", 100)) end', Limits(output=1000), id="output-print-loop"),
    pytest.param("output", 'print(string.rep("z", 5000))', Limits(output=1000), id="output-one-big-print"),
    pytest.param("result", 'return string.rep("r", 2000)', Limits(result=1000), id="result-string"),
    pytest.param("result", "local t = {} for i = 1, 1000 do t[i] = i end return t", Limits(result=1000),
                 id="result-list"),
    pytest.param("result", 'return string.rep("a", 600), string.rep("b", 600)', Limits(result=1000),
                 id="result-several-values"),
    pytest.param("depth", "local t = {} local c = t for i = 1, 100 do c.x = {} c = c.x end return t", Limits(depth=10),
                 id="depth-returned-value"),
    pytest.param("depth", "local t = {} local c = t for i = 1, 100 do c[1] = {} c = c[1] end return t", Limits(depth=10),
                 id="depth-returned-list"),
    pytest.param("depth", "local t = {} local c = t for i = 1, 100 do c.x = {} c = c.x end return json.encode(t)",
                 Limits(depth=10), id="depth-json-encode"),
    pytest.param("depth", 'return json.decode(string.rep("[", 50) .. string.rep("]", 50))', Limits(depth=10),
                 id="depth-json-decode"),
    pytest.param("calls", "for i = 1, 10 do pcall(app.integrations.test_notes.list_notes, {}) end return 'survived'",
                 Limits(calls=3), id="calls-loop"),
]


@pytest.mark.parametrize("name,source,limits", BOMBS)
def test_limit_is_hit(rt: Runtime, name: str, source: str, limits: Limits) -> None:
    result = rt.run(source, limits=limits)
    assert_limit(result, name, limits)
    assert_next_run_works(rt)


def test_print_shortens_deep_tables_instead_of_failing(rt: Runtime) -> None:
    source = "local t = {} local c = t for i = 1, 100 do c.x = {} c = c.x end print(t) return 'printed'"
    result = rt.run(source, limits=Limits(depth=10))
    assert result.ok and result.result == "printed"
    assert result.output == "{x = " * 10 + "{...}" + "}" * 10 + "\n"


def test_output_is_truncated_to_the_limit(rt: Runtime) -> None:
    limits = Limits(output=1000)
    result = rt.run('print("start") while true do print(string.rep("y", 99)) end', limits=limits)
    assert_limit(result, "output", limits)
    assert result.output.startswith("start\n" + "y" * 99 + "\n")
    assert len(result.output.encode()) == 1000
    assert set(result.output.replace("start\n", "")) <= {"y", "\n"}
    assert "output is truncated" in result.error.message


def test_output_truncation_keeps_utf8_whole(rt: Runtime) -> None:
    limits = Limits(output=1001)
    result = rt.run('while true do print(string.rep("é", 100)) end', limits=limits)
    assert_limit(result, "output", limits)
    assert len(result.output.encode()) <= 1001
    result.output.encode("utf-8")  # no half characters
    assert "\ufffd" not in result.output


def test_calls_limit_counts_failed_calls_too(rt: Runtime) -> None:
    limits = Limits(calls=3)
    result = rt.run("""
        for i = 1, 3 do pcall(app.integrations.test_notes.list_notes, {}) end
        print("three calls done")
        app.integrations.test_notes.list_notes({})
        return "survived"
    """, limits=limits)
    assert_limit(result, "calls", limits)
    assert result.output == "three calls done\n"
    assert [c.ok for c in result.calls[:3]] == [False, False, False]


def test_memory_limit_is_per_run_and_released(rt: Runtime) -> None:
    limits = Limits(memory=8 * MiB)
    for _ in range(3):
        assert_limit(rt.run('local s = string.rep("x", 1e9)', limits=limits), "memory", limits)
    # (string.rep holds its buffer and the result at once: 3 MiB peaks at ~6 MiB of the 8; 4 MiB at 8 MiB and
    # some bytes, which passed or not with the few KiB the run's env took)
    ok = rt.run('local s = string.rep("x", 3 * 1024 * 1024) return #s', limits=limits)
    assert ok.ok and ok.result == 3 * MiB


def test_wall_time_stops_a_loop_of_host_calls(rt: Runtime) -> None:
    limits = Limits(wall_time=0.2, instructions=CEILINGS["instructions"])
    result = rt.run('while true do json.encode({1, 2, 3}) json.decode("[1]") end', limits=limits)
    assert_limit(result, "wall_time", limits)


# -- deep recursion -------------------------------------------------------------------------


def test_deep_lua_recursion_is_a_clean_error(rt: Runtime) -> None:
    result = rt.run("local function f(n) return 1 + f(n + 1) end return f(1)")
    assert result.ok is False
    if result.error.type == "LimitExceeded":
        assert result.error.limit in ("memory", "instructions")
    else:
        assert result.error.type == "LuaRuntimeError"
        assert "stack overflow" in result.error.message
        assert result.error.line == 1
        assert result.error.traceback and len(result.error.traceback) < 10_000
    assert_next_run_works(rt)


def test_recursion_that_reaches_the_memory_limit_says_so(rt: Runtime) -> None:
    """Small frames reach the memory limit before Lua's stack overflow: the hint names the recursion."""
    limits = Limits(memory=16 * MiB)
    error = assert_limit(rt.run("local function r() return r() + 1 end return r()", limits=limits), "memory", limits)
    assert "recursion without a base case" in error.hint and "100,000 calls deep" in error.hint
    # memory used up by data, not by the stack: the ordinary hint
    error = assert_limit(rt.run("local t = {} for i = 1, 1e8 do t[i] = i end", limits=limits), "memory", limits)
    assert "recursion" not in error.hint and error.hint.startswith("do less per run")
    assert_next_run_works(rt)


def test_a_deep_stack_is_noted_for_its_own_run_only() -> None:
    """A run deep with memory high that ends well is noted; the next chunk on the same state starts unnoted."""
    sandbox = Sandbox(Limits(memory=48 * MiB))
    try:
        deep = sandbox.run("""
            local big = string.rep("x", 20 * 1024 * 1024)
            local function r(n) if n == 0 then return #big end return r(n - 1) + 0 end
            return r(120000)""", "deep.lua", keep_env=True)
        assert deep.ok and deep.result == 20 * MiB and sandbox.kit.was_deep() is True
        assert sandbox.run("return 1", "next.lua", keep_env=True).ok and sandbox.kit.was_deep() is False
    finally:
        sandbox.close()


def test_deep_recursion_through_c_boundaries_is_a_clean_error(rt: Runtime) -> None:
    for source in [
        "local co; co = function() return coroutine.wrap(co)() end return co()",
        "local function f() return pcall(f) end return select('#', f())",
        "local function f(s) return (s:gsub('.', f)) end return f('ab')",
        "local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) return t[k] end return t.x",
        "local t = setmetatable({}, {}) getmetatable(t).__tostring = function(t) return tostring(t) end return tostring(t)",
    ]:
        result = rt.run(source)
        if result.ok:
            continue  # e.g. pcall returning false at the bottom is fine
        assert result.error.type in ("LuaRuntimeError", "LimitExceeded"), result.error.to_dict()
        assert "overflow" in result.error.message or result.error.type == "LimitExceeded", result.error.message
    assert_next_run_works(rt)


# -- pcall, xpcall and coroutines cannot swallow a limit -----------------------------------

CATCHABLE_BOMBS = {
    "instructions": ("while true do end", Limits(instructions=1_000_000)),
    "memory": ('local s = string.rep("x", 1e9)', Limits(memory=8 * MiB)),
    "wall_time": ("while true do end", Limits(wall_time=0.2, instructions=CEILINGS["instructions"])),
    "output": ('while true do print(string.rep("y", 100)) end', Limits(output=1000)),
    "depth": ("local t = {} local c = t for i = 1, 100 do c.x = {} c = c.x end json.encode(t)", Limits(depth=10)),
    "calls": ("while true do pcall(app.integrations.test_notes.whoami, {}) end", Limits(calls=2)),
}

WRAPPERS = {
    "pcall": "for i = 1, 3 do local ok, err = pcall(function() BOMB end) end",
    "pcall-retry-loop": "local n = 0 while n < 1000 do n = n + 1 pcall(function() BOMB end) end",
    "nested-pcall": "pcall(pcall, pcall, function() BOMB end)",
    "xpcall": "xpcall(function() BOMB end, function(e) return 'handled' end)",
    "xpcall-handler": "xpcall(function() error('first') end, function(e) BOMB end)",
    "coroutine-resume": "local co = coroutine.create(function() BOMB end) for i = 1, 3 do pcall(coroutine.resume, co) end",
    "coroutine-wrap": "local f = coroutine.wrap(function() BOMB end) pcall(f) pcall(f)",
    "close-handler": "pcall(function() local x <close> = setmetatable({}, {__close = function() return end}) BOMB end)",
    "load-reader": "for i = 1, 3 do local f, err = load(function() BOMB end) end",  # load catches its reader's errors
    "error-object-check": """
        local ok, err = pcall(function() BOMB end)
        if type(err) == "table" then err.limit = nil err.message = "fine" end
    """,
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("name", list(CATCHABLE_BOMBS))
def test_pcall_cannot_swallow_a_limit(rt: Runtime, name: str, wrapper: str) -> None:
    bomb, limits = CATCHABLE_BOMBS[name]
    source = WRAPPERS[wrapper].replace("BOMB", bomb) + '\nprint("survived") return "survived"'
    result = rt.run(source, limits=limits)
    assert_limit(result, name, limits)
    assert "survived" not in result.output
    assert_next_run_works(rt)


def test_limit_inside_a_coroutine_is_not_swallowed_by_resume(rt: Runtime) -> None:
    limits = Limits(instructions=1_000_000)
    result = rt.run("""
        local co = coroutine.create(function() while true do end end)
        local ok, err = coroutine.resume(co)
        return "survived", ok, tostring(err), coroutine.status(co)
    """, limits=limits)
    assert_limit(result, "instructions", limits)


def test_limit_inside_nested_coroutines(rt: Runtime) -> None:
    limits = Limits(wall_time=0.2, instructions=CEILINGS["instructions"])
    result = rt.run("""
        local function nest(n)
          if n == 0 then while true do end end
          return coroutine.wrap(function() return pcall(nest, n - 1) end)()
        end
        for i = 1, 5 do pcall(nest, 10) end
        return "survived"
    """, limits=limits)
    assert_limit(result, "wall_time", limits)


def test_result_limit_cannot_be_avoided_by_returning_many_values(rt: Runtime) -> None:
    limits = Limits(result=1000)
    result = rt.run('local t = {} for i = 1, 200 do t[i] = "abcdef" end return table.unpack(t)', limits=limits)
    assert_limit(result, "result", limits)


def test_returned_value_at_the_depth_limit_is_fine(rt: Runtime) -> None:
    result = rt.run("local t = {} local c = t for i = 1, 8 do c.x = {} c = c.x end return t", limits=Limits(depth=10))
    assert result.ok, result.error and result.error.to_dict()


def test_limits_are_per_run(rt: Runtime) -> None:
    tight = Limits(instructions=1_000_000)
    assert_limit(rt.run("while true do end", limits=tight), "instructions", tight)
    result = rt.run("local n = 0 for i = 1, 2e6 do n = n + 1 end return n")  # over the tight budget, default limits
    assert result.ok and result.result == 2_000_000


# -- Limits itself ------------------------------------------------------------------------------


def test_default_limits_are_sane() -> None:
    limits = Limits()
    for name in NAMES:
        value = getattr(limits, name)
        assert 0 < value <= CEILINGS[name], name
    assert 10_000_000 <= limits.instructions <= 2_000_000_000
    assert 16 * MiB <= limits.memory <= 512 * MiB
    assert 5 <= limits.wall_time <= 300
    assert 16 * 1024 <= limits.output <= 16 * MiB
    assert 64 * 1024 <= limits.result <= 64 * MiB
    assert 16 <= limits.depth <= 256
    assert 10 <= limits.calls <= 10_000
    assert Runtime(store=":memory:", accounts=AccountsConfig.empty()).limits == limits


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [0, -1, -0.5, 0.0])
def test_non_positive_limits_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"limit {name} must be a positive number, got {value!r}"):
        Limits(**{name: value})


@pytest.mark.parametrize("name", NAMES)
def test_limits_above_the_ceiling_are_refused(name: str) -> None:
    ceiling = CEILINGS[name]
    Limits(**{name: ceiling})  # the ceiling itself is allowed
    too_much = ceiling * 2 if isinstance(ceiling, float) else int(ceiling) + 1
    with pytest.raises(ValueError, match=rf"limit {name}=.* is above the hard ceiling .*choose a value up to"):
        Limits(**{name: too_much})
    with pytest.raises(ValueError, match=rf"limit {name}"):
        Limits(**{name: math.inf})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", ["5", None, True, [1]])
def test_non_numeric_limits_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"limit {name} must be a positive number"):
        Limits(**{name: value})


@pytest.mark.parametrize("name", NAMES)
def test_nan_limits_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=rf"limit {name}"):
        Limits(**{name: math.nan})


def test_merged_keeps_validation() -> None:
    limits = Limits().merged(instructions=5_000_000, memory=None)
    assert limits.instructions == 5_000_000 and limits.memory == Limits().memory
    with pytest.raises(ValueError, match="limit depth"):
        Limits().merged(depth=0)


def test_limits_are_frozen() -> None:
    limits = Limits()
    with pytest.raises(AttributeError):
        limits.instructions = 1  # type: ignore[misc]


def test_small_wall_time_does_not_hang_a_script_that_finishes(rt: Runtime) -> None:
    started = time.monotonic()
    result = rt.run("return 1", limits=Limits(wall_time=0.2))
    assert result.ok and result.result == 1
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("source", [
    'error(("x"):rep(10 * 2^20), 0)',
    'local ok, e = pcall(json.decode, nil) e.message = ("y"):rep(12 * 2^20) error(e)',
    'error(setmetatable({}, {__tostring = function() return ("z"):rep(2^20) end}))',
    'local function f(n) if n == 0 then error("deep") end return f(n - 1) + 1 end f(5000)',
])
def test_errors_leaving_the_run_are_bounded(rt: Runtime, source: str) -> None:
    from kosmo_runtime._limits import ERROR_TEXT_BYTES

    result = rt.run(source)
    assert result.ok is False
    data = result.error.to_dict()
    assert all(len(v) <= ERROR_TEXT_BYTES + 64 for v in data.values() if isinstance(v, str)), \
        {k: len(v) for k, v in data.items() if isinstance(v, str)}
    assert len(json.dumps(data)) < 4 * ERROR_TEXT_BYTES
