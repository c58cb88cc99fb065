"""`kosmo integrations new --from-openapi` on a large real spec: seconds for thousands of operations."""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path

from common import ROOT, Figure

from kosmo_runtime._manifest import PARSED_COPY, load_manifest
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


def _pipeline(spec_text: str, temp: Path, parse_yaml: bool) -> tuple[float, int, int]:
    """Seconds to parse the spec, map it, write the integration and load it; functions made, refused."""
    source = temp / "big.json"
    source.write_text(spec_text)
    started = time.perf_counter()
    generated = generate(load_spec(source), "big", base_url="https://api.cal.com", auth="bearer")
    folder = write_integration(generated, temp, force=True)
    if parse_yaml:
        (folder / PARSED_COPY).unlink()  # as after an edit: the YAML itself is parsed
    loaded = load_manifest(folder, None)
    return time.perf_counter() - started, len(loaded.manifest.functions), len(generated.refused)


def bench_openapi() -> Figure:
    """Parse, map, write and load (with the manifest checks) an integration from a 3,264-operation spec;
    side by side, the same with the written YAML parsed instead of its parsed copy (an edited manifest)."""
    spec = _large_spec()
    operations = sum(1 for item in spec["paths"].values() for m in ("get", "post", "put", "patch", "delete") if m in item)
    text = json.dumps(spec)
    with tempfile.TemporaryDirectory(prefix="kosmo-bench-") as temp:
        seconds, made, refused = _pipeline(text, Path(temp), parse_yaml=False)
        parsing, _, _ = _pipeline(text, Path(temp), parse_yaml=True)
    return Figure(f"openapi: {operations:,} operations → integration", "s", seconds, "target", TARGET_SECONDS,
                  f"≤ {TARGET_SECONDS:g} s", seconds <= TARGET_SECONDS,
                  note=f"{made:,} functions, {refused} operations refused with a reason; loaded from the "
                       f"generator's parsed copy: {parsing:.2f} s when the YAML is parsed instead (an edited manifest)")


BENCHMARKS = {"openapi": bench_openapi}
