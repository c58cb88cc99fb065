"""`kosmo integrations new --from-openapi` on a large spec: seconds for thousands of operations.

Measured as a user runs it: the command itself in a fresh process (interpreter start, imports,
spec parsing, mapping, writing the manifest, its parsed copy and the docs page), on the spec as
YAML (as JSON beside it), then the next command a user types, `kosmo docs read integrations.big`,
which loads the integration with all the manifest checks. Timed inside the benchmark's own process
instead, the figure would leave out the interpreter's start and the imports, and count collections
of the cyclic garbage collector walking the benchmark's copies of the spec, which the command does
not hold.
"""

from __future__ import annotations

import copy
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import ROOT, Figure

from kosmo_runtime._manifest import PARSED_COPY
from kosmo_runtime._openapi import load_spec

TARGET_SECONDS = 5.0
COPIES = 12  # Cal.com's 272 operations, twelve times over (paths renamed): 3,264 operations
ROUNDS = 3


def _large_spec() -> dict[str, object]:
    spec = load_spec(ROOT / "tests" / "data" / "specs" / "calcom.json")
    paths = spec["paths"]
    big = copy.deepcopy(spec)
    big["paths"] = {}
    for n in range(COPIES):
        for path, item in paths.items():
            renamed = copy.deepcopy(item)
            for operation in renamed.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    operation["operationId"] = f"Copy{n}Controller_{operation['operationId'].rsplit('_', 1)[-1]}"
            big["paths"][f"/copy{n}{path}"] = renamed
    return big


def _kosmo(temp: Path, *args: str) -> tuple[float, str]:
    """Seconds for one `kosmo ...` command in a fresh process (this tree, a private home); its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KOSMO_INTEGRATIONS_PATH": str(temp / "out"),
           **{name: str(temp / "home" / name.lower()) for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")}}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kosmo_runtime", *args], capture_output=True, text=True,
                          cwd=temp, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"kosmo {' '.join(args)} failed:\n{done.stderr}")
    return seconds, done.stdout


def _round(temp: Path) -> dict[str, float]:
    """Seconds of `integrations new` from the JSON and from the YAML spec, then of `docs read` from the
    parsed copy and with the YAML parsed."""
    seconds: dict[str, float] = {}
    for form in ("json", "yaml"):
        seconds[form], _ = _kosmo(temp, "integrations", "new", "big", "--from-openapi", f"big.{form}", "--out", "out",
                                  "--force", "--base-url", "https://api.cal.com", "--auth", "bearer")
    seconds["read"], _ = _kosmo(temp, "docs", "read", "integrations.big")
    (temp / "out" / "big" / PARSED_COPY).unlink()  # as after an edit: the YAML itself is parsed
    seconds["edited"], _ = _kosmo(temp, "docs", "read", "integrations.big")
    return seconds


def _made(temp: Path) -> tuple[int, int]:
    """Functions written and operations refused, as `kosmo integrations new` says them."""
    _, said = _kosmo(temp, "integrations", "new", "big", "--from-openapi", "big.json", "--out", "out", "--force",
                     "--base-url", "https://api.cal.com", "--auth", "bearer")
    found = re.search(r"\((\d+) functions\)(?:.*?; (\d+) operations left out)?", said)
    if found is None:
        raise RuntimeError(f"unexpected output of kosmo integrations new: {said!r}")
    return int(found[1]), int(found[2] or 0)


def bench_openapi() -> Figure:
    """`kosmo integrations new` on a 3,264-operation spec written as YAML (the slower form to parse; JSON beside
    it), then `kosmo docs read` of the integration (loaded with the manifest checks), each a fresh process;
    side by side, the read with the written YAML parsed instead of its parsed copy (an edited manifest).
    Medians of three rounds."""
    spec = _large_spec()
    operations = sum(1 for item in spec["paths"].values() for m in ("get", "post", "put", "patch", "delete") if m in item)
    with tempfile.TemporaryDirectory(prefix="kosmo-bench-") as name:
        temp = Path(name)
        (temp / "big.json").write_text(json.dumps(spec), encoding="utf-8")
        (temp / "big.yaml").write_text(yaml.dump(spec, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                                                 sort_keys=False, allow_unicode=True), encoding="utf-8")
        del spec
        functions, refused = _made(temp)
        rounds = [_round(temp) for _ in range(ROUNDS)]
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    seconds = median["yaml"] + median["read"]
    return Figure(f"openapi: {operations:,} operations → integration", "s", seconds, "target", TARGET_SECONDS,
                  f"≤ {TARGET_SECONDS:g} s", seconds <= TARGET_SECONDS,
                  note=f"{functions:,} functions, {refused} operations refused with a reason; the command "
                       f"{median['yaml']:.2f} s from the spec as YAML ({median['json']:.2f} s from JSON), then "
                       f"kosmo docs read {median['read']:.2f} s (from the generator's parsed copy), "
                       f"{median['edited']:.2f} s when the YAML is parsed instead (an edited manifest)")


BENCHMARKS = {"openapi": bench_openapi}
