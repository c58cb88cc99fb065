"""Integration calls over loopback HTTP against the upstream simulators."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

import httpx
from bench_sandbox import _sandbox_memory
from common import Figure
from simproc import SimulatorProcess

from kosmo_runtime._demo import Demo

# -- against the upstream simulators (loopback HTTP, client-side rate limiting off) -----------------
# sequential and parallel serve the simulator from its own process (simproc), so this process's CPU
# time is the client's alone.

GOTO = "goto-webinar"
WEBINAR = "1234567890"                          # a webinar of the default GoTo demo account


def _goto_headers() -> dict[str, str]:
    from kosmo_integrations.goto_webinar.simulator import DEMO_ACCOUNTS

    return {"Authorization": f"Bearer {DEMO_ACCOUNTS['default']['access_token']}"}


def _webinar_url(client: httpx.Client, base: str) -> str:
    organizer = client.get(f"{base}/admin/rest/v1/me").json()["key"]
    return f"{base}/G2W/rest/v2/organizers/{organizer}/webinars/{WEBINAR}"


class _Timed:
    """Wall-clock and process CPU seconds of the rounds of one action."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, action: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)


def _paired(first: Callable[[], object], second: Callable[[], object], rounds: int) -> tuple[_Timed, _Timed]:
    """Rounds of ``first`` and ``second`` in pairs, the order alternating (ABBA) so that drift and
    whatever runs after one of them hit both alike. On the shared machine other processes only
    ever add time, so a figure is the minimum over the rounds (as ``timeit`` advises), the
    median reported beside it."""
    timed = (_Timed(), _Timed())
    for round_ in range(rounds):
        pair = [(first, timed[0]), (second, timed[1])]
        for action, into in pair if round_ % 2 == 0 else pair[::-1]:
            into.add(action)
    return timed


def _medians(ours: list[float], floor: list[float], scale: float) -> str:
    return f"medians {statistics.median(ours) * scale:.1f} vs {statistics.median(floor) * scale:.1f}"


def bench_sequential() -> list[Figure]:
    """100 sequential get_webinar calls from one Lua run, against the same 100 GETs with one httpx.Client:
    wall clock and this process's CPU time (the simulator runs in its own process)."""
    calls = 100
    script = f"local gw = app.integrations['{GOTO}'] for i = 1, {calls} do gw.get_webinar{{id = '{WEBINAR}'}} end"
    with SimulatorProcess([GOTO]) as sims, sims.runtime() as runtime, httpx.Client(headers=_goto_headers()) as client:
        check = runtime.run(script)  # also reads the organizer key once (/me); the account keeps it
        assert check.ok and len(check.calls) == calls, check.error
        url = _webinar_url(client, sims.url(GOTO))

        def direct() -> None:
            for _ in range(calls):
                response = client.get(url)
                response.raise_for_status()
                response.json()

        direct()
        ours, raw = _paired(lambda: runtime.run(script), direct, rounds=30)
    wall, floor_wall, cpu, floor_cpu = min(ours.wall), min(raw.wall), min(ours.cpu), min(raw.cpu)
    return [
        Figure(f"{calls} sequential get_webinar, simulator in its own process (min of 30)", "ms", wall * 1e3,
               f"same {calls} GETs, one httpx.Client", floor_wall * 1e3, "≤ 1.05× direct httpx",
               wall / floor_wall <= 1.05, f"{(wall - floor_wall) / calls * 1e6:.0f} µs extra per call; "
               + _medians(ours.wall, raw.wall, 1e3) + " ms"),
        Figure("client CPU per get_webinar call (process_time, min of 30)", "µs", cpu / calls * 1e6,
               "per GET, one httpx.Client", floor_cpu / calls * 1e6, "≤ 1.3× direct httpx",
               cpu / floor_cpu <= 1.3, _medians(ours.cpu, raw.cpu, 1e6 / calls) + " µs"),
    ]


def bench_parallel() -> list[Figure]:
    """50 get_webinar calls at 20 ms injected latency through app.parallel, against the ideal for the
    in-flight bound: its waves times one call at that latency (raw httpx, same run)."""
    calls, latency, concurrency = 50, 0.02, 16
    parallel = (f"local gw = app.integrations['{GOTO}'] local branches = {{}} "
                f"for i = 1, {calls} do branches[i] = function() return gw.get_webinar{{id = '{WEBINAR}'}} end end "
                f"for i, outcome in ipairs(app.parallel(branches, {{concurrency = {concurrency}}})) do "
                "assert(outcome.ok) end")
    from kosmo_runtime._parallel import PER_ACCOUNT

    bound = min(concurrency, PER_ACCOUNT)
    waves = -(-calls // bound)
    with SimulatorProcess([GOTO]) as sims, sims.runtime() as runtime, httpx.Client(headers=_goto_headers()) as client:
        check = runtime.run(parallel)  # warm: organizer key, connections, worker threads
        assert check.ok and len(check.calls) == calls, check.error
        url = _webinar_url(client, sims.url(GOTO))
        sims.inject(GOTO, kind="latency", seconds=latency, times=None)
        ours, single = _paired(lambda: runtime.run(parallel), lambda: client.get(url).json(), rounds=30)
        sims.clear_faults(GOTO)
    wall, one, cpu = min(ours.wall), min(single.wall), min(ours.cpu)
    ideal = waves * one
    return [
        Figure(f"{calls} get_webinar, 20 ms latency, app.parallel (in flight {bound}, min of 30)", "ms", wall * 1e3,
               f"ideal: {waves} waves × one call at 20 ms", ideal * 1e3, "≥ 0.8 of ideal (ratio ≤ 1.25)",
               ideal / wall >= 0.8, f"{ideal / wall:.2f} of ideal; one call {one * 1e3:.1f} ms; "
               + _medians(ours.wall, [waves * w for w in single.wall], 1e3) + " ms"),
        Figure("client CPU per parallel call (process_time, min of 30)", "µs", cpu / calls * 1e6,
               "wall time per call", wall / calls * 1e6, "report", None,
               f"median {statistics.median(ours.cpu) / calls * 1e6:.0f} µs"),
    ]


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


BENCHMARKS = {"sequential": bench_sequential, "parallel": bench_parallel, "throughput": bench_throughput}
