"""Regenerate ``reference.json`` (beside this file) from the product reference in ``../shared/seeds``.

The tests check the manifests against these facts (each function's full name, operation,
parameters with their types and required flags), so a clone alone carries them. Run it
again only when the product reference changes: ``python tests/data/make_reference.py``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE.parents[2] / "shared" / "seeds"
OUTPUT = HERE / "reference.json"
_BLOCK_START = re.compile(r"\n(?=\w+_\w+\n\n?.*\n\nOperation\n)")
_PARAM_ROW = re.compile(r"^(\w+) (\w+) (yes|no) ")


def seed_functions(text: str) -> dict[str, dict[str, object]]:
    """The functions one seed declares: full name -> operation and parameters."""
    functions: dict[str, dict[str, object]] = {}
    section = text.split("\nFunctions\n", 1)[1]
    for block in _BLOCK_START.split("\n" + section):
        lines = block.strip().splitlines()
        if "Operation" not in lines:
            continue
        params = {}
        if "ParameterTypeRequiredDescription" in lines:
            for line in lines[lines.index("ParameterTypeRequiredDescription") + 1:]:
                match = _PARAM_ROW.match(line)
                if match:
                    params[match.group(1)] = {"type": match.group(2), "required": match.group(3) == "yes"}
        functions[lines[0].strip()] = {"operation": lines[lines.index("Operation") + 1].split()[-1], "params": params}
    return functions


def main() -> int:
    if not SEEDS.is_dir():
        print(f"no product reference at {SEEDS}", file=sys.stderr)
        return 1
    reference = {seed.stem: seed_functions(seed.read_text(encoding="utf-8")) for seed in sorted(SEEDS.glob("*.txt"))}
    OUTPUT.write_text(json.dumps(reference, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT} ({sum(map(len, reference.values()))} functions from {len(reference)} seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
