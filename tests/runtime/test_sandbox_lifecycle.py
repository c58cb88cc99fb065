"""A run's Lua state serves one run at a time, and nothing of a run outlives it.

By default a run's state is reset for the next run when it ends (``tests/runtime/test_reset.py``
proves the reset complete), and a state that hit a limit is freed; with ``reuse=False`` every
run gets a state nobody used before. Either way states are freed by reference counting (when
their run ends, or when the Runtime closes), never left to the cycle collector.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator

import pytest

import kosmo_runtime._runtime as runtime_module
from kosmo_runtime import Demo, Limits, Runtime
from kosmo_runtime._sandbox import Sandbox
from kosmo_runtime._workers import _foreground_sandboxes


class _Probe:
    """A Python object only the Lua state holds: it is freed exactly when the state is."""


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref[_Probe]]:
    """Every sandbox the Runtime makes carries a probe in its state's real globals."""
    made: list[weakref.ref[_Probe]] = []

    class Probed(Sandbox):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            probe = _Probe()
            self.lua.globals().kosmo_test_probe = probe
            made.append(weakref.ref(probe))

    monkeypatch.setattr(runtime_module, "Sandbox", Probed)
    return made


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


SCRIPTS = [
    "return 1",
    "return app.integrations.whereby.list_rooms{limit = 2}",
    "return app.parallel({function() return app.integrations.whereby.list_rooms{} end})",
    "error('boom')",
    "local t = nil return t.x",
    "return function() end",
    "return (",
    "while true do end",
    "local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(64) .. i end",
    "print({1, 2}) return json.decode('[1, {\"a\": 2}]')",
]


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo() as started:
        yield started


LIMITS = Limits(instructions=1_000_000, memory=8 << 20)


@pytest.mark.parametrize("source", SCRIPTS)
def test_a_runs_state_is_freed_when_the_run_ends_without_the_cycle_collector(
        source: str, demo: Demo, probes: list[weakref.ref[_Probe]], no_gc: None) -> None:
    with demo.runtime(limits=LIMITS, pool=0, reuse=False) as runtime:
        result = runtime.run(source)
        assert len(probes) == 1 and probes[0]() is None, result.to_dict()


@pytest.mark.parametrize("source", SCRIPTS)
def test_a_reset_state_is_kept_for_the_next_run_and_freed_with_the_runtime(
        source: str, demo: Demo, probes: list[weakref.ref[_Probe]], no_gc: None) -> None:
    """A run that hit no limit leaves its state reset and kept; one that hit a limit frees it. (The first
    run's state is freed: a process's first run may be its only one.)"""
    with demo.runtime(limits=LIMITS, pool=0) as runtime:
        assert runtime.run("return 1").ok
        assert len(probes) == 1 and probes[0]() is None
        result = runtime.run(source)
        hit_limit = result.error is not None and result.error.type == "LimitExceeded"
        assert len(probes) == 2 and (probes[1]() is None) == hit_limit, result.to_dict()
        assert runtime.run("return 2").result == 2
        assert len(probes) == (3 if hit_limit else 2)  # the kept state served the next run
    assert all(probe() is None for probe in probes)


def test_a_runs_values_are_collected_when_it_ends(demo: Demo) -> None:
    """A kept state holds nothing of the run that ended: its memory is back where it was."""
    with demo.runtime(limits=LIMITS, pool=0) as runtime:
        assert runtime.run("return 1").ok and runtime.run("return 1").ok  # (the first run's state is freed)
        kept = runtime._sandboxes._ready[0].sandbox
        before = kept.lua.get_memory_used()
        result = runtime.run("local t = {} for i = 1, 2000 do t[i] = ('x'):rep(1000) .. i end return #t")
        assert result.result == 2000 and runtime._sandboxes._ready[0].sandbox is kept
        assert kept.lua.get_memory_used() < before + 64 * 1024


@pytest.mark.parametrize("source", SCRIPTS[:4])
def test_a_pooled_runs_state_goes_back_to_the_pool_reset(
        source: str, demo: Demo, probes: list[weakref.ref[_Probe]], no_gc: None) -> None:
    with demo.runtime(limits=LIMITS, pool=2) as runtime:
        assert runtime._sandboxes.wait_full(timeout=30)
        first, second = probes
        result = runtime.run(source)
        assert runtime._sandboxes.wait_full(timeout=30)  # the pool's thread resets the finished state
        assert len(probes) == 2 and first() is not None and second() is not None, result.to_dict()
        assert [item.sandbox.lua.globals().kosmo_test_probe for item in runtime._sandboxes._ready] == [second(), first()]
    assert first() is None and second() is None  # closing the Runtime frees what the pool holds


