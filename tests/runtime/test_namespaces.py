"""The Lua surface of integrations (``app.integrations``), over the test-notes simulator."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kosmo_runtime import (
    AccountsConfig,
    IntegrationBug,
    NotFound,
    PermissionDenied,
    RunResult,
    Runtime,
    WriteRequest,
)
from kosmo_runtime._cli import main
from kosmo_runtime._simulate import LoopbackServer
from tests.fixtures.integrations.test_notes.simulator import KEY, NotesSimulator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "integrations"
OTHER_KEY = "other-notes-key-456"
LITERAL = "literal-notes-key-789"

ACCOUNTS = """\
version: 1
integrations:
  test-notes:
    default: main
    accounts:
      main:
        api_key: ${NOTES_MAIN_KEY}
      other:
        api_key: ${NOTES_OTHER_KEY}
      readonly:
        api_key: ${NOTES_MAIN_KEY}
        writes: deny
      careful:
        api_key: ${NOTES_MAIN_KEY}
        writes: ask
      unset:
        api_key: ${NOTES_UNSET_KEY}
      literal:
        api_key: LITERAL_VALUE
""".replace("LITERAL_VALUE", LITERAL)
ENV = {"NOTES_MAIN_KEY": KEY, "NOTES_OTHER_KEY": OTHER_KEY}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KOSMO_ACCOUNTS", raising=False)
    monkeypatch.delenv("KOSMO_INTEGRATIONS_PATH", raising=False)
    monkeypatch.delenv("KOSMO_AUDIT_LOG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture
def sim() -> NotesSimulator:
    return NotesSimulator([KEY, OTHER_KEY])


def make_runtime(sim: NotesSimulator, text: str = ACCOUNTS, paths: list[Path] | None = None, **kwargs: Any) -> Runtime:
    probe = Runtime(integration_paths=paths or [FIXTURES], store=":memory:", accounts=AccountsConfig.empty())
    config = AccountsConfig.parse(text, "accounts.yaml", probe._manifest_for, probe.catalog.names, environ=dict(ENV))
    probe.close()
    return Runtime(integration_paths=paths or [FIXTURES], transport=sim.transport(), store=":memory:",
                   accounts=config, **kwargs)


@pytest.fixture
def rt(sim: NotesSimulator) -> Runtime:
    runtime = make_runtime(sim)
    yield runtime
    runtime.close()


def ok(result: RunResult) -> Any:
    assert result.ok, result.error and result.error.to_dict()
    return result.result


def auth_headers(sim: NotesSimulator) -> list[str | None]:
    return [r.headers.get("authorization") for r in sim.requests]


# A script that calls `body` under pcall and returns tostring(err) and the error table.
CATCH = """\
local ok, err = pcall(function()
  local value = {body}
  return value
end)
assert(not ok, "expected an error")
return {{text = tostring(err), err = err, kind = type(err)}}
"""


def caught(rt: Runtime, body: str) -> tuple[str, dict[str, Any]]:
    data = ok(rt.run(CATCH.format(body=body)))
    assert data["kind"] == "table"
    return data["text"], data["err"]


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------


def test_dash_and_underscore_name_the_same_namespace(rt: Runtime) -> None:
    assert ok(rt.run('return app.integrations["test-notes"] == app.integrations.test_notes')) is True
    assert ok(rt.run('return rawequal(app.integrations["test-notes"], app.integrations["test_notes"])')) is True
    assert ok(rt.run("return tostring(app.integrations.test_notes)")) == "integration test-notes"


def test_short_and_full_function_names_are_the_same_function(rt: Runtime) -> None:
    assert ok(rt.run("""
        local n = app.integrations.test_notes
        return {n.list_notes == n.notes_list_notes, n.main.get_note == n.main.notes_get_note,
                type(n.list_notes)}
    """)) == [True, True, "function"]


def test_empty_table_and_no_argument_both_work(rt: Runtime, sim: NotesSimulator) -> None:
    result = ok(rt.run("""
        local n = app.integrations.test_notes
        return {n.list_notes{}.count, n.list_notes().count, n.list_notes({}).count, n.whoami().name}
    """))
    assert result == [2, 2, 2, "Tess"]
    assert [str(r.url) for r in sim.requests] == ["https://api.notes.example/v1/notes?limit=10"] * 3 + [
        "https://api.notes.example/v1/me?team=core"]


def test_arguments_reach_the_service(rt: Runtime, sim: NotesSimulator) -> None:
    result = ok(rt.run('return app.integrations.test_notes.list_notes{limit = 1, tag = "home"}'))
    assert result == {"notes": [{"id": "1", "text": "buy milk", "tags": ["home"]}], "count": 1}
    assert str(sim.requests[-1].url) == "https://api.notes.example/v1/notes?limit=1&tag=home"
    assert ok(rt.run('return app.integrations.test_notes.get_note{id = "2"}')) == {
        "note": {"id": "2", "text": "ship release", "tags": ["work"]}}


def test_default_and_named_accounts_use_their_own_credentials(rt: Runtime, sim: NotesSimulator) -> None:
    result = ok(rt.run("""
        local n = app.integrations.test_notes
        n.list_notes{}
        n.default.list_notes{}
        n.main.list_notes{}
        n.other.list_notes{}
        return {n.default == n.main, n.other == n.main, tostring(n.other), n.default.list_notes == n.list_notes}
    """))
    assert result == [False, False, "integration test-notes.other", False]
    assert auth_headers(sim) == [f"Bearer {KEY}"] * 3 + [f"Bearer {OTHER_KEY}"]


def test_calls_record_the_resolved_account(rt: Runtime) -> None:
    result = rt.run("""
        local n = app.integrations.test_notes
        n.list_notes{}
        n.default.list_notes{}
        n.other.list_notes{}
    """)
    assert result.ok
    assert [c.account for c in result.calls] == ["main", "main", "other"]


def test_account_named_default_is_the_plain_namespace(sim: NotesSimulator) -> None:
    text = textwrap.dedent("""\
        integrations:
          test-notes:
            accounts:
              default: {api_key: "${NOTES_OTHER_KEY}"}
              main: {api_key: "${NOTES_MAIN_KEY}"}
        """)
    with make_runtime(sim, text) as rt:
        ok(rt.run("local n = app.integrations.test_notes n.list_notes{} n.default.list_notes{} n.main.list_notes{}"))
    assert auth_headers(sim) == [f"Bearer {OTHER_KEY}", f"Bearer {OTHER_KEY}", f"Bearer {KEY}"]


def test_several_accounts_without_default_is_an_account_error(sim: NotesSimulator) -> None:
    text = 'integrations:\n  test-notes:\n    accounts:\n      a: {api_key: "${NOTES_MAIN_KEY}"}\n      b: {api_key: x}\n'
    with make_runtime(sim, text) as rt:
        text_, err = caught(rt, "app.integrations.test_notes.list_notes{}")
        assert err["type"] == "AccountError" and err["code"] == "account_error"
        assert text_ == "script.lua:2: test-notes has several accounts and none is the default"
        assert ok(rt.run("return app.integrations.test_notes.a.list_notes{}.count")) == 2
    assert sim.requests and len(sim.requests) == 1


# --------------------------------------------------------------------------------------------
# unknown names, wrong calls
# --------------------------------------------------------------------------------------------


def test_unknown_integration(rt: Runtime) -> None:
    text, err = caught(rt, "app.integrations.test_notse")
    assert err["type"] == "NotFound" and err["code"] == "not_found"
    assert err["message"] == "unknown integration 'test_notse'; did you mean 'test-notes'?"
    assert err["candidates"][0] == "test-notes"
    assert "test-notes" in err["hint"]
    assert text == "script.lua:2: " + err["message"]


def test_unknown_function_on_integration(rt: Runtime) -> None:
    _, err = caught(rt, "app.integrations.test_notes.list_note")
    assert err["type"] == "NotFound"
    assert err["message"] == "unknown function or account 'list_note' on test-notes; did you mean 'list_notes'?"
    assert err["candidates"][0] == "list_notes"
    assert err["hint"].startswith("test-notes has: list_notes, get_note, create_note, whoami, notes_list_notes")
    assert "main" in err["hint"] and "other" in err["hint"]


def test_unknown_function_on_account(rt: Runtime) -> None:
    _, err = caught(rt, "app.integrations.test_notes.other.get_nots")
    assert err["type"] == "NotFound"
    assert err["message"] == "unknown function 'get_nots' on test-notes.other; did you mean 'get_note'?"
    assert err["candidates"][0] == "get_note"
    # an account namespace has functions only (no nested accounts)
    _, err = caught(rt, "app.integrations.test_notes.other.main")
    assert err["message"].startswith("unknown function 'main' on test-notes.other")


def test_unknown_account(rt: Runtime) -> None:
    _, err = caught(rt, "app.integrations.test_notes.othre")
    assert err["type"] == "NotFound"
    assert err["message"] == "unknown function or account 'othre' on test-notes; did you mean 'other'?"
    assert err["candidates"][0] == "other"


def test_unknown_account_through_call(rt: Runtime) -> None:
    result = rt.call("test-notes.list_notes", {}, account="othre")
    assert isinstance(result.error, NotFound)
    assert result.error.message == "test-notes has no account named 'othre'"
    assert "did you mean 'other'?" in result.error.hint
    assert "other" in result.error.candidates


def test_colon_call_is_a_clear_error(rt: Runtime) -> None:
    text, err = caught(rt, "app.integrations.test_notes:list_notes{}")
    assert err["type"] == "InvalidArgument"
    assert err["message"] == "test-notes.list_notes: call it with a dot, not a colon: test-notes.list_notes{...}"
    assert err["hint"] == "write app.integrations.x.fn{...} or fn({...}), never x:fn{...}"
    assert text == "script.lua:2: " + err["message"]
    _, err = caught(rt, "app.integrations.test_notes.other:list_notes()")
    assert "call it with a dot, not a colon" in err["message"]


@pytest.mark.parametrize(("arg", "kind"), [("5", "number"), ('"limit=1"', "string"), ("true", "boolean")])
def test_non_table_argument(rt: Runtime, arg: str, kind: str) -> None:
    _, err = caught(rt, f"app.integrations.test_notes.list_notes({arg})")
    assert err["type"] == "InvalidArgument"
    assert err["message"] == ("test-notes.list_notes takes one table of named arguments, "
                              f"e.g. test-notes.list_notes{{name = value}}; got a {kind}")


def test_two_arguments_and_a_list_argument(rt: Runtime, sim: NotesSimulator) -> None:
    _, err = caught(rt, "app.integrations.test_notes.list_notes({}, {})")
    assert err["message"].startswith("test-notes.list_notes takes one table of named arguments")
    _, err = caught(rt, "app.integrations.test_notes.list_notes({1, 2})")
    assert err["type"] == "InvalidArgument"
    assert err["message"] == "test-notes.list_notes takes named arguments, got a list"
    assert sim.requests == []


# --------------------------------------------------------------------------------------------
# validation errors: one case per rule
# --------------------------------------------------------------------------------------------

VALIDATION = [
    # (call, function, param, message after "test-notes.<function>: ", extra fields)
    ("list_notes{limt = 1}", "list_notes", "limt", "unknown parameter 'limt' (did you mean 'limit'?)",
     {"hint": "parameters of test-notes.list_notes: limit, tag"}),
    ("get_note{}", "get_note", "id", "missing required parameter 'id' (string: The note id)",
     {"expected": "string", "hint": 'call test-notes.get_note{id = "...", ...}'}),
    ("get_note{id = 2}", "get_note", "id", "parameter 'id' must be a string, got integer 2",
     {"expected": "string", "got": "integer"}),
    ("list_notes{limit = '3'}", "list_notes", "limit", "parameter 'limit' must be an integer, got string '3'",
     {"expected": "integer", "got": "string"}),
    ("list_notes{limit = 1.5}", "list_notes", "limit", "parameter 'limit' must be an integer, got number 1.5",
     {"expected": "integer", "got": "number"}),
    ("list_notes{tag = 'wrk'}", "list_notes", "tag",
     "parameter 'tag' must be one of work, home, misc; got 'wrk' (did you mean 'work'?)", {"got": "'wrk'"}),
    ("list_notes{limit = 0}", "list_notes", "limit", "parameter 'limit' must be at least 1, got 0",
     {"expected": "at least 1", "got": "0"}),
    ("list_notes{limit = 101}", "list_notes", "limit", "parameter 'limit' must be at most 100, got 101",
     {"expected": "at most 100", "got": "101"}),
    ("create_note{text = string.rep('x', 201)}", "create_note", "text",
     "parameter 'text' must be at most 200 long, got of length 201", {"expected": "at most 200 long"}),
    ("create_note{text = 'a', tags = {'ok', 7}}", "create_note", "tags", "tags[2] must be a string, got integer",
     {"expected": "array of string", "got": "integer"}),
    ("create_note{text = 'a', tags = 'work'}", "create_note", "tags", "parameter 'tags' must be an array, got string 'work'",
     {"expected": "array"}),
]


@pytest.mark.parametrize(("call", "function", "param", "message", "extra"), VALIDATION,
                         ids=[v[0] for v in VALIDATION])
def test_validation_error(rt: Runtime, sim: NotesSimulator, call: str, function: str, param: str, message: str,
                          extra: dict[str, Any]) -> None:
    text, err = caught(rt, f"app.integrations.test_notes.{call}")
    full = f"test-notes.{function}: {message}"
    assert err["type"] == "InvalidArgument"
    assert err["code"] == "invalid_argument"
    assert err["message"] == full
    assert err["param"] == param
    assert err["retryable"] is False
    assert err["script"] == "script.lua" and err["line"] == 2
    assert text == f"script.lua:2: {full}"
    assert "\n" not in text
    for key, value in extra.items():
        assert err[key] == value, key
    assert sim.requests == []  # nothing was sent


def test_validation_error_can_be_branched_on_in_lua(rt: Runtime) -> None:
    assert ok(rt.run("""
        local ok, err = pcall(app.integrations.test_notes.list_notes, {limit = 500})
        if not ok and err.code == "invalid_argument" and err.param == "limit" then
          return app.integrations.test_notes.list_notes{limit = 1}.count
        end
        return "not branched"
    """)) == 1


@pytest.mark.parametrize("call", ["list_notes{limt = 1}", "get_note{}", "list_notes{limit = 0}", "list_notes(5)"])
def test_argument_errors_carry_integration_and_function_fields(rt: Runtime, call: str) -> None:
    _, err = caught(rt, f"app.integrations.test_notes.{call}")
    assert err["integration"] == "test-notes"
    assert err["function"] == call.split("{")[0].split("(")[0]


def test_error_from_a_tail_call_names_the_script_line(rt: Runtime) -> None:
    result = rt.run("local n = app.integrations.test_notes\nreturn n.get_note{}")
    assert result.error.type == "InvalidArgument"
    assert (result.error.script, result.error.line) == ("script.lua", 2)


def test_uncaught_call_error_ends_the_run(rt: Runtime) -> None:
    result = rt.run("local n = app.integrations.test_notes\nlocal x = n.get_note{}\nreturn x")
    assert not result.ok and result.result is None
    error = result.error
    assert error.type == "InvalidArgument"
    assert (error.script, error.line) == ("script.lua", 2)
    assert error.message == "test-notes.get_note: missing required parameter 'id' (string: The note id)"
    assert "script.lua:2: in main chunk" in error.traceback


# --------------------------------------------------------------------------------------------
# upstream errors
# --------------------------------------------------------------------------------------------


def test_http_404_is_upstream_not_found(rt: Runtime) -> None:
    text, err = caught(rt, 'app.integrations.test_notes.get_note{id = "99"}')
    assert err["type"] == "UpstreamNotFound" and err["code"] == "upstream_not_found"
    assert err["status"] == 404 and err["service_code"] == "not_found"
    assert err["message"] == "test-notes.get_note: Test Notes answered HTTP 404 Not Found: note 99 not found"
    assert (err["integration"], err["function"], err["account"]) == ("test-notes", "get_note", "main")
    assert err["retryable"] is False
    assert text == "script.lua:2: " + err["message"]


def test_http_401_is_auth_failed(rt: Runtime) -> None:
    _text, err = caught(rt, "app.integrations.test_notes.literal.list_notes{}")
    assert err["type"] == "AuthFailed" and err["code"] == "auth_failed"
    assert err["status"] == 401 and err["service_code"] == "unauthorized"
    assert err["message"] == "test-notes.list_notes: Test Notes answered HTTP 401 Unauthorized: invalid api key"
    assert err["account"] == "literal"
    assert "credentials" in err["hint"]


def test_upstream_errors_can_be_branched_on(rt: Runtime) -> None:
    assert ok(rt.run("""
        local ok, err = pcall(app.integrations.test_notes.get_note, {id = "404"})
        if err.status == 404 and err.type == "UpstreamNotFound" and not err.retryable then return "missing" end
        return "other"
    """)) == "missing"


def test_missing_environment_variable_breaks_only_that_account(rt: Runtime, sim: NotesSimulator) -> None:
    _, err = caught(rt, "app.integrations.test_notes.unset.list_notes{}")
    assert err["type"] == "AccountError"
    assert "NOTES_UNSET_KEY" in err["message"] and "test-notes.unset" in err["message"]
    assert ok(rt.run("return app.integrations.test_notes.list_notes{}.count")) == 2


# --------------------------------------------------------------------------------------------
# pairs, read-only
# --------------------------------------------------------------------------------------------


def test_pairs_lists_functions_and_accounts(rt: Runtime) -> None:
    result = ok(rt.run("""
        local names, kinds = {}, {}
        for name, value in pairs(app.integrations.test_notes) do
          names[#names + 1] = name
          kinds[name] = type(value)
        end
        local account_names = {}
        for name in pairs(app.integrations.test_notes.other) do account_names[#account_names + 1] = name end
        local integrations = {}
        for name in pairs(app.integrations) do integrations[#integrations + 1] = name end
        return {names = names, kinds = kinds, account = account_names, integrations = integrations}
    """))
    assert result["names"] == ["list_notes", "get_note", "create_note", "whoami",
                               "default", "main", "other", "readonly", "careful", "unset", "literal"]
    assert {k: v for k, v in result["kinds"].items()} == {
        **{f: "function" for f in ("list_notes", "get_note", "create_note", "whoami")},
        **{a: "table" for a in ("default", "main", "other", "readonly", "careful", "unset", "literal")}}
    assert result["account"] == ["list_notes", "get_note", "create_note", "whoami"]
    assert "test-notes" in result["integrations"]


@pytest.mark.parametrize(("code", "message"), [
    ("app.integrations.test_notes.list_notes = nil", "test-notes is read-only (cannot set 'list_notes')"),
    ("app.integrations.test_notes.extra = 1", "test-notes is read-only (cannot set 'extra')"),
    ("app.integrations.test_notes.other.list_notes = print", "test-notes.other is read-only (cannot set 'list_notes')"),
    ("app.integrations.mine = {}", "app.integrations is read-only (cannot set 'mine')"),
    ("app.integrations = {}", "app is read-only (cannot set 'integrations')"),
])
def test_namespaces_are_read_only(rt: Runtime, code: str, message: str) -> None:
    result = rt.run(code)
    assert not result.ok
    assert result.error.type == "LuaRuntimeError"
    assert result.error.message == f"script.lua:1: {message}"


def test_namespace_metatables_are_locked(rt: Runtime) -> None:
    assert ok(rt.run("""
        local n = app.integrations.test_notes
        local ok1 = pcall(setmetatable, n, {})
        local ok2 = pcall(setmetatable, app.integrations, {})
        return {getmetatable(n), getmetatable(app.integrations), ok1, ok2, type(n.list_notes)}
    """)) == ["locked", "locked", False, False, "function"]


# --------------------------------------------------------------------------------------------
# call records
# --------------------------------------------------------------------------------------------


def test_calls_record_what_happened_without_argument_values(rt: Runtime) -> None:
    result = rt.run("""
        local n = app.integrations.test_notes
        n.create_note{text = "unique-argument-value-xyz", tags = {"unique-tag-value-abc"}}
        pcall(n.get_note, {id = "unique-missing-id-987"})
        pcall(n.list_notes, {limit = 0})
        return n.list_notes{tag = "home"}.count
    """)
    assert ok(result) == 1
    records = [c.to_dict() for c in result.calls]
    assert [(c["integration"], c["function"], c["operation"], c["ok"], c.get("error"), c.get("status"))
            for c in records] == [
        ("test-notes", "create_note", "write", True, None, 201),
        ("test-notes", "get_note", "read", False, "upstream_not_found", 404),
        ("test-notes", "list_notes", "read", False, "invalid_argument", None),
        ("test-notes", "list_notes", "read", True, None, 200),
    ]
    assert [c["account"] for c in records][:2] == ["main", "main"]
    assert all(isinstance(c["duration"], float) and c["duration"] >= 0 for c in records)
    assert all(c["dry_run"] is False for c in records)
    dumped = json.dumps(result.to_dict())
    for value in ("unique-argument-value-xyz", "unique-tag-value-abc", "home"):
        assert value not in json.dumps(records)
    assert "unique-argument-value-xyz" not in dumped
    assert set(records[0]) <= {"integration", "function", "account", "operation", "duration", "ok", "error",
                               "status", "retries", "dry_run", "run_id", "requests"}
    # the HTTP requests made: method, path (no query), status, duration
    assert [(r["method"], r["path"], r.get("status")) for r in records[0]["requests"]] == [("POST", "/v1/notes", 201)]
    assert records[2]["requests"] == []
    assert len({c["run_id"] for c in records}) == 1


def test_calls_record_request_paths_but_never_query_strings(rt: Runtime) -> None:
    # Paths are recorded by design (the audit trail names method and path); query strings are not.
    result = rt.run('app.integrations.test_notes.list_notes{limit = 3, tag = "work"}')
    assert result.ok and result.calls[0].requests[0]["path"] == "/v1/notes"
    assert "tag=" not in json.dumps(result.to_dict()["calls"])


def test_failed_call_records_the_resolved_default_account(rt: Runtime) -> None:
    result = rt.run("pcall(app.integrations.test_notes.list_notes, {limit = 0})")
    assert result.ok
    assert [c.account for c in result.calls] == ["main"]


# --------------------------------------------------------------------------------------------
# writes
# --------------------------------------------------------------------------------------------

WRITE = 'return app.integrations.test_notes.{account}create_note{{text = "hello"}}'


def posts(sim: NotesSimulator) -> list[Any]:
    return [r for r in sim.requests if r.method == "POST"]


def test_write_is_sent_when_allowed(rt: Runtime, sim: NotesSimulator) -> None:
    assert ok(rt.run(WRITE.format(account=""))) == {"note": {"id": "3", "text": "hello", "tags": []}}
    assert len(posts(sim)) == 1
    assert json.loads(posts(sim)[0].content) == {"text": "hello", "tags": []}


def test_account_with_writes_deny(rt: Runtime, sim: NotesSimulator) -> None:
    _text, err = caught(rt, 'app.integrations.test_notes.readonly.create_note{text = "hello"}')
    assert err["type"] == "PermissionDenied" and err["code"] == "permission_denied"
    assert err["message"] == "test-notes.create_note is a write and account 'readonly' has writes: deny"
    assert (err["account"], err["operation"]) == ("readonly", "write")
    # reads on that account still work
    assert ok(rt.run("return app.integrations.test_notes.readonly.list_notes{}.count")) == 2
    assert posts(sim) == []


def test_read_only_run(rt: Runtime, sim: NotesSimulator) -> None:
    result = rt.run(WRITE.format(account=""), read_only=True)
    assert isinstance(result.error, PermissionDenied)
    assert result.error.message == "test-notes.create_note is a write and this run is read-only"
    assert "--read-only" in result.error.hint
    assert ok(rt.run("return app.integrations.test_notes.list_notes{}.count", read_only=True)) == 2
    assert posts(sim) == []


def test_run_writes_deny_overrides_allowing_account(rt: Runtime, sim: NotesSimulator) -> None:
    result = rt.run(WRITE.format(account="other."), writes="deny")
    assert isinstance(result.error, PermissionDenied)
    assert posts(sim) == []


def test_ask_with_approver_that_approves(rt: Runtime, sim: NotesSimulator) -> None:
    asked: list[WriteRequest] = []

    def approve(request: WriteRequest) -> bool:
        asked.append(request)
        return True

    assert ok(rt.run(WRITE.format(account=""), writes="ask", approve=approve))["note"]["text"] == "hello"
    assert asked == [WriteRequest("test-notes", "create_note", "main", {"text": "hello"})]
    assert asked[0].describe() == "test-notes.create_note on account 'main' with {'text': 'hello'}"
    assert len(posts(sim)) == 1


def test_ask_with_approver_that_declines(rt: Runtime, sim: NotesSimulator) -> None:
    result = rt.run(WRITE.format(account=""), writes="ask", approve=lambda request: False)
    assert isinstance(result.error, PermissionDenied)
    assert result.error.message == "test-notes.create_note was not approved"
    assert result.error.hint == "the write was declined; nothing was sent"
    assert posts(sim) == []


def test_ask_without_approver_explains_nobody_can_approve(rt: Runtime, sim: NotesSimulator) -> None:
    result = rt.run(WRITE.format(account=""), writes="ask")
    assert isinstance(result.error, PermissionDenied)
    assert result.error.message == ("test-notes.create_note is a write that needs approval, and nobody can "
                                    "approve it here (no terminal, no approver)")
    assert "approve=" in result.error.hint
    # the same through an account with writes: ask
    result = rt.run(WRITE.format(account="careful."))
    assert isinstance(result.error, PermissionDenied)
    assert "nobody can approve it" in result.error.message
    assert posts(sim) == []


def test_runtime_level_approver_and_policy(sim: NotesSimulator) -> None:
    with make_runtime(sim, writes="ask", approve=lambda request: request.account == "other") as rt:
        assert not rt.run(WRITE.format(account="")).ok
        assert ok(rt.run(WRITE.format(account="other.")))["note"]["text"] == "hello"
    assert [r.headers["authorization"] for r in posts(sim)] == [f"Bearer {OTHER_KEY}"]


def test_approver_is_not_asked_about_reads(rt: Runtime) -> None:
    def approve(request: WriteRequest) -> bool:
        raise AssertionError("asked about a read")

    assert ok(rt.run("return app.integrations.test_notes.list_notes{}.count", writes="ask", approve=approve)) == 2


def test_dry_run_describes_writes_and_runs_reads(rt: Runtime, sim: NotesSimulator) -> None:
    result = rt.run("""
        local n = app.integrations.test_notes
        local before = n.list_notes{}.count
        local w = n.create_note{text = "draft", tags = {"work"}}
        local after = n.list_notes{}.count
        return {before = before, write = w, after = after}
    """, dry_run=True)
    data = ok(result)
    assert data["before"] == 2 and data["after"] == 2
    assert data["write"]["dry_run"] is True
    assert data["write"]["would_send"] == {"method": "POST", "url": "https://api.notes.example/v1/notes",
                                           "query": {}, "body": {"text": "draft", "tags": ["work"]}}
    assert "not sent" in data["write"]["note"]
    assert [r.method for r in sim.requests] == ["GET", "GET"]
    assert [c.dry_run for c in result.calls] == [True, True, True]
    assert result.calls[1].function == "create_note" and result.calls[1].ok


def test_dry_run_does_not_ask_but_deny_still_refuses(rt: Runtime, sim: NotesSimulator) -> None:
    def approve(request: WriteRequest) -> bool:
        raise AssertionError("asked in a dry run")

    assert ok(rt.run(WRITE.format(account="careful."), dry_run=True, approve=approve))["dry_run"] is True
    result = rt.run(WRITE.format(account="readonly."), dry_run=True)
    assert isinstance(result.error, PermissionDenied)
    assert posts(sim) == []


# --------------------------------------------------------------------------------------------
# a broken handler
# --------------------------------------------------------------------------------------------


@pytest.fixture
def broken_paths(tmp_path: Path) -> list[Path]:
    root = tmp_path / "integrations"
    shutil.copytree(FIXTURES / "test_notes", root / "test_notes")
    manifest = root / "test_notes" / "manifest.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8")
                        + "  explode:\n"
                          "    description: Always fails inside its handler.\n"
                          "    operation: read\n"
                          "    handler: broken\n", encoding="utf-8")
    return [root]


def test_handler_exception_is_integration_bug_without_python_traceback(
        sim: NotesSimulator, broken_paths: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    with make_runtime(sim, paths=broken_paths) as rt:
        text, err = caught(rt, "app.integrations.test_notes.explode{}")
        uncaught = rt.run('print("before")\nlocal x = app.integrations.test_notes.explode()\nreturn x')
        called = rt.call("test-notes.explode")
    assert err["type"] == "IntegrationBug" and err["code"] == "internal_error"
    assert err["message"] == "test-notes.explode: the integration failed internally (KeyError)"
    assert (err["integration"], err["function"]) == ("test-notes", "explode")
    assert "bug in the integration" in err["hint"]
    assert text == "script.lua:2: " + err["message"]

    assert isinstance(uncaught.error, IntegrationBug)
    assert uncaught.output == "before\n"
    assert uncaught.calls[0].error == "internal_error"
    assert isinstance(called.error, IntegrationBug)
    for blob in (text, json.dumps(err), json.dumps(uncaught.to_dict()), uncaught.output, str(uncaught.error),
                 json.dumps(called.to_dict())):
        assert "Traceback" not in blob
        assert "hooks.py" not in blob
        assert 'File "' not in blob
        assert "raise KeyError" not in blob
    # the details go to the log (for whoever runs the runtime)
    assert any("integration handler test-notes.explode failed" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------
# secrets never appear anywhere
# --------------------------------------------------------------------------------------------


def test_secrets_never_appear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    secrets = [KEY, OTHER_KEY, LITERAL]
    blobs: list[str] = []

    # -- the API, over the in-process simulator
    sim = NotesSimulator([KEY, OTHER_KEY])
    approved: list[WriteRequest] = []
    audit = tmp_path / "audit.jsonl"
    with make_runtime(sim, approve=lambda r: approved.append(r) or True, audit_log=audit) as rt:
        good = rt.run("""
            local n = app.integrations.test_notes
            print(n.whoami{}.name, n.other.list_notes{}.count)
            for k, v in pairs(n) do print(k, v) end
            print(n.careful.create_note{text = "approved"})
            return {n.list_notes{limit = 1}, tostring(n.main)}
        """)
        assert good.ok, good.error
        bad = rt.run("""
            local n = app.integrations.test_notes
            print(select(2, pcall(n.literal.list_notes, {})))
            print(select(2, pcall(n.unset.list_notes, {})))
            print(select(2, pcall(n.get_note, {id = "99"})))
            return n.literal.whoami{}
        """)
        assert bad.error.type == "AuthFailed"
        dry = rt.run('return app.integrations.test_notes.create_note{text = "dry"}', dry_run=True)
        assert dry.ok
        call = rt.call("test-notes.other.get_note", {"id": "nope"})
        assert call.error.type == "UpstreamNotFound"
        for result in (good, bad, dry, call):
            blobs += [json.dumps(result.to_dict()), repr(result), result.output, str(result.error),
                      repr(result.calls)]
        blobs += [repr(rt), repr(rt.accounts), repr(rt.accounts.describe()), repr(rt.accounts.check()),
                  repr(approved), *(r.describe() for r in approved)]
        for name in rt.accounts.account_names("test-notes"):
            try:
                account = rt.accounts.account("test-notes", name)
            except Exception as exc:  # the unset account
                blobs.append(repr(exc) + str(exc))
            else:
                blobs += [repr(account), str(account), repr(account.credentials)]
    assert len(sim.requests) > 5
    assert audit.read_text(encoding="utf-8").count("\n") >= 8  # one line per call
    blobs.append(audit.read_text(encoding="utf-8"))

    # -- the CLI, over a loopback server
    monkeypatch.setenv("NOTES_MAIN_KEY", KEY)
    monkeypatch.setenv("NOTES_OTHER_KEY", OTHER_KEY)
    monkeypatch.setenv("KOSMO_INTEGRATIONS_PATH", str(FIXTURES))
    monkeypatch.setattr("kosmo_runtime._cli._terminal_approver", lambda: None)
    with LoopbackServer(NotesSimulator([KEY, OTHER_KEY])) as server:
        accounts = tmp_path / "accounts.yaml"
        # every account answers on the loopback server (no request leaves the machine)
        accounts.write_text(ACCOUNTS.replace("        api_key:", f"        base_url: {server.url}\n        api_key:"),
                            encoding="utf-8")
        commands = [
            ["accounts", "--accounts", str(accounts), "list"],
            ["accounts", "--accounts", str(accounts), "--json", "list"],
            ["accounts", "--accounts", str(accounts), "check"],
            ["accounts", "--accounts", str(accounts), "--json", "check"],
            ["accounts", "--accounts", str(accounts), "check", "--live"],
            ["run", "--accounts", str(accounts), "--audit-log", str(tmp_path / "cli-audit.jsonl"), "-e",
             "app.integrations.test_notes.careful.create_note{text = 'audited'}\n"
             "return app.integrations.test_notes.list_notes{limit = 1}"],
            ["run", "--accounts", str(accounts), "--json", "-e", "return app.integrations.test_notes.other.whoami{}"],
            ["run", "--accounts", str(accounts), "--dry-run", "--json", "-e",
             'return app.integrations.test_notes.create_note{text = "x"}'],
            ["run", "--accounts", str(accounts), "-e", "local x = app.integrations.test_notes.literal.whoami{} return x"],
            ["run", "--accounts", str(accounts), "--json", "-e", "local x = app.integrations.test_notes.get_note{id = '99'}"],
            ["call", "test-notes.literal.list_notes", "--accounts", str(accounts)],
            ["call", "test-notes.get_note", "--arg", "id=99", "--json", "--accounts", str(accounts)],
        ]
        codes = []
        for argv in commands:
            try:
                codes.append(main(argv))
            except SystemExit as exc:
                codes.append(exc.code)
            out = capsys.readouterr()
            blobs += [out.out, out.err]
    assert codes == [0, 0, 2, 2, 2, 1, 0, 0, 1, 1, 1, 1]  # check: an unset variable exits 2; the ask write has no approver: PermissionDenied
    blobs.append((tmp_path / "cli-audit.jsonl").read_text(encoding="utf-8"))
    joined = "\n".join(blobs)
    assert "AuthFailed" in joined and "UpstreamNotFound" in joined and "NOTES_UNSET_KEY" in joined
    for secret in secrets:
        assert secret not in joined
