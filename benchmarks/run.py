"""kosmo-runtime benchmarks: one command, figures printed side by side, results in results.json.

    python benchmarks/run.py            # all benchmarks
    python benchmarks/run.py sandbox    # only those whose name contains "sandbox"
    python benchmarks/run.py --readme   # rewrite README.md's table from results.json (no run)

Each benchmark measures the runtime and, in the same run, a floor or comparison
(for example a bare lupa runtime), reports medians over repeated rounds, the
ratio, the target and whether it was met. Benchmarks live in ``bench_*.py``
modules beside this file, each exporting ``BENCHMARKS = {name: function}``; a
function returns one ``Figure`` or a list of them. Each benchmark runs in a fresh Python process
(``--one NAME``), so what one leaves behind cannot move the next one's figures. A run updates the figures it
measured in ``results.json`` (the others stay as they were, with their dates) and
regenerates the README's table from it.
"""

from __future__ import annotations

import datetime
import importlib
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from common import HERE, Figure

#: benchmarks that load the whole machine (hundreds of clients or processes, large specs): they run
#: last, since for a while after them every figure, floors included, reads up to 1.5x slower and the
#: ratios move (the pooled run measured 0.68-0.73x its floor alone, 0.95-1.21x right after these)
HEAVY = ("mcp_load", "openapi", "workers")


def collect() -> dict[str, Callable[[], Figure | list[Figure]]]:
    """Every benchmark of every ``bench_*.py`` module, in file-name order, the ``HEAVY`` ones last."""
    found: dict[str, Callable[[], Figure | list[Figure]]] = {}
    for path in sorted(HERE.glob("bench_*.py")):
        found.update(importlib.import_module(path.stem).BENCHMARKS)
    return dict(sorted(found.items(), key=lambda item: item[0] in HEAVY))


RESULTS = HERE / "results.json"
README = HERE.parent / "README.md"
_TABLE = re.compile(r"(<!-- kosmo:benchmarks -->\n)(.*?)(<!-- /kosmo:benchmarks -->)", re.S)


def readme_table(results: list[dict[str, Any]]) -> str:
    """The README's Markdown table of every recorded figure: value, comparison, ratio, target and met."""
    rows = ["| benchmark | figure | comparison, same run | ratio | target | measured |", "|---|---|---|---|---|---|"]
    for r in results:
        target = r["target"] if r["met"] is None else f"{r['target']}: {'met' if r['met'] else '**missed**'}"
        note = f" ({r['note']})" if r.get("note") else ""
        cells = [f"{r['name']}{note}", f"{r['value']:,.2f} {r['unit']}", f"{r['floor_name']} {r['floor']:,.2f} {r['unit']}",
                 f"{r['ratio']:.2f}×", target, r.get("date", "")]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def write_readme(results: list[dict[str, Any]]) -> bool:
    """Put the table between the README's ``kosmo:benchmarks`` markers; True when it changed."""
    text = README.read_text(encoding="utf-8")
    updated = _TABLE.sub(lambda m: m.group(1) + readme_table(results) + m.group(3), text)
    if updated != text:
        README.write_text(updated, encoding="utf-8")
    return updated != text


def record(figures: list[Figure]) -> list[dict[str, Any]]:
    """results.json with these figures replacing those of the same name (others kept, in order). A figure
    this machine could not measure (NaN: a service it lacks) is printed, not recorded: the last measurement stays."""
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    today = datetime.date.today().isoformat()
    new = {f.name: {**asdict(f), "ratio": round(f.ratio, 3), "date": today} for f in figures if not math.isnan(f.value)}
    merged = [new.pop(r["name"], r) for r in old] + list(new.values())
    RESULTS.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
    return merged


def _in_own_process(name: str) -> list[Figure]:
    """Benchmark ``name`` run by a fresh Python: what one benchmark leaves behind (a heap grown and freed
    by a large spec, threads, caches) must not move the next one's figures (it did: the pooled run
    read 20 -> 35 us after the openapi benchmark in the same process)."""
    done = subprocess.run([sys.executable, __file__, "--one", name], stdout=subprocess.PIPE, text=True, cwd=HERE)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark {name} failed (its standard error is above)")
    return [Figure(**data) for data in json.loads(done.stdout.strip().splitlines()[-1])]


def main(argv: list[str]) -> int:
    if argv == ["--readme"]:
        write_readme(json.loads(RESULTS.read_text()))
        return 0
    benchmarks = collect()
    if argv[:1] == ["--one"]:  # a child of the run below: one benchmark, its figures as JSON on the last line
        made = benchmarks[argv[1]]()
        print(json.dumps([asdict(f) for f in (made if isinstance(made, list) else [made])]))
        return 0
    chosen = [name for name in benchmarks if not argv or any(a in name for a in argv)]
    figures: list[Figure] = []
    started = time.perf_counter()
    for name in chosen:
        print(f"running {name}...", file=sys.stderr, flush=True)
        figures += _in_own_process(name)
    rows = [("benchmark", "figure", "floor / comparison", "", "ratio", "target"), *(
        (f.name, f"{f.value:.2f} {f.unit}", f.floor_name, f"{f.floor:.2f} {f.unit}", f"{f.ratio:.2f}×",
         f"{f.target} {'reported' if f.met is None else 'met' if f.met else 'MISSED'}"
         + (f"  ({f.note})" if f.note else "")) for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}} {row[3]:>{widths[3]}}  "
              f"{row[4]:>{widths[4]}}  {row[5]}")
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    write_readme(record(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
