"""The standard library layer (``_stdlib.lua``) is loaded into a state on a run's first read of a
global (or a string method call), and ahead in a pooled state: a script cannot tell when. The same
holds for the bootstrap's kit (``_kit.lua``: raising structured errors, app.parallel's coroutines,
the library layer's loader), loaded the first time one of its parts is used.

Each case runs in plain Lua 5.4 and in the sandbox (``tests.conformance.same``: a fresh state per
run, so the layer loads while the script runs) and on a pooled state (the layer loaded and the
globals made before the run); the layer's own instructions and memory are not the run's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kosmo_runtime import AccountsConfig, Limits, Runtime
from kosmo_runtime._sandbox import Sandbox
from tests.conformance import same

#: chunks whose first statements touch _G before any global was read
CASES = [
    "print = nil return print",
    "print = 5 return print, type(pcall)",
    "_G = nil return _G",
    "string = nil return ('a'):rep(3), string",
    "math = 1 return math, type(string.rep)",
    "x = 1 return rawget(_G, 'print') == print, rawget(_G, 'x'), rawget(_G, 'nope')",
    "return rawget(_G, 'string') == string, rawget(_G, 'pairs') == pairs",
    "return ('x'):upper(), rawget(_G, 'string') ~= nil",
    "for i = 1, 5 do _ENV['g' .. i] = i end return g3, rawget(_ENV, 'g5'), type(next)",
    "local names = {} for k in pairs(_G) do names[k] = true end "
    "return names.print, names.string, names._G, names.xpcall, names.require",
    "return next(_G) ~= nil, type(_G._G), _G == _ENV",
    "local ok, e = pcall(function() _G[nil] = 1 end) return ok, e",
    "undefined_global = nil return undefined_global, type(undefined_global), type(print)",
    "setmetatable(_G, {__index = function(_, k) return k .. '!' end}) return some_name, type(print)",
    "local mt = getmetatable(_G) return mt, type(getmetatable)",
]


@pytest.mark.parametrize("source", CASES)
def test_a_fresh_state_behaves_as_lua_whatever_the_first_access(source: str) -> None:
    same(source)


@pytest.fixture(scope="module")
def pooled() -> Iterator[Runtime]:
    runtime = Runtime(accounts=AccountsConfig.empty(), store=":memory:", pool=2)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def fresh() -> Iterator[Runtime]:
    runtime = Runtime(accounts=AccountsConfig.empty(), store=":memory:", pool=0)
    yield runtime
    runtime.close()


#: chunks whose first use of the kit is an error it raises or app.parallel, before the library layer
KIT_CASES = [
    "local x = 1\nreturn app.integrations.nope",
    "local x = 1\napp.integrations.whereby:list_rooms()",
    "local f = app.integrations.whereby.list_rooms\nf(5)",
    "return app.parallel({function() return 1 end, function() return 2 end})",
    "local x = 1\nlocal r = app.parallel(5)",
    "local x = 1\nlocal r = lua_read_doc(5)",
]


@pytest.mark.parametrize("source", CASES + KIT_CASES + ["return app ~= nil, rawget(_G, 'app')", "return json.encode({1})"])
def test_a_pooled_state_gives_what_a_fresh_one_gives(pooled: Runtime, fresh: Runtime, source: str) -> None:
    assert pooled._sandboxes.wait_full(timeout=30)  # the next run takes a state built ahead
    ahead, now = pooled.run(source), fresh.run(source)
    assert (ahead.ok, ahead.result, ahead.output) == (now.ok, now.result, now.output)
    assert (ahead.error and ahead.error.message) == (now.error and now.error.message)
    assert (ahead.error and ahead.error.to_dict()) == (now.error and now.error.to_dict())


def test_a_run_that_reads_no_global_does_not_load_the_layer() -> None:
    used = {}
    for source in ("return 1", "return type(print)", "return ('x'):upper()"):
        sandbox = Sandbox(Limits())
        assert sandbox.run(source, "script.lua").ok
        used[source] = sandbox.lua.get_memory_used()
        sandbox.close()
    assert used["return type(print)"] - used["return 1"] > 50_000
    assert used["return ('x'):upper()"] - used["return 1"] > 50_000


def test_the_layer_is_not_counted_against_the_run(fresh: Runtime) -> None:
    # the layer keeps ~90 KB, more than this whole memory limit: a run reading a global still fits
    limits = Limits(memory=64 * 1024, instructions=1000)
    fits = fresh.run("return type(print), ('x'):rep(3), #string.rep('y', 1000)", limits=limits)
    assert fits.ok and fits.result == ["function", "xxx", 1000], fits.error and fits.error.message
    over = fresh.run("local s = ('x'):rep(100 * 1024) return #s", limits=limits)
    assert not over.ok and over.error is not None and over.error.limit == "memory"
    counted = fresh.run("local n = 0 for i = 1, 10000 do n = n + i end return n", limits=limits)
    assert not counted.ok and counted.error is not None and counted.error.limit == "instructions"


@pytest.mark.parametrize("source", KIT_CASES)
def test_an_error_raised_as_the_kit_loads_reads_as_one_raised_after(fresh: Runtime, source: str) -> None:
    first = fresh.run(source)
    after = fresh.run("local _ = (pcall)\n" + source.replace("\n", " ", 1))  # the kit and library layer loaded first
    assert (first.ok, first.result) == (after.ok, after.result)
    if first.error is not None:
        assert after.error is not None
        assert (first.error.message, first.error.line) == (after.error.message, after.error.line)
        assert first.error.traceback == after.error.traceback
        assert first.error.line == 2


def test_a_run_that_raises_nothing_does_not_load_the_kit() -> None:
    sandbox = Sandbox(Limits())
    before = sandbox.lua.get_memory_used()
    assert sandbox.run("local t = {} for i = 1, 10 do t[i] = i end return #t", "script.lua").ok
    assert sandbox.lua.get_memory_used() - before < 4_000
    _ = sandbox.kit.arm  # the kit loads on first use of one of its parts
    assert sandbox.lua.get_memory_used() - before > 4_000
    sandbox.close()


def test_the_kit_is_not_counted_against_the_run() -> None:
    sandbox = Sandbox(Limits(memory=64 * 1024))
    assert sandbox.run("return 1", "script.lua").ok
    cap, used = sandbox._cap, sandbox.lua.get_memory_used()
    _ = sandbox.kit["arm"]  # loaded now, as a run would on its first structured error
    grown = sandbox.lua.get_memory_used() - used
    # the cap grew by what the kit keeps (all but the lookup's own bytes, made after the kit loaded)
    assert grown > 4_000 and sandbox._cap - cap > grown - 1_024
    sandbox.close()


def test_each_run_has_its_own_string_library_whenever_it_is_installed(pooled: Runtime, fresh: Runtime) -> None:
    for runtime in (pooled, fresh):
        assert runtime.run("function string.shout(s) return s:upper() .. '!' end return ('hi'):shout()").result == "HI!"
        result = runtime.run("return ('hi').shout")
        assert result.ok and result.result is None
