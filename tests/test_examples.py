"""Every Lua example of the product reference (../shared/seeds, skipped when absent) and of lua_docs/ runs in demo mode.

Exceptions, as the product reference has them: snippets calling the placeholder
``function_name``, and Cal.com's ``create_booking`` examples, which write
``end = "..."`` in a table (a Lua syntax error): for those the runtime must say how
to fix it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kosmo_runtime import Demo
from tests.support import NO_SEEDS, SEEDS, seed_params

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "lua_docs"
LUA_BLOCK = re.compile(r"```lua\n(.*?)```", re.S)
METADATA_BLOCK = re.compile(r"Metadata-Derived Lua Example\n\n(.*?)\n\nFunctions", re.S)


def _seed_examples() -> list[tuple[str, str]]:
    examples: list[tuple[str, str]] = []
    for seed in sorted(SEEDS.glob("*.txt")):
        text = seed.read_text(encoding="utf-8")
        markdown = text.split("Raw agent markdown", 1)[1]
        blocks = LUA_BLOCK.findall(markdown) + METADATA_BLOCK.findall(text)
        examples += [(f"{seed.stem}#{i}", block) for i, block in enumerate(blocks, start=1) if "function_name" not in block]
    return examples


def _doc_examples() -> list[tuple[str, str]]:
    examples = []
    for page in sorted(DOCS.rglob("*.md")):
        name = page.relative_to(DOCS).as_posix()
        examples += [(f"{name}#{i}", block) for i, block in enumerate(LUA_BLOCK.findall(page.read_text(encoding="utf-8")), start=1)]
    return examples


@pytest.fixture(scope="module")
def demo():
    with Demo() as running:
        yield running


@pytest.fixture(scope="module")
def runtime(demo):
    with demo.runtime() as rt:
        yield rt


@pytest.mark.skipif(not SEEDS.is_dir(), reason=NO_SEEDS)
def test_the_seeds_are_present():
    assert len(_seed_examples()) >= 30


@pytest.mark.parametrize("name,source", seed_params(_seed_examples()))
def test_seed_example_runs(runtime, name, source):
    result = runtime.run(source, name=f"{name}.lua")
    if re.search(r"^\s*end\s*=", source, re.M):
        assert result.error is not None and result.error.type == "LuaSyntaxError"
        assert '["end"]' in result.error.hint
        return
    assert result.ok, result.error and result.error.to_dict()
    if "print(" in source:
        assert result.output.strip()


@pytest.mark.parametrize("name,source", _doc_examples(), ids=[n for n, _ in _doc_examples()])
def test_doc_example_runs(runtime, name, source):
    result = runtime.run(source, name=f"{name}.lua")
    assert result.ok, result.error and result.error.to_dict()


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.lua")), ids=lambda p: p.name)
def test_example_scripts_run_in_demo_mode(runtime, script):
    result = runtime.run(script.read_text(encoding="utf-8"), name=script.name)
    assert result.ok, result.error and result.error.to_dict()
    assert result.output.strip() and result.result


def test_demo_script_dry_run_describes_its_writes(runtime):
    result = runtime.run((ROOT / "examples" / "demo.lua").read_text(encoding="utf-8"), dry_run=True)
    assert result.ok, result.error and result.error.to_dict()
    assert "would create a room (POST " in result.output
    assert result.result["rooms_created"] == 0
    assert all(call.dry_run for call in result.calls)
