"""LuaLS stubs: generated from the manifests, valid Lua, complete, and kept up to date."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lupa import lua54

from kosmo_runtime import AccountsConfig, Runtime
from kosmo_runtime._cli import main
from kosmo_runtime._discovery import Catalog
from kosmo_runtime._docs import Docs
from kosmo_runtime._manifest import Manifest
from kosmo_runtime._shapes import parse_returns
from kosmo_runtime._stubs import (
    MARKER,
    coverage,
    documented_stubs,
    generate_stubs,
    lua_type,
    runtime_stubs,
    sync_stubs,
)

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = ["agora", "cal-com", "goto-webinar", "whereby"]
DOCS = Docs(Catalog())
MANIFESTS = [DOCS.catalog.find(ident).manifest for ident in BUILTIN]
STUBS = documented_stubs(DOCS)


def _block(text: str, class_name: str) -> str:
    """The annotation lines of one ``---@class`` block."""
    match = re.search(rf"^---@class {re.escape(class_name)}(?::[^\n]*)?\n((?:---@field[^\n]*\n)*)", text, re.M)
    assert match, f"no class {class_name}"
    return match.group(1)


def test_committed_stubs_are_up_to_date():
    stale = sync_stubs(ROOT / "lua_docs" / "stubs", STUBS, check=True)
    assert stale == [], "run: kosmo docs sync"


def test_every_stub_file_loads_as_lua():
    assert set(STUBS) == {"kosmo.lua", *(f"integrations/{i.replace('-', '_')}.lua" for i in BUILTIN)}
    for name, text in STUBS.items():
        assert text.startswith("---@meta\n" + MARKER), name
        lua = lua54.LuaRuntime()
        lua.execute(text)  # compiles and runs: the declarations only define tables and empty functions


_NAME = r"[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*"
_PRIMARY = re.compile(rf'{_NAME}|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?')
_KEY = r'(?:[A-Za-z_]\w*|\["[^"]+"\]|\[string\])\??'
_TAGS = {
    "meta": re.compile(r"$"),
    "class": re.compile(rf"({_NAME})(?:: ({_NAME}))?$"),
    "alias": re.compile(rf"({_NAME}) (.+)$"),
    "field": re.compile(rf"{_KEY} (.+?)(?: # .+)?$"),
    "param": re.compile(r"[A-Za-z_]\w*\?? (.+?)(?: # .+)?$"),
    "return": re.compile(r"(.+?)(?: # .+)?$"),
    "generic": re.compile(r"[A-Z]\w*(?:: \w+)?$"),
}


def _luals_type(text: str) -> None:
    """Check ``text`` is a type in the subset of LuaLS's grammar the generator writes."""
    at = 0

    def union() -> None:
        nonlocal at
        postfix()
        while text.startswith(" | ", at):
            at += 3
            postfix()

    def postfix() -> None:
        nonlocal at
        primary()
        while text.startswith("[]", at):
            at += 2

    def primary() -> None:
        nonlocal at
        for opener, closer in (("table<", ">"), ("(", ")"), ("fun(", ")")):
            if text.startswith(opener, at):
                at += len(opener)
                if not (opener == "fun(" and text.startswith(")", at)):
                    union()
                    if opener == "table<":
                        assert text.startswith(", ", at), text
                        at += 2
                        union()
                assert text.startswith(closer, at), text
                at += len(closer)
                if opener == "fun(" and text.startswith(": ", at):
                    at += 2
                    union()
                return
        match = _PRIMARY.match(text, at)
        assert match, f"not a type at {at}: {text!r}"
        at = match.end()

    union()
    assert at == len(text), f"not a type: {text!r}"


def test_every_annotation_is_well_formed():
    for name, text in STUBS.items():
        for line in text.splitlines():
            tag = re.match(r"---@(\w+) ?(.*)$", line)
            if not tag:
                continue
            assert tag.group(1) in _TAGS, f"{name}: unknown tag in {line!r}"
            match = _TAGS[tag.group(1)].match(tag.group(2))
            assert match, f"{name}: malformed {line!r}"
            if tag.group(1) in ("field", "param", "return", "alias"):
                _luals_type(match.group(match.lastindex or 1))


@pytest.mark.parametrize("manifest", MANIFESTS, ids=BUILTIN)
def test_every_function_parameter_and_enum_appears(manifest: Manifest):
    local = manifest.id.replace("-", "_")
    text = STUBS[f"integrations/{local}.lua"]
    for name, spec in manifest.functions.items():
        optional = "" if any(p.required for p in spec.params.values()) else "?"
        for full in (name, manifest.full_name(name)):
            assert (f"---@param args{optional} kosmo.{local}.{name}.Args\n"
                    f"---@return kosmo.{local}.{name}.Result # ") in text
            assert f"\nfunction {local}.{full}(args) end\n" in text
        fields = _block(text, f"kosmo.{local}.{name}.Args")
        assert fields.count("---@field") == len(spec.params)
        for pname, param in spec.params.items():
            key = f'["{pname}"]' if pname in ("end", "function", "until") else pname
            line = next(line for line in fields.splitlines() if line.startswith(f"---@field {key}"))
            assert line.startswith(f"---@field {key}{'' if param.required else '?'} {lua_type(param)} # ")
            assert " ".join(param.description.split()) in line
            for value in [*(param.enum or ()), *(param.item_enum or ())]:
                assert f'"{value}"' in line.split(" # ")[0]
            if param.format:
                assert f"format {param.format}" in line


