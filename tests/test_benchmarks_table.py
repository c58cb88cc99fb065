"""The README's benchmark table is the one generated from the committed benchmarks/results.json."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import run  # noqa: E402  (benchmarks/run.py)


def test_readme_table_is_generated_from_results_json() -> None:
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- kosmo:benchmarks -->\n(.*?)<!-- /kosmo:benchmarks -->", readme, re.S)
    assert table is not None, "README.md lost its kosmo:benchmarks markers"
    assert table.group(1) == run.readme_table(results), "run: python benchmarks/run.py --readme"


def test_every_recorded_figure_has_a_target_and_a_verdict() -> None:
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    assert results, "benchmarks/results.json is empty"
    for figure in results:
        assert figure["target"] and figure["met"] in (True, False, None), figure["name"]
        assert figure["value"] >= 0 and figure["date"], figure["name"]