@pytest.mark.parametrize("source", SCRIPTS[:4])
def test_a_pooled_runs_state_is_freed_when_the_run_ends(
        source: str, demo: Demo, probes: list[weakref.ref[_Probe]], no_gc: None) -> None:
    with demo.runtime(limits=LIMITS, pool=2, reuse=False) as runtime:
        assert runtime._sandboxes.wait_full(timeout=30)
        assert len(probes) == 2 and all(probe() is not None for probe in probes)
        first, second = probes
        result = runtime.run(source)
        assert runtime._sandboxes.wait_full(timeout=30)  # the pool's thread frees the finished state
        assert first() is None, result.to_dict()  # the run took the oldest pooled state and freed it
        assert second() is not None and len(probes) == 3
    assert second() is None                      # closing the Runtime frees what the pool holds


#: What a run can change in its own state; none of it may reach any other run.
TAMPER = """
leaked_global = "leak"
if rawset then rawset(_G, "leaked_raw", "leak") else leaked_raw = "leak" end
string.leaked = function() return "leak" end
string.upper = function() return "leak" end
table.leaked = "leak"
math.pi = 3
pcall(setmetatable, _G, {__index = function(_, key) return "leak:" .. key end})
local mt = getmetatable("")
if type(mt) == "table" then pcall(function() mt.__index = {len = function() return "leak" end} end) end
pcall(function() app.leaked = "leak" end)
pcall(function() app.integrations.whereby.leaked = "leak" end)
return "tampered"
"""

LOOK = """
return {
  leaked_global = rawget(_G, "leaked_global") == nil,
  leaked_raw = rawget(_G, "leaked_raw") == nil,
  string_extended = string.leaked == nil and ("x").leaked == nil,
  string_upper = ("abc"):upper() == "ABC" and string.upper("a") == "A",
  table_extended = table.leaked == nil,
  math_pi = math.pi > 3.14,
  global_metatable = getmetatable(_G) == nil or rawget(_G, "nothing_here") == nil and nothing_here == nil,
  string_len = ("abc"):len() == 3,
  app = app.leaked == nil,
  whereby = not pcall(function() return app.integrations.whereby.leaked end),
}
"""


@pytest.mark.parametrize("reuse", [True, False])
@pytest.mark.parametrize("pool", [0, 2])
def test_nothing_one_run_does_is_visible_to_the_next(pool: int, reuse: bool, demo: Demo,
                                                      probes: list[weakref.ref[_Probe]]) -> None:
    with demo.runtime(pool=pool, reuse=reuse) as runtime:
        for _ in range(3):
            if pool:
                assert runtime._sandboxes.wait_full(timeout=30)
            tampered = runtime.run(TAMPER)
            assert tampered.ok and tampered.result == "tampered", tampered.to_dict()
            if pool:  # (the finished state reset and back before the next run takes one: no new ones built)
                assert runtime._sandboxes.wait_full(timeout=30)
            looked = runtime.run(LOOK)
            assert looked.ok, looked.to_dict()
            assert looked.result == {key: True for key in looked.result}, looked.result
    # with reuse, the states were reset between runs (pool 0: one state kept after the first run's was
    # freed; pool 2: the pool's two);
    # without, every run had a state of its own, each freed when its run ended (pooled spares by close)
    assert len(probes) == (2 if pool == 0 else pool) if reuse else len(probes) >= 6  # (pool 0: the first freed)
    gc.collect()
    assert all(probe() is None for probe in probes)


def test_a_sessions_state_is_freed_when_it_closes(probes: list[weakref.ref[_Probe]], no_gc: None) -> None:
    with Runtime(pool=0) as runtime, runtime.session() as session:
        assert session.run("x = 1").ok
        assert session.run("return x").result == 1
        assert probes[0]() is not None
    assert probes[0]() is None


def _runs_in_a_forked_child(runtime: Runtime) -> None:
    ok = all(runtime.run("return 1").result == 1 for _ in range(4))
    ok = ok and runtime._sandboxes.wait_full(timeout=20) and len(runtime._sandboxes._ready) == 2
    os._exit(0 if ok else 3)


