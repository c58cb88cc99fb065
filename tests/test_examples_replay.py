"""Every example of tests/test_examples.py (the product reference's, skipped when ../shared/seeds is absent,
lua_docs/'s and examples/'s), recorded from the demo, replays the same with the simulators stopped.

All recordings are made first, in order, on one running demo; then the demo is stopped and all are
replayed in the same order on a fresh demo world (same seed data, servers closed), so that state a
handler keeps in the local store evolves the same way in both passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kosmo_runtime import Demo, RunResult
from tests.runtime.test_cassette import NoNetwork
from tests.support import NO_SEEDS, SEEDS
from tests.test_examples import ROOT, _doc_examples, _seed_examples


def _examples() -> list[tuple[str, str]]:
    scripts = [(path.name, path.read_text(encoding="utf-8")) for path in sorted((ROOT / "examples").glob("*.lua"))]
    return (_seed_examples() if SEEDS.is_dir() else []) + _doc_examples() + scripts


EXAMPLES = _examples()
#: Examples whose printed output follows a Lua table's key order, which differs between any two Lua states
#: (recorded or not): their output is compared as a multiset of characters.
UNORDERED_OUTPUT = {"runtime.md#7"}


def _summary(result: RunResult) -> dict[str, Any]:
    # parallel calls (app.parallel) are recorded in the order they end, which no run fixes: compared sorted
    return {"ok": result.ok, "result": json.dumps(result.result, sort_keys=True), "output": result.output,
            "error": result.error.to_dict() if result.error else None,
            "calls": sorted((c.integration, c.function, c.ok, c.error or "", c.status or 0, c.retries,
                             [(r["method"], r["path"], r.get("status") or 0) for r in c.requests]) for c in result.calls)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], dict[str, Any], int]]:
    """name -> (recorded summary, replayed summary, exchanges in the cassette)."""
    folder = tmp_path_factory.mktemp("cassettes")
    recorded: dict[str, dict[str, Any]] = {}
    with Demo() as demo, demo.runtime() as runtime:
        for index, (name, source) in enumerate(EXAMPLES):
            recorded[name] = _summary(runtime.run(source, name=f"{name}.lua", record=folder / f"{index}.json"))
    stopped = Demo()
    stopped.close()
    found = {}
    network = NoNetwork()
    with stopped.runtime(transport=network) as runtime:
        for index, (name, source) in enumerate(EXAMPLES):
            cassette = folder / f"{index}.json"
            replayed = _summary(runtime.run(source, name=f"{name}.lua", replay=cassette))
            exchanges = len(json.loads(cassette.read_text(encoding="utf-8"))["exchanges"])
            found[name] = (recorded[name], replayed, exchanges)
    assert network.reached == []
    return found


@pytest.mark.parametrize("name", [name for name, _ in EXAMPLES])
def test_example_replays_as_recorded(runs: dict[str, tuple[dict[str, Any], dict[str, Any], int]], name: str) -> None:
    recorded, replayed, exchanges = runs[name]
    if name in UNORDERED_OUTPUT:
        assert sorted(replayed.pop("output")) == sorted(recorded.pop("output"))
    assert replayed == recorded
    assert exchanges == sum(len(call[-1]) for call in recorded["calls"])


def test_examples_include_the_docs_and_scripts() -> None:
    names = [name for name, _ in EXAMPLES]
    assert "demo.lua" in names and any(name.endswith(".md#1") for name in names)


@pytest.mark.skipif(not SEEDS.is_dir(), reason=NO_SEEDS)
def test_examples_include_the_seeds() -> None:
    names = [name for name, _ in EXAMPLES]
    assert sum("#" in name and not name.split("#")[0].endswith(".md") for name in names) >= 30


def test_the_examples_make_requests() -> None:
    assert sum("app.integrations" in source for _, source in EXAMPLES) >= 10
    assert Path(ROOT / "examples" / "demo.lua").is_file()
