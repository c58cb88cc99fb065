"""Start-up: whole ``kosmo`` processes against bare Python, and many installed integrations (fresh subprocesses)."""

from __future__ import annotations

import compileall
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HERE, ROOT, Figure, child

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


#: ``kosmo`` as its console script runs it.
_KOSMO = [sys.executable, "-c", "import sys; from kosmo_runtime._cli import main; sys.exit(main())"]
_PROCESSES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python + lupa: return 1": [sys.executable, "-c", "import lupa.lua54 as l; l.LuaRuntime().execute('return 1')"],
    "kosmo --help": [*_KOSMO, "--help"],
    "kosmo run -e 'return 1'": [*_KOSMO, "run", "-e", "return 1"],
}


def _process_seconds(rounds: int = 15) -> dict[str, list[float]]:
    """Wall seconds of each whole process, ``rounds`` times, interleaved so drift hits all alike."""
    # An installed wheel has its bytecode compiled (pip does it); a checkout may not (PYTHONDONTWRITEBYTECODE).
    for package in ("kosmo_runtime", "integrations"):
        compileall.compile_dir(ROOT / package, quiet=1)
    samples: dict[str, list[float]] = {name: [] for name in _PROCESSES}
    for _ in range(rounds):
        for name, command in _PROCESSES.items():
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, cwd=ROOT)
            samples[name].append(time.perf_counter() - started)
            if done.returncode != 0:
                raise RuntimeError(f"{name} failed: {done.stderr.decode()}")
    return samples


def bench_cli_startup() -> list[Figure]:
    """``kosmo --help`` against ``python -c pass``; ``kosmo run -e 'return 1'`` against Python + lupa doing it."""
    samples = _process_seconds()
    figures = []
    for name, floor, limit in (("kosmo --help", "python -c pass", 2.0),
                               ("kosmo run -e 'return 1'", "python + lupa: return 1", 2.5)):
        low, low_floor = min(samples[name]), min(samples[floor])
        median, median_floor = statistics.median(samples[name]), statistics.median(samples[floor])
        figures.append(Figure(
            f"whole process: {name} (min of {len(samples[name])})", "ms", low * 1e3, floor, low_floor * 1e3,
            f"≤ {limit:g}×", low / low_floor <= limit,
            f"medians {median * 1e3:.1f} vs {median_floor * 1e3:.1f} ms = {median / median_floor:.2f}×; bytecode compiled"))
    return figures


BENCHMARKS = {"startup": bench_startup, "cli_startup": bench_cli_startup}
