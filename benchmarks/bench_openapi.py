"""`kosmo integrations new --from-openapi` on a large real spec: seconds for thousands of operations."""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path

from common import ROOT, Figure

from kosmo_runtime._manifest import load_manifest
from kosmo_runtime._openapi import generate, load_spec, write_integration

TARGET_SECONDS = 5.0
COPIES = 12  # Cal.com's 272 operations, twelve times over (paths renamed): 3,264 operations


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


def bench_openapi() -> Figure:
    """Parse, map, write and load (with the manifest checks) an integration from a 3,264-operation spec."""
    spec = _large_spec()
    operations = sum(1 for item in spec["paths"].values() for m in ("get", "post", "put", "patch", "delete") if m in item)
    with tempfile.TemporaryDirectory(prefix="kosmo-bench-") as temp:
        source = Path(temp) / "big.json"
        source.write_text(json.dumps(spec))
        started = time.perf_counter()
        generated = generate(load_spec(source), "big", base_url="https://api.cal.com", auth="bearer")
        folder = write_integration(generated, Path(temp))
        loaded = load_manifest(folder, None)
        seconds = time.perf_counter() - started
    made = len(loaded.manifest.functions)
    return Figure(f"openapi: {operations:,} operations → integration", "s", seconds, "target", TARGET_SECONDS,
                  f"≤ {TARGET_SECONDS:g} s", seconds <= TARGET_SECONDS,
                  note=f"{made:,} functions, {len(generated.refused)} operations refused with a reason")


BENCHMARKS = {"openapi": bench_openapi}
