"""Integration calls over loopback HTTP against the upstream simulators."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

import httpx

from bench_sandbox import _sandbox_memory
from common import Figure, median_time, paired_medians
from kosmo_runtime._demo import Demo
from kosmo_runtime._simulate import Fault


# -- against the upstream simulators (loopback HTTP, client-side rate limiting off) -----------------

GOTO = "goto-webinar"
WEBINAR = "1234567890"                          # a webinar of the default GoTo demo account


def _goto_headers() -> dict[str, str]:
    from kosmo_integrations.goto_webinar.simulator import DEMO_ACCOUNTS

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


BENCHMARKS = {"sequential": bench_sequential, "parallel": bench_parallel, "throughput": bench_throughput}
