"""Worker processes: runs per second of a small script making one call, 2 workers against 1.

The Whereby simulator runs in a process of its own, so that what is measured is the runtime's
side; client-side rate limiting is off (the benchmark measures the runtime, not a quota).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, Figure

from kosmo_runtime import Runtime

SCRIPT = "return #app.integrations.whereby.list_rooms{limit = 1}.data"

_SIMULATOR = """
import json, sys
from kosmo_runtime._demo import Demo
with Demo(["whereby"], rate_limits=False) as demo:
    print(json.dumps(demo.accounts_data), flush=True)
    sys.stdin.read()   # serve until the benchmark closes standard input
"""


def _throughput(runtime: Runtime, clients: int, runs: int) -> float:
    """Runs per second with ``clients`` threads each making ``runs`` runs."""
    failures: list[object] = []

    def client() -> None:
        for _ in range(runs):
            result = runtime.run(SCRIPT)
            if not result.ok:
                failures.append(result.error)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not failures, failures[:3]
    return clients * runs / elapsed


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_workers() -> list[Figure]:
    """2 worker processes against 1, the simulator in its own process, rounds interleaved."""
    simulator = subprocess.Popen([sys.executable, "-c", _SIMULATOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True, cwd=ROOT)
    rounds, per_client = 5, 100
    rates: tuple[list[float], list[float]] = ([], [])
    threads: tuple[list[float], list[float]] = ([], [])  # the same work in this process: 1 thread, 2 threads
    cpu = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # per setting: parent, workers, simulator (CPU seconds)
    try:
        assert simulator.stdout is not None
        accounts = json.loads(simulator.stdout.readline())
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "accounts.yaml"
            path.write_text(json.dumps({"integrations": {
                ident: {"default": "default", "accounts": values} for ident, values in accounts.items()}}))
            with Runtime(accounts=path, workers=1, store=":memory:") as one, \
                    Runtime(accounts=path, workers=2, store=":memory:") as two, \
                    Runtime(accounts=path, store=":memory:") as here:
                _throughput(here, 2, 30)
                settings = ((one, 2), (two, 4))  # callers: twice the workers, so that none is ever idle
                for runtime, clients in settings:
                    _throughput(runtime, clients, 30)  # start and warm every worker
                for _ in range(rounds):
                    for index, (runtime, clients) in enumerate(settings):
                        assert runtime.worker_pool is not None
                        pids = runtime.worker_pool.pids
                        before = (sum(os.times()[:2]), sum(map(_cpu, pids)), _cpu(simulator.pid))
                        rates[index].append(_throughput(runtime, clients, per_client))
                        after = (sum(os.times()[:2]), sum(map(_cpu, pids)), _cpu(simulator.pid))
                        for part in range(3):
                            cpu[index][part] += (after[part] - before[part]) / (rounds * clients * per_client)
                    threads[0].append(_throughput(here, 1, per_client))
                    threads[1].append(_throughput(here, 2, per_client))
    finally:
        if simulator.stdin is not None:
            simulator.stdin.close()
        simulator.wait(30)
    single, double = statistics.median(rates[0]), statistics.median(rates[1])
    parent, worker, sim = (value * 1e6 for value in cpu[1])
    ceiling = 2 / (sum(cpu[1]))  # runs/s that 2 cores allow at this CPU per run
    return [Figure("throughput, one Whereby call per script, 2 workers vs 1 (simulator in its own process)",
                   "runs/s", double, "1 worker", single, "≥ 1.7x 1 worker", double / single >= 1.7,
                   f"2 cores shared with the simulator and other users (load {os.getloadavg()[0]:.1f}); "
                   f"rounds {', '.join(f'{b / a:.2f}' for a, b in zip(*rates, strict=True))}x; CPU per run with "
                   f"2 workers: parent {parent:.0f} µs, worker {worker:.0f} µs, simulator {sim:.0f} µs, "
                   f"so 2 idle cores allow at most {ceiling:.0f} runs/s ({ceiling / single:.2f}x this 1-worker rate)"),
            Figure("the same, in one process (before workers): 2 threads vs 1", "runs/s",
                   statistics.median(threads[1]), "1 thread", statistics.median(threads[0]), "reported", None,
                   "the GIL: threads of one process share one core's worth of Python")]


BENCHMARKS = {"workers": bench_workers}
