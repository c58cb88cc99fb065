"""kosmo-runtime benchmarks: one command, figures printed side by side, results in results.json.

    python benchmarks/run.py            # all benchmarks
    python benchmarks/run.py sandbox    # only those whose name contains "sandbox"

Each benchmark measures the runtime and, in the same run, a floor or comparison
(for example a bare lupa runtime), reports medians over repeated rounds, the
ratio, the target and whether it was met.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import httpx  # noqa: E402
from lupa import lua54  # noqa: E402

from kosmo_runtime import AccountsConfig, Limits, Runtime  # noqa: E402
from kosmo_runtime._demo import Demo  # noqa: E402
from kosmo_runtime._simulate import Fault  # noqa: E402


@dataclass
class Figure:
    name: str
    unit: str
    value: float
    floor_name: str
    floor: float
    target: str
    met: bool | None  # None: no hard target, the figure is reported
    note: str = ""

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


def paired_medians(first: Callable[[], object], second: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median seconds per call of ``first`` and of ``second``, their rounds interleaved so drift hits both."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for action, into in ((first, samples[0]), (second, samples[1])):
            started = time.perf_counter()
            action()
            into.append(time.perf_counter() - started)
    return statistics.median(samples[0]), statistics.median(samples[1])


def child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python (nothing imported yet); it prints one JSON object, returned here."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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


# -- against the upstream simulators (loopback HTTP, client-side rate limiting off) -----------------

GOTO = "goto-webinar"
WEBINAR = "1234567890"                          # a webinar of the default GoTo demo account


def _goto_headers() -> dict[str, str]:
    from integrations.goto_webinar.simulator import DEMO_ACCOUNTS

    return {"Authorization": f"Bearer {DEMO_ACCOUNTS['default']['access_token']}"}


def bench_sequential() -> Figure:
    """100 sequential get_webinar calls from one Lua run, against the same 100 GETs with one httpx.Client."""
    calls = 100
    script = f"local gw = app.integrations['{GOTO}'] for i = 1, {calls} do gw.get_webinar{{id = '{WEBINAR}'}} end"
    with Demo([GOTO], rate_limits=False) as demo, demo.runtime() as runtime, \
            httpx.Client(headers=_goto_headers()) as client:
        check = runtime.run(script)  # also reads the organizer key once (/me); the account keeps it
        assert check.ok and len(check.calls) == calls, check.error
        base = demo.servers[GOTO].url
        organizer = client.get(f"{base}/admin/rest/v1/me").json()["key"]
        url = f"{base}/G2W/rest/v2/organizers/{organizer}/webinars/{WEBINAR}"

        def direct() -> None:
            for _ in range(calls):
                response = client.get(url)
                response.raise_for_status()
                response.json()

        direct()
        ours, floor = paired_medians(lambda: runtime.run(script), direct, rounds=15)
    ratio = ours / floor
    return Figure(f"{calls} sequential get_webinar, loopback sim (rate_limits=False)", "ms", ours * 1e3,
                  f"same {calls} GETs, one httpx.Client", floor * 1e3, "≤ 1.10× direct httpx", ratio <= 1.10,
                  f"{(ours - floor) / calls * 1e6:.0f} µs extra per call")


def bench_parallel() -> Figure:
    """50 get_webinar calls at 20 ms injected latency: sequential in one run against app.parallel (16)."""
    calls, latency = 50, 0.02
    sequential = (f"local gw = app.integrations['{GOTO}'] "
                  f"for i = 1, {calls} do gw.get_webinar{{id = '{WEBINAR}'}} end")
    parallel = (f"local gw = app.integrations['{GOTO}'] local branches = {{}} "
                f"for i = 1, {calls} do branches[i] = function() return gw.get_webinar{{id = '{WEBINAR}'}} end end "
                "for i, outcome in ipairs(app.parallel(branches, {concurrency = 16})) do assert(outcome.ok) end")
    from kosmo_runtime._parallel import PER_ACCOUNT

    with Demo([GOTO], rate_limits=False) as demo, demo.runtime() as runtime:
        for script in (sequential, parallel):  # warm: organizer key, connections, worker threads
            check = runtime.run(script)
            assert check.ok and len(check.calls) == calls, check.error
        demo.simulators[GOTO].inject(Fault("latency", seconds=latency, times=None))
        seq = median_time(lambda: runtime.run(sequential), rounds=5)
        par = median_time(lambda: runtime.run(parallel), rounds=9)
        demo.simulators[GOTO].clear_faults()
    waves = -(-calls // min(16, PER_ACCOUNT))
    return Figure(f"{calls} get_webinar, 20 ms latency: app.parallel(16)", "ms", par * 1e3,
                  "sequential, one run", seq * 1e3, "≥ 10× faster (ratio ≤ 0.10)", seq / par >= 10,
                  f"speed-up {seq / par:.1f}×; {waves} waves of calls, at most {calls / waves:.1f}× possible")


def bench_throughput() -> list[Figure]:
    """Scripts per second for a two-read script, one shared Runtime, 1 and 2 threads each looping over run."""
    script = (f"local rooms = app.integrations.whereby.list_rooms{{}} "
              f"local webinar = app.integrations['{GOTO}'].get_webinar{{id = '{WEBINAR}'}} "
              "return webinar.subject")
    per_thread = 60
    with Demo(["whereby", GOTO], rate_limits=False) as demo, demo.runtime() as runtime:
        check = runtime.run(script)
        assert check.ok and len(check.calls) == 2, check.error

        def loop() -> None:
            for _ in range(per_thread):
                runtime.run(script)

        def threads(count: int) -> Callable[[], float]:
            def rate() -> float:
                workers = [threading.Thread(target=loop) for _ in range(count)]
                started = time.perf_counter()
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                return count * per_thread / (time.perf_counter() - started)
            return rate

        one, two = threads(1), threads(2)
        rates: tuple[list[float], list[float]] = ([], [])
        for _ in range(5):
            rates[0].append(one())
            rates[1].append(two())
    single, double = statistics.median(rates[0]), statistics.median(rates[1])
    sandbox = _sandbox_memory()
    return [
        Figure("throughput, 2 reads/script, 2 threads", "scripts/s", double, "1 thread", single,
               "report (scaling 2 vs 1 thread)", None),
        Figure("100 open Sandbox(Limits()), RSS per sandbox", "KiB", sandbox["ours_rss"] / 1024,
               "bare lua54.LuaRuntime()", sandbox["floor_rss"] / 1024, "report", None,
               f"tracemalloc (Python side only) {sandbox['ours_traced'] / 1024:.1f} KiB per sandbox"),
    ]


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


# -- start-up with many installed integrations (fresh subprocesses) ---------------------------------

_STARTUP_CHILD = """
import json, resource, statistics, sys, time
traced = sys.argv[2] == "traced"
if traced:
    import tracemalloc
    tracemalloc.start()