def test_parameter_types_are_luals_types():
    whereby = DOCS.catalog.find("whereby").manifest.functions["create_room"].params
    goto = DOCS.catalog.find("goto-webinar").manifest.functions["create_webinar"].params
    assert lua_type(whereby["room_mode"]) == '"normal" | "group"'
    assert lua_type(whereby["fields"]) == '("hostRoomUrl" | "viewerRoomUrl")[]'
    notes = Catalog([ROOT / "tests" / "fixtures" / "integrations"]).find("test-notes").manifest
    assert lua_type(notes.functions["create_note"].params["tags"]) == "string[]"
    assert lua_type(whereby["end_date"]) == "string"
    assert lua_type(goto["times"]) == "table<string, any>[]"


def test_result_shapes_become_classes_described_from_the_docs():
    text = STUBS["integrations/whereby.lua"]
    result = _block(text, "kosmo.whereby.list_rooms.Result")
    assert "---@field data table[] # The rooms" in result
    assert "---@field meta kosmo.whereby.list_rooms.Result.meta" in result
    assert "---@field nextCursor any # Cursor of the next page" in _block(text, "kosmo.whereby.list_rooms.Result.meta")
    created = _block(text, "kosmo.whereby.create_room.Result")
    assert "---@field hostRoomUrl? any" in created and "---@field roomName any" in created
    assert "---@field deleted true" in _block(text, "kosmo.whereby.delete_room.Result")
    agora = STUBS["integrations/agora.lua"]
    assert "---@field data kosmo.agora.project[]" in _block(agora, "kosmo.agora.list_projects.Result")
    assert "---@field vendor_key any" in _block(agora, "kosmo.agora.project")
    recording = _block(agora, "kosmo.agora.get_recording.Result")
    assert "---@field file_list? kosmo.agora.get_recording.Result.file_list.item[]" in recording
    assert "---@field [string] any" in _block(agora, "kosmo.agora.get_recording.Result.file_list.item")


def test_every_builtin_result_is_typed():
    figures = coverage(MANIFESTS)
    assert figures.functions == 28 and figures.typed_results == 28
    assert figures.parameters == sum(len(s.params) for m in MANIFESTS for s in m.functions.values())


def test_app_json_and_docs_functions_are_declared():
    text = STUBS["kosmo.lua"]
    integrations = _block(text, "kosmo.Integrations")
    for ident in BUILTIN:
        assert f"---@field {ident.replace('-', '_')} kosmo.{ident.replace('-', '_')}\n" in integrations
    assert '---@field ["goto-webinar"] kosmo.goto_webinar' in integrations
    assert '---@field ["cal-com"] kosmo.cal_com' in integrations
    for declaration in ("function app.parallel(branches, options) end", "function json.encode(value, options) end",
                        "function json.decode(text) end", "function json.array(t) end",
                        "function lua_list_docs() end", "function lua_search_docs(query, limit) end",
                        "function lua_read_doc(path) end"):
        assert declaration in text
    codes = re.search(r"---@alias kosmo.ErrorCode (.*)", text).group(1)
    for code in ("invalid_argument", "permission_denied", "outcome_unknown", "rate_limited", "internal_error"):
        assert f'"{code}"' in codes
    assert '---@field ["function"]? string' in _block(text, "kosmo.Error")


def test_every_configured_account_is_a_namespace(tmp_path):
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("integrations:\n  goto-webinar:\n    accounts:\n"
                        "      marketing: {access_token: a}\n      sales: {access_token: b}\n", encoding="utf-8")
    with Runtime(accounts=accounts, store=":memory:") as runtime:
        files = runtime_stubs(runtime)
    members = _block(files["integrations/goto_webinar.lua"], "kosmo.goto_webinar")
    assert "---@field default kosmo.goto_webinar.Account" in members
    assert "---@field marketing kosmo.goto_webinar.Account # account 'marketing'" in members
    assert "---@field sales kosmo.goto_webinar.Account" in members
    assert "---@field marketing" not in STUBS["integrations/goto_webinar.lua"]  # the committed copy: default only


