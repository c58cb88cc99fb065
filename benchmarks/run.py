"""kosmo-runtime benchmarks: one command, figures printed side by side, results in results.json.

    python benchmarks/run.py            # all benchmarks
    python benchmarks/run.py sandbox    # only those whose name contains "sandbox"

Each benchmark measures the runtime and, in the same run, a floor or comparison
(for example a bare lupa runtime), reports medians over repeated rounds, the
ratio, the target and whether it was met.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lupa import lua54  # noqa: E402

from kosmo_runtime import AccountsConfig, Limits, Runtime  # noqa: E402


@dataclass
class Figure:
    name: str
    unit: str
    value: float
    floor_name: str
    floor: float
    target: str
    met: bool

    @property
    def ratio(self) -> float:
        return self.value / self.floor if self.floor else float("inf")


def median_time(action: Callable[[], object], rounds: int, inner: int = 1) -> float:
    """Median seconds per call of ``action`` over ``rounds`` rounds of ``inner`` calls."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(inner):
            action()
        samples.append((time.perf_counter() - started) / inner)
    return statistics.median(samples)


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


BENCHMARKS: dict[str, Callable[[], Figure]] = {
    "sandbox": bench_sandbox,
    "bridge": bench_bridge,
}


def main(argv: list[str]) -> int:
    chosen = [name for name in BENCHMARKS if not argv or any(a in name for a in argv)]
    figures = []
    print(f"{'benchmark':<40} {'figure':>12} {'floor / comparison':>34} {'ratio':>8}  target")
    for name in chosen:
        figure = BENCHMARKS[name]()
        figures.append(figure)
        print(f"{figure.name:<40} {figure.value:>9.2f} {figure.unit:<2} {figure.floor_name:>26} {figure.floor:>7.2f} "
              f"{figure.ratio:>7.1f}×  {figure.target} {'met' if figure.met else 'MISSED'}")
    (HERE / "results.json").write_text(json.dumps(
        [{**asdict(f), "ratio": round(f.ratio, 3)} for f in figures], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
