"""Integration discovery (folders, entry points, lazy loading) and the docs served to scripts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kosmo_runtime import AccountsConfig, InvalidArgument, NotFound, Runtime, _discovery
from kosmo_runtime._discovery import Catalog
from kosmo_runtime._docs import MAX_QUERY_BYTES, MAX_SEARCH_RESULTS, Docs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "integrations"


class _EntryPoint:
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value


def test_builtin_integrations_are_found_by_either_spelling():
    catalog = Catalog()
    assert catalog.find("goto_webinar") is catalog.find("goto-webinar")
    assert catalog.find("goto-webinar").manifest.id == "goto-webinar"
    assert catalog.find("no-such-thing") is None


def test_finding_one_integration_loads_only_its_manifest():
    catalog = Catalog()
    catalog.find("whereby")
    assert set(catalog._loaded) == {"whereby"}


def test_entry_point_integrations_are_discovered(tmp_path, monkeypatch):
    package = tmp_path / "kosmo_thirdparty_notes"
    shutil.copytree(FIXTURES / "test_notes", package / "test_notes")
    (package / "__init__.py").write_text("")
    (package / "test_notes" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_discovery, "entry_points",
                        lambda group: [_EntryPoint("test-notes", "kosmo_thirdparty_notes.test_notes")]
                        if group == _discovery.ENTRY_POINT_GROUP else [])
    catalog = Catalog()
    assert "test-notes" in catalog.names()
    loaded = catalog.find("test_notes")
    assert loaded.module == "kosmo_thirdparty_notes.test_notes"
    assert callable(loaded.handler("list_notes"))


def test_entry_points_are_not_read_for_names_found_in_folders(monkeypatch):
    def refuse(group):
        raise AssertionError("entry points read for a built-in name")

    monkeypatch.setattr(_discovery, "entry_points", refuse)
    assert Catalog().find("agora") is not None


def test_folder_must_match_manifest_id(tmp_path):
    shutil.copytree(FIXTURES / "test_notes", tmp_path / "test_notes")
    (tmp_path / "test_notes").rename(tmp_path / "other_name")
    text = (tmp_path / "other_name" / "manifest.yaml").read_text().replace("id: test-notes", "id: other-name-x")
    (tmp_path / "other_name" / "manifest.yaml").write_text(text)
    from kosmo_runtime import ManifestError

    with pytest.raises(ManifestError, match="does not match manifest id"):
        Catalog([tmp_path], builtin=False).find("other-name")


@pytest.fixture(scope="module")
def docs():
    return Docs(Catalog())


def test_docs_list_pages_with_titles_and_summaries(docs):
    pages = {page["path"]: page for page in docs.list()}
    assert {"runtime", "integrations", "integrations.goto-webinar", "integrations.whereby",
            "integrations.cal-com", "integrations.agora"} <= set(pages)
    assert all(page["title"] and page["summary"] for page in pages.values())


@pytest.mark.parametrize("path", ["integrations.goto-webinar", "integrations.goto_webinar"])
def test_integration_page_by_either_spelling(docs, path):
    assert docs.read(path).startswith("# GoTo Webinar")


@pytest.mark.parametrize("path", ["integrations.goto-webinar.list_webinars",
                                  "integrations.goto_webinar.gotowebinar_list_webinars"])
def test_function_section_starts_with_its_generated_signature(docs, path):
    section = docs.read(path)
    assert section.startswith('```lua\napp.integrations["goto-webinar"].list_webinars({page?: integer = 0')
    assert "-- read" in section.splitlines()[1]
    assert "## list_webinars" in section and "## get_webinar" not in section


def test_unknown_doc_path_names_the_closest(docs):
    with pytest.raises(NotFound) as caught:
        docs.read("integrations.wherby")
    assert "integrations.whereby" in caught.value.message


def test_search_ranks_single_functions(docs):
    hits = docs.search("webinar sessions")
    assert hits[0]["path"] == "integrations.goto-webinar.list_sessions"
    assert hits == sorted(hits, key=lambda h: -h["score"])
    assert docs.search("cloud recording")[0]["path"].startswith("integrations.agora.")
    assert docs.search("") == []


def test_search_bounds_are_checked_in_one_place(docs):
    assert docs.search("x" * MAX_QUERY_BYTES) == []
    with pytest.raises(InvalidArgument) as caught:
        docs.search("é" * (MAX_QUERY_BYTES // 2 + 1))  # counted in UTF-8 bytes
    assert caught.value.param == "query" and f"{MAX_QUERY_BYTES + 2:,} bytes" in caught.value.message
    assert len(docs.search("webinar", MAX_SEARCH_RESULTS)) >= 1
    for limit in (0, MAX_SEARCH_RESULTS + 1, 2.0, True):
        with pytest.raises(InvalidArgument) as caught:
            docs.search("webinar", limit)
        assert caught.value.param == "limit", limit


def test_search_bounds_in_lua_name_the_line():
    with Runtime(accounts=AccountsConfig.empty(), store=":memory:") as runtime:
        too_long = runtime.run(f"local q = string.rep('a', {MAX_QUERY_BYTES + 1})\nlocal hits = lua_search_docs(q)\nreturn hits")
        bad_limit = runtime.run("local hits = lua_search_docs('webinar', 1.5)\nreturn hits")
        fine = runtime.run(f"return #lua_search_docs('webinar', {MAX_SEARCH_RESULTS})")
    assert (too_long.error.code, too_long.error.line) == ("invalid_argument", 2), too_long.error
    assert f"at most {MAX_QUERY_BYTES:,} are searched" in too_long.error.message
    assert bad_limit.error.code == "invalid_argument" and "limit must be a whole number" in bad_limit.error.message
    assert fine.ok and fine.result >= 1


def test_docs_functions_in_lua():
    with Runtime(accounts=AccountsConfig.empty(), store=":memory:") as runtime:
        result = runtime.run("""
            local pages = lua_list_docs()
            local hit = lua_search_docs("booking")[1]
            local text = lua_read_doc(hit.path)
            local ok, err = pcall(lua_read_doc, "nope")
            return #pages > 4, hit.path, text:sub(1, 6), ok, err.code
        """)
    assert result.ok, result.error
    many, path, start, ok, code = result.result
    assert many and path.startswith("integrations.cal-com.") and start == "```lua" and ok is False and code == "not_found"