started = time.perf_counter()
import kosmo_runtime
from kosmo_runtime import AccountsConfig, Runtime
runtime = Runtime(integration_paths=json.loads(sys.argv[1]), store=":memory:")
runtime._accounts = AccountsConfig.parse(
    "integrations:\\n  bench-noop:\\n    accounts:\\n      default: {api_key: unused}\\n",
    "(benchmark)", runtime._manifest_for, runtime.catalog.names)
script = "return app.integrations.bench_noop.ping{id = 'a'}.id"
result = runtime.run(script)
startup = time.perf_counter() - started
assert result.ok and result.result == "a", result.error
runs = []
for _ in range(30):
    began = time.perf_counter()
    runtime.run(script)
    runs.append(time.perf_counter() - began)
print(json.dumps({"startup": startup, "per_run": statistics.median(runs),
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "traced_peak": tracemalloc.get_traced_memory()[1] if traced else None,
                  "installed": len(runtime.catalog.names())}))
"""


def _synthetic_integrations(root: Path, count: int) -> None:
    """``count`` copies of the bench-noop integration, ids ``synthetic-0001``... in folders ``synthetic_0001``..."""
    source = HERE / "noop_integration" / "bench_noop"
    manifest = (source / "manifest.yaml").read_text()
    assert "id: bench-noop\n" in manifest
    for number in range(1, count + 1):
        ident = f"synthetic-{number:04d}"
        folder = root / ident.replace("-", "_")
        folder.mkdir()
        (folder / "manifest.yaml").write_text(manifest.replace("id: bench-noop\n", f"id: {ident}\n"))
        shutil.copy(source / "hooks.py", folder / "hooks.py")


def bench_startup() -> list[Figure]:
    """import + Runtime + one bench-noop run in a fresh process, with 5 vs 501 installed integrations."""
    with tempfile.TemporaryDirectory(prefix="kosmo-bench-") as temp:
        _synthetic_integrations(Path(temp), 496)
        few = json.dumps([str(HERE / "noop_integration")])
        many = json.dumps([str(HERE / "noop_integration"), temp])
        timed: dict[str, list[dict]] = {few: [], many: []}
        for _ in range(7):  # interleaved, so drift hits both
            for paths in (few, many):
                timed[paths].append(child(_STARTUP_CHILD, paths, "timed"))
        traced = {paths: [child(_STARTUP_CHILD, paths, "traced") for _ in range(3)] for paths in (few, many)}

    def median(paths: str, key: str, source: dict[str, list[dict]] = timed) -> float:
        return statistics.median(sample[key] for sample in source[paths])

    n_few, n_many = timed[few][0]["installed"], timed[many][0]["installed"]
    label = f"{n_many} vs {n_few} installed"
    figures = [
        Figure(f"cold start: import+Runtime+1 call, {label}", "ms", median(many, "startup") * 1e3,
               f"{n_few} installed", median(few, "startup") * 1e3, "≤ 1.20×",
               median(many, "startup") / median(few, "startup") <= 1.20, "fresh subprocess each"),
        Figure(f"per run after start (1 call), {label}", "µs", median(many, "per_run") * 1e6,
               f"{n_few} installed", median(few, "per_run") * 1e6, "≤ 1.20×",
               median(many, "per_run") / median(few, "per_run") <= 1.20),
        Figure(f"peak RSS (ru_maxrss), {label}", "MiB", median(many, "maxrss") / 2**20,
               f"{n_few} installed", median(few, "maxrss") / 2**20, "report", None),
        Figure(f"peak tracemalloc, {label}", "MiB", median(many, "traced_peak", traced) / 2**20,
               f"{n_few} installed", median(few, "traced_peak", traced) / 2**20, "report", None),
    ]
    return figures


BENCHMARKS: dict[str, Callable[[], Figure | list[Figure]]] = {
    "sandbox": bench_sandbox,
    "bridge": bench_bridge,
    "sequential": bench_sequential,
    "parallel": bench_parallel,
    "startup": bench_startup,
    "throughput": bench_throughput,
}


def main(argv: list[str]) -> int:
    chosen = [name for name in BENCHMARKS if not argv or any(a in name for a in argv)]
    figures: list[Figure] = []
    started = time.perf_counter()
    for name in chosen:
        print(f"running {name}...", file=sys.stderr, flush=True)
        made = BENCHMARKS[name]()
        figures += made if isinstance(made, list) else [made]
    rows = [("benchmark", "figure", "floor / comparison", "", "ratio", "target"), *(
        (f.name, f"{f.value:.2f} {f.unit}", f.floor_name, f"{f.floor:.2f} {f.unit}", f"{f.ratio:.2f}×",
         f"{f.target} {'reported' if f.met is None else 'met' if f.met else 'MISSED'}"
         + (f"  ({f.note})" if f.note else "")) for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}} {row[3]:>{widths[3]}}  "
              f"{row[4]:>{widths[4]}}  {row[5]}")
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    (HERE / "results.json").write_text(json.dumps(
        [{**asdict(f), "ratio": round(f.ratio, 3)} for f in figures], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
