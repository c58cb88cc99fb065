"""kosmo-runtime benchmarks: one command, figures printed side by side, results in results.json.

    python benchmarks/run.py            # all benchmarks
    python benchmarks/run.py sandbox    # only those whose name contains "sandbox"

Each benchmark measures the runtime and, in the same run, a floor or comparison
(for example a bare lupa runtime), reports medians over repeated rounds, the
ratio, the target and whether it was met. Benchmarks live in ``bench_*.py``
modules beside this file, each exporting ``BENCHMARKS = {name: function}``; a
function returns one ``Figure`` or a list of them.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict

from common import HERE, Figure


def collect() -> dict[str, Callable[[], Figure | list[Figure]]]:
    """Every benchmark of every ``bench_*.py`` module, in file-name order."""
    found: dict[str, Callable[[], Figure | list[Figure]]] = {}
    for path in sorted(HERE.glob("bench_*.py")):
        found.update(importlib.import_module(path.stem).BENCHMARKS)
    return found


def main(argv: list[str]) -> int:
    benchmarks = collect()
    chosen = [name for name in benchmarks if not argv or any(a in name for a in argv)]
    figures: list[Figure] = []
    started = time.perf_counter()
    for name in chosen:
        print(f"running {name}...", file=sys.stderr, flush=True)
        made = benchmarks[name]()
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