def test_a_forked_child_starts_with_an_empty_pool_and_refills_it_itself() -> None:
    """Pooled states are never handed across a fork, and the child's pool works (no inherited lock)."""
    with Runtime(pool=2) as runtime:
        assert runtime._sandboxes.wait_full(timeout=30)
        child = multiprocessing.get_context("fork").Process(target=_runs_in_a_forked_child, args=(runtime,))
        child.start()
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
        assert child.exitcode == 0


def test_a_single_run_starts_no_pool_thread() -> None:
    """A one-run process (kosmo run) builds no spare states: the thread starts when a second run ends."""
    with Runtime(pool=2) as runtime:
        assert runtime.run("return 1").ok
        assert runtime._sandboxes._thread is None
        assert runtime.run("return 1").ok
        assert runtime._sandboxes._thread is not None


@pytest.mark.parametrize("reuse", [True, False])
def test_a_worker_style_pool_builds_between_runs_on_the_callers_thread(
        reuse: bool, demo: Demo, probes: list[weakref.ref[_Probe]], no_gc: None) -> None:
    """``background=False`` (what a worker process uses): no thread; ``top_up`` resets the finished
    state (or frees it and builds the next), and every run sees nothing of the one before."""
    with demo.runtime(pool=2, reuse=reuse) as runtime:
        _foreground_sandboxes(runtime)
        runtime._sandboxes.top_up()
        assert len(runtime._sandboxes._ready) == 2 and len(probes) == 2
        for _ in range(3):
            tampered = runtime.run(TAMPER)
            assert tampered.ok and tampered.result == "tampered", tampered.to_dict()
            assert [probe() is None for probe in probes].count(False) == 2  # the finished state waits for top_up
            runtime._sandboxes.top_up()
            looked = runtime.run(LOOK)
            assert looked.ok and looked.result == {key: True for key in looked.result}, looked.result
            runtime._sandboxes.top_up()
            assert len(runtime._sandboxes._ready) == 2
            assert [probe() is None for probe in probes].count(False) == 2  # the two ready ones only
        assert runtime._sandboxes._thread is None
        assert len(probes) == (2 if reuse else 8)  # 2 built ahead (+ one per run without reuse)
    assert all(probe() is None for probe in probes)


#: A branch's coroutine reads the first global: the library layer loads while it runs. (lupa binds a Lua
#: object it makes for Python to the coroutine running at that moment; one the sandbox kept would be
#: read through a freed coroutine once the branch is collected: with one kept, this child crashed in 6 of 7 tries.)
_BRANCH_FIRST = """
from kosmo_runtime import Demo, RetryPolicy
with Demo(["goto-webinar"], rate_limits=False) as demo:
    runtime = demo.runtime(retry=RetryPolicy(sleep=lambda seconds: None))
    for _ in range(6):
        result = runtime.run("return app.parallel({function() return tostring(setmetatable({}, "
                             "{__tostring = function() return 'x' end})) end, function() return 7 end})")
        assert result.ok and result.result[1] == {"ok": True, "value": 7}, result.error
    runtime.close()
print("survived")
"""


def test_a_state_whose_library_loaded_inside_a_branch_survives_reset_and_close() -> None:
    done = subprocess.run([sys.executable, "-c", _BRANCH_FIRST], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "survived", done.stderr[-3000:]


#: Four threads share one Runtime (a pool of 2), each run tampering, looking, failing or fanning out: no
#: run sees another's changes and the process survives (in a child: a use-after-free would kill it).
_THREADS = """
import json, sys, threading
from kosmo_runtime import Demo, RetryPolicy
tamper, look = json.loads(sys.argv[1])
scripts = [tamper, look, "error('boom')", "while true do end",
           "return app.parallel({function() return tostring(1) end, function() return 7 end})"]
bad = []
with Demo(["whereby"], rate_limits=False) as demo:
    runtime = demo.runtime(retry=RetryPolicy(sleep=lambda seconds: None))
    def work(offset):
        for i in range(40):
            source = scripts[(i + offset) % len(scripts)]
            result = runtime.run(source, limits=runtime.limits.__class__(instructions=200_000))
            if source is look and not (result.ok and all(result.result.values())):
                bad.append(result.to_dict())
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads: thread.start()
    for thread in threads: thread.join()
    runtime.close()
print(json.dumps({"bad": bad[:3], "count": len(bad)}))
"""


def test_threads_sharing_a_runtime_see_nothing_of_each_other() -> None:
    done = subprocess.run([sys.executable, "-c", _THREADS, json.dumps([TAMPER, LOOK])], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["count"] == 0, report