def test_names_that_are_lua_keywords_are_quoted():
    manifest = Manifest.model_validate({
        "id": "odd-names", "name": "Odd", "category": "testing", "description": "Keywords as names.",
        "prefix": "odd", "auth": {"kind": "bearer", "token": "key"}, "credentials": {"key": {"description": "k"}},
        "settings": {"base_url": {"description": "root", "secret": False, "default": "https://odd.example"}},
        "allowed_hosts": ["odd.example"], "check": "end",
        "functions": {"end": {
            "description": "A function called end.", "operation": "read",
            "request": {"method": "GET", "path": "/x"},
            "params": {"end": {"type": "string", "description": "An end date"},
                       "level": {"type": "integer", "description": "A level", "enum": [1, 2]}},
            "returns": "{function, until = true, not a shape}"}},
    })
    files = generate_stubs([manifest], lambda ident: ["while"], lambda ident: "")
    text = files["integrations/odd_names.lua"]
    lua54.LuaRuntime().execute(text)
    assert 'odd_names["end"] = function(args) end' in text
    assert '---@field ["end"]? string # An end date' in text
    assert "---@field level? 1 | 2 # A level" in text
    assert '---@field ["while"] kosmo.odd_names.Account' in text
    assert "---@return table # {function, until = true, not a shape}" in text  # unreadable: kept as a note


@pytest.mark.parametrize(("text", "keys", "kind"), [
    ("{data = {room...}, meta = {nextCursor}, results, cursor}", ["data", "meta", "results", "cursor"], "object"),
    ("{a?: [b], c = {...}}", ["a", "c"], "object"),
    ("{x...}", [], "list"),
    ("webinar table (webinarKey, subject, ...)", ["webinarKey", "subject"], "object"),
    ("table", [], "table"),
    ("{unclosed", [], "table"),
])
def test_returns_notation(text, keys, kind):
    parsed = parse_returns(text)
    assert parsed.shape.kind == kind
    assert list(parsed.shape.keys) == keys
    if text in ("table", "{unclosed"):
        assert not parsed.typed and parsed.note == text


def test_returns_definitions_and_notes():
    parsed = parse_returns("{data: [project], count}; project = {id, name?}; each as the service gives it")
    assert parsed.shape.keys["data"].shape.item.text == "project"
    assert list(parsed.definitions["project"].keys) == ["id", "name"]
    assert parsed.definitions["project"].keys["name"].optional
    assert parsed.note == "each as the service gives it"
    noted = parse_returns("{webinarKey, recurrenceKey? (series), type}")
    assert noted.shape.keys["recurrenceKey"].optional and noted.shape.keys["recurrenceKey"].note == "series"


def test_cli_writes_stubs_and_removes_stale_ones(tmp_path, capsys):
    stale = tmp_path / "integrations" / "gone.lua"
    stale.parent.mkdir(parents=True)
    stale.write_text(f"---@meta\n{MARKER}\n", encoding="utf-8")
    mine = tmp_path / "mine.lua"
    mine.write_text("-- not generated\n", encoding="utf-8")
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("integrations:\n  whereby:\n    accounts:\n      work: {api_key: x}\n", encoding="utf-8")
    assert main(["stubs", "--out", str(tmp_path), "--accounts", str(accounts)]) == 0
    out = capsys.readouterr().out
    assert "28 of 28 results typed" in out and "workspace.library" in out
    assert not stale.exists() and mine.exists()
    assert "---@field work kosmo.whereby.Account" in (tmp_path / "integrations" / "whereby.lua").read_text()
    assert (tmp_path / "kosmo.lua").is_file()


def test_cli_names_an_unwritable_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["stubs", "--out", str(blocker / "stubs")])
    assert exited.value.code == 2
    assert f"cannot write the stubs to {blocker / 'stubs'}" in capsys.readouterr().err


def test_integration_page_starts_with_a_typed_quick_reference():
    page = DOCS.read("integrations.goto_webinar")
    reference = page.split("## Quick reference", 1)[1].split("```lua\n", 1)[1].split("```", 1)[0].splitlines()
    manifest = DOCS.catalog.find("goto-webinar").manifest
    assert reference[0] == 'local goto_webinar = app.integrations["goto-webinar"]'
    assert len(reference) == 1 + len(manifest.functions)
    for line, (name, spec) in zip(reference[1:], manifest.functions.items(), strict=True):
        assert line.startswith(f"goto_webinar.{name}({{") and line.endswith(f"-- {spec.operation}")
    assert "times: table<string, any>[]" in page
    assert page.index("## Quick reference") < page.index("## list_webinars")
    assert page.startswith("# GoTo Webinar\n\nRead and schedule webinars")
    whereby = DOCS.read("integrations.whereby")
    assert 'whereby.create_room({room_mode?: "normal" | "group", ' in whereby and "fields?: (\"hostRoomUrl\" | \"viewerRoomUrl\")[]" in whereby


def test_quick_reference_in_lua(tmp_path):
    with Runtime(accounts=AccountsConfig.empty(), store=":memory:") as runtime:
        result = runtime.run('return lua_read_doc("integrations.whereby"):match("## Quick reference") ~= nil')
    assert result.ok and result.result is True
