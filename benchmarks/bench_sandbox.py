"""The sandbox itself: a fresh run, one integration call, memory per open sandbox."""

from __future__ import annotations

import statistics

from lupa import lua54

from common import HERE, Figure, child, median_time
from kosmo_runtime import AccountsConfig, Limits, Runtime


def bench_sandbox() -> Figure:
    """A fresh sandbox running ``return 1`` against creating a bare lupa Lua 5.4 runtime."""
    runtime = Runtime(accounts=AccountsConfig.empty(), store=":memory:")
    runtime.run("return 1")
    ours = median_time(lambda: runtime.run("return 1"), rounds=30, inner=20)
    floor = median_time(lambda: lua54.LuaRuntime(), rounds=30, inner=20)
    ratio = ours / floor
    return Figure("fresh sandbox + `return 1`", "µs", ours * 1e6, "bare lupa.lua54.LuaRuntime()", floor * 1e6,
                  "≤ 4× floor", ratio <= 4)


def bench_bridge() -> Figure:
    """One integration call with a do-nothing handler, against a raw Lua->Python call in lupa."""
    runtime = Runtime(integration_paths=[HERE / "noop_integration"], store=":memory:", limits=Limits(calls=100_000))
    runtime._accounts = AccountsConfig.parse(
        "integrations:\n  bench-noop:\n    accounts:\n      default: {api_key: unused}\n",
        "(benchmark)", runtime._manifest_for, runtime.catalog.names)
    calls = 2000
    loop = f"local ns = app.integrations.bench_noop for i = 1, {calls} do ns.ping{{id = 'a'}} end"
    empty = f"local ns = app.integrations.bench_noop for i = 1, {calls} do end"
    check = runtime.run(loop)
    assert check.ok, check.error
    per_call = (median_time(lambda: runtime.run(loop), rounds=15) - median_time(lambda: runtime.run(empty), rounds=15)) / calls

    lua = lua54.LuaRuntime()
    raw = lua.eval(f"function(f) for i = 1, {calls} do f({{id = 'a'}}) end end")
    raw_empty = lua.eval(f"function(f) for i = 1, {calls} do end end")
    py = lambda table: table  # noqa: E731
    floor = (median_time(lambda: raw(py), rounds=15) - median_time(lambda: raw_empty(py), rounds=15)) / calls
    return Figure("integration call, no-op handler", "µs", per_call * 1e6, "raw lupa Lua→Python call", floor * 1e6,
                  "< 10 µs per call", per_call * 1e6 < 10)


_SANDBOX_CHILD = """
import gc, json, os, sys, tracemalloc
from lupa import lua54
from kosmo_runtime import Limits
from kosmo_runtime._sandbox import Sandbox
kind, method = sys.argv[1], sys.argv[2]
make = (lambda: Sandbox(Limits())) if kind == "ours" else (lambda: lua54.LuaRuntime())
make()  # compile the bootstrap once, as a long-lived process has
gc.collect()
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
if method == "traced":
    tracemalloc.start()
before = tracemalloc.get_traced_memory()[0] if method == "traced" else rss()
held = [make() for _ in range(100)]
gc.collect()
after = tracemalloc.get_traced_memory()[0] if method == "traced" else rss()
print(json.dumps({"per_sandbox": (after - before) / len(held)}))
"""


def _sandbox_memory() -> dict[str, float]:
    """Memory per open sandbox (100 held at once), each case in fresh processes, median of 3."""
    def measure(kind: str, method: str) -> float:
        return statistics.median(child(_SANDBOX_CHILD, kind, method)["per_sandbox"] for _ in range(3))
    return {"ours_rss": measure("ours", "rss"), "floor_rss": measure("floor", "rss"),
            "ours_traced": measure("ours", "traced")}


BENCHMARKS = {"sandbox": bench_sandbox, "bridge": bench_bridge}
