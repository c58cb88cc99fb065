"""One suite for every built-in integration: manifest, seed contract, docs, simulator, hooks."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from kosmo_runtime._discovery import Catalog
from kosmo_runtime._docs import Docs, sync_parameter_tables
from tests.support import reference

ROOT = Path(__file__).resolve().parents[1]
CATALOG = Catalog()
BUILTIN = ["agora", "cal-com", "goto-webinar", "whereby"]


def test_all_four_integrations_are_installed():
    assert set(BUILTIN) <= set(CATALOG.names())


@pytest.mark.parametrize("ident", BUILTIN)
def test_manifest_matches_the_product_reference(ident):
    manifest = CATALOG.find(ident).manifest
    expected = reference()[ident]
    assert len(expected) == 7
    assert {manifest.full_name(f) for f in manifest.functions} == set(expected)
    for short, spec in manifest.functions.items():
        seed = expected[manifest.full_name(short)]
        assert spec.operation == seed["operation"], short
        assert set(spec.params) == set(seed["params"]), short
        for name, param in spec.params.items():
            assert param.type == seed["params"][name]["type"], (short, name)
            assert param.required == seed["params"][name]["required"], (short, name)
        assert spec.upstream, f"{short}: say which upstream call(s) it makes"


@pytest.mark.parametrize("ident", BUILTIN)
def test_handlers_exist(ident):
    loaded = CATALOG.find(ident)
    for name, spec in loaded.manifest.functions.items():
        if spec.handler:
            assert callable(loaded.handler(name))


@pytest.mark.parametrize("ident", BUILTIN)
def test_docs_cover_exactly_the_functions_and_are_in_sync(ident):
    manifest = CATALOG.find(ident).manifest
    page = (ROOT / "lua_docs" / "integrations" / f"{ident}.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (\w+)\s*$", page, re.M)
    functions = [s for s in sections if s in manifest.functions or "_" in s]
    assert functions == list(manifest.functions), "one ## section per function, in manifest order"
    assert sync_parameter_tables(page, manifest) == page, "run: kosmo docs sync"
    for name, spec in manifest.functions.items():
        section = Docs(CATALOG).function_section(manifest, name)
        assert "```lua" in section.split("\n", 3)[-1], f"{name}: needs a Lua example"
        for param in spec.params:
            assert f"`{param}`" in section, (name, param)
    assert "## Multi-account usage" in page


@pytest.mark.parametrize("ident", BUILTIN)
def test_simulator_and_demo_accounts_fit_the_manifest(ident):
    loaded = CATALOG.find(ident)
    module = importlib.import_module(f"{loaded.module}.simulator")
    manifest = loaded.manifest
    allowed = set(manifest.credentials) | set(manifest.settings)
    assert "default" in module.DEMO_ACCOUNTS
    for fields in module.DEMO_ACCOUNTS.values():
        assert set(fields) <= allowed
        assert {n for n, f in manifest.credentials.items() if f.required} <= set(fields)


@pytest.mark.parametrize("ident", BUILTIN)
def test_manifest_declares_real_hosts(ident):
    manifest = CATALOG.find(ident).manifest
    base = manifest.settings["base_url"].default
    assert base.startswith("https://")
    from kosmo_runtime._http import check_base_url

    check_base_url(base, manifest, "default")
    assert manifest.rate_limit is not None and manifest.rate_limit.source
