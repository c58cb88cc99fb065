"""Worker processes: runs per second of a small script making one call, 2 workers against 1.

The Whereby simulator runs in a process of its own, so that what is measured is the runtime's
side; client-side rate limiting is off (the benchmark measures the runtime, not a quota).

The machine has 2 cores shared with other users, so each round measures both settings back to
back (the order alternating, ABBA), and records, besides the rate, the CPU each of our processes
spent per run and what the rest of the machine took meanwhile (``/proc/stat``'s busy time, steal
included, minus ours): 2 workers need both cores, 1 worker about one, so other users' work
lowers the ratio. The figures are medians over the rounds; the 2-core ceiling is what 2 idle
cores allow at the CPU per run measured with 2 workers.
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
from dataclasses import dataclass, field
from pathlib import Path

from common import ROOT, Figure

from kosmo_runtime import Runtime

SCRIPT = "return #app.integrations.whereby.list_rooms{limit = 1}.data"
ROUNDS = 15
RUNS = 240  # per setting and round, split between its callers

_SIMULATOR = """
import json, sys
from kosmo_runtime._demo import Demo
with Demo(["whereby"], rate_limits=False) as demo:
    print(json.dumps(demo.accounts_data), flush=True)
    sys.stdin.read()   # serve until the benchmark closes standard input
"""

_TICK = os.sysconf("SC_CLK_TCK")


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
    return (int(fields[11]) + int(fields[12])) / _TICK


def _machine_busy() -> float:
    """CPU seconds every core of the machine has been busy (steal included: the host took it)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK  # minus idle and iowait


@dataclass
class _Setting:
    """One configuration (1 or 2 workers) and what its rounds measured."""

    runtime: Runtime
    clients: int
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # parent, workers, simulator: s in all
    runs: int = 0
    others: list[float] = field(default_factory=list)  # cores the rest of the machine used, per round

    def round(self, simulator: int) -> None:
        """One round; CPU is summed over the rounds (the workers' and the simulator's are counted in
        clock ticks, 10 ms: per round that would be ~40 µs a run)."""
        assert self.runtime.worker_pool is not None
        pids = self.runtime.worker_pool.pids
        runs = RUNS // self.clients
        wall = time.perf_counter()
        before = (time.process_time(), sum(map(_cpu, pids)), _cpu(simulator), _machine_busy())
        self.rates.append(_throughput(self.runtime, self.clients, runs))
        after = (time.process_time(), sum(map(_cpu, pids)), _cpu(simulator), _machine_busy())
        wall = time.perf_counter() - wall
        spent = [b - a for a, b in zip(before, after, strict=True)]
        for part in range(3):
            self.cpu[part] += spent[part]
        self.runs += runs * self.clients
        self.others.append(max(0.0, spent[3] - sum(spent[:3])) / wall)

    def cpu_per_run(self) -> tuple[float, float, float]:
        parent, workers, sim = (part / self.runs for part in self.cpu)
        return parent, workers, sim


def bench_workers() -> list[Figure]:
    """2 worker processes against 1, the simulator in its own process, rounds interleaved."""
    simulator = subprocess.Popen([sys.executable, "-c", _SIMULATOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True, cwd=ROOT)
    threads: tuple[list[float], list[float]] = ([], [])  # the same work in this process: 1 thread, 2 threads
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
                # callers: twice the workers, so that none is ever idle
                settings = (_Setting(one, 2), _Setting(two, 4))
                for setting in settings:
                    _throughput(setting.runtime, setting.clients, 40)  # start and warm every worker
                for index in range(ROUNDS):
                    for setting in settings if index % 2 == 0 else settings[::-1]:
                        setting.round(simulator.pid)
                    if index % 3 == 0:
                        threads[0].append(_throughput(here, 1, RUNS // 2))
                        threads[1].append(_throughput(here, 2, RUNS // 4))
    finally:
        if simulator.stdin is not None:
            simulator.stdin.close()
        simulator.wait(30)
    single, double = (statistics.median(setting.rates) for setting in settings)
    ratios = sorted(b / a for a, b in zip(settings[0].rates, settings[1].rates, strict=True))
    parent, worker, sim = settings[1].cpu_per_run()
    per_run = parent + worker + sim
    ceiling = 2 / per_run  # runs/s that 2 idle cores allow at this CPU per run
    one_cpu = sum(settings[0].cpu_per_run())
    others = statistics.median(settings[1].others), statistics.median(settings[0].others)
    left = (2 - others[0]) / per_run  # what the cores other users left allowed
    return [Figure("throughput, one Whereby call per script, 2 workers vs 1 (simulator in its own process)",
                   "runs/s", double, "1 worker", single, "≥ 1.7x 1 worker", double / single >= 1.7,
                   f"medians of {ROUNDS} rounds of {RUNS} runs each, ABBA; per-round ratios "
                   f"{ratios[0]:.2f}-{ratios[-1]:.2f}, median {statistics.median(ratios):.2f}x; other users took "
                   f"{others[0]:.2f} of the 2 cores during the 2-worker rounds, {others[1]:.2f} during the 1-worker "
                   f"ones (load {os.getloadavg()[0]:.1f}); CPU per run with 2 workers: parent {parent * 1e6:.0f} µs, "
                   f"worker {worker * 1e6:.0f} µs, simulator {sim * 1e6:.0f} µs (1 worker: {one_cpu * 1e6:.0f} µs in all)"),
            Figure("2-core ceiling for 2 workers at their CPU per run (parent + worker + simulator)", "runs/s",
                   ceiling, "1 worker, measured", single, "reported", None,
                   f"2 idle cores allow {ceiling / single:.2f}x the 1-worker rate, which keeps {one_cpu * single:.2f} "
                   f"cores busy; the cores other users left allowed {left / single:.2f}x"),
            Figure("the same, in one process (before workers): 2 threads vs 1", "runs/s",
                   statistics.median(threads[1]), "1 thread", statistics.median(threads[0]), "reported", None,
                   "the GIL: threads of one process share one core's worth of Python")]


BENCHMARKS = {"workers": bench_workers}
