"""The ``kosmo`` command line, run in-process (``main([...])``) against the test-notes integration."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kosmo_runtime import LoopbackServer, __version__
from kosmo_runtime._cli import main
from tests.fixtures.integrations.test_notes.simulator import KEY, NotesSimulator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "integrations"
REPO = Path(__file__).resolve().parent.parent.parent
OTHER_KEY = "cli-other-key-555"
PY_TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KOSMO_INTEGRATIONS_PATH", str(FIXTURES))
    monkeypatch.delenv("KOSMO_ACCOUNTS", raising=False)
    monkeypatch.delenv("KOSMO_DOCS_PATH", raising=False)
    monkeypatch.delenv("KOSMO_AUDIT_LOG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))   # no per-user accounts file
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))       # the store goes here
    monkeypatch.setenv("CLI_NOTES_KEY", KEY)
    monkeypatch.setenv("CLI_OTHER_KEY", OTHER_KEY)
    monkeypatch.delenv("CLI_UNSET_KEY", raising=False)
    # never prompt on a real terminal from a test
    monkeypatch.setattr("kosmo_runtime._cli._terminal_approver", lambda: None)


class Kosmo:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        out = self.capsys.readouterr()
        assert PY_TRACEBACK not in out.out and PY_TRACEBACK not in out.err
        return code, out.out, out.err


@pytest.fixture
def kosmo(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Kosmo:
    return Kosmo(capsys, monkeypatch)


@pytest.fixture
def sim() -> NotesSimulator:
    return NotesSimulator([KEY, OTHER_KEY])


@pytest.fixture
def server(sim: NotesSimulator) -> Iterator[LoopbackServer]:
    with LoopbackServer(sim) as srv:
        yield srv


def accounts_text(url: str) -> str:
    return f"""\
version: 1
integrations:
  test-notes:
    default: main
    accounts:
      main:
        api_key: ${{CLI_NOTES_KEY}}
        base_url: {url}
        label: Main account
      other:
        api_key: ${{CLI_OTHER_KEY}}
        base_url: {url}
        writes: deny
"""


@pytest.fixture
def accounts(tmp_path: Path, server: LoopbackServer) -> str:
    path = tmp_path / "accounts.yaml"
    path.write_text(accounts_text(server.url), encoding="utf-8")
    return str(path)


@pytest.fixture
def broken_accounts(tmp_path: Path, server: LoopbackServer) -> str:
    path = tmp_path / "broken-accounts.yaml"
    path.write_text(accounts_text(server.url) + "      unset:\n        api_key: ${CLI_UNSET_KEY}\n"
                    f"        base_url: {server.url}\n", encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------------------------
# version, help
# --------------------------------------------------------------------------------------------


def test_version(kosmo: Kosmo) -> None:
    assert kosmo("--version") == (0, f"kosmo {__version__}\n", "")


def test_help(kosmo: Kosmo) -> None:
    code, out, err = kosmo("--help")
    assert code == 0 and err == ""
    assert out.startswith("usage: kosmo")
    for word in ("run", "call", "docs", "accounts", "Examples:", "--version"):
        assert word in out
    code, out, _ = kosmo("run", "--help")
    assert code == 0
    for flag in ("-e CODE", "--json", "--dry-run", "--read-only", "--instructions N", "--wall-time", "--accounts"):
        assert flag in out


def test_no_command_prints_help_and_exits_2(kosmo: Kosmo) -> None:
    code, out, _ = kosmo()
    assert code == 2
    assert out.startswith("usage: kosmo")


# --------------------------------------------------------------------------------------------
# run: sources and output
# --------------------------------------------------------------------------------------------

SCRIPT = 'print("hello", 42, {a = 1})\nprint("second")\nreturn {x = 1, y = {1, 2}, name = "n"}\n'


def test_run_file_prints_output_then_the_result(kosmo: Kosmo, tmp_path: Path) -> None:
    path = tmp_path / "report.lua"
    path.write_text(SCRIPT, encoding="utf-8")
    code, out, err = kosmo("run", str(path))
    assert (code, err) == (0, "")
    assert out == 'hello\t42\t{a = 1}\nsecond\n{name = "n", x = 1, y = {1, 2}}\n'


def test_run_stdin(kosmo: Kosmo) -> None:
    assert kosmo("run", "-", stdin="return 6 * 7") == (0, "42\n", "")


def test_run_stdin_error_names_stdin(kosmo: Kosmo) -> None:
    code, _, err = kosmo("run", "-", stdin="\nerror('boom')")
    assert code == 1
    assert err.splitlines()[0] == "error: LuaRuntimeError: stdin:2: boom"


def test_run_code(kosmo: Kosmo) -> None:
    assert kosmo("run", "-e", SCRIPT)[1] == 'hello\t42\t{a = 1}\nsecond\n{name = "n", x = 1, y = {1, 2}}\n'


@pytest.mark.parametrize(("code", "shown"), [
    ("return 'plain text'", "plain text\n"),
    ("return nil", ""),
    ("print('only output')", "only output\n"),
    ("return 1, 'two'", '{1, "two"}\n'),
    ("return true", "true\n"),
])
def test_run_result_rendering(kosmo: Kosmo, code: str, shown: str) -> None:
    assert kosmo("run", "-e", code) == (0, shown, "")


def test_run_json_envelope(kosmo: Kosmo) -> None:
    code, out, err = kosmo("run", "--json", "-e", SCRIPT)
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert set(data) == {"version", "ok", "result", "output", "error", "calls", "duration"}
    assert data["ok"] is True
    assert data["result"] == {"x": 1, "y": [1, 2], "name": "n"}
    assert data["output"] == "hello\t42\t{a = 1}\nsecond\n"
    assert data["error"] is None and data["calls"] == []
    assert isinstance(data["duration"], float) and data["duration"] >= 0


def test_run_json_error(kosmo: Kosmo) -> None:
    code, out, err = kosmo("run", "--json", "--name", "job.lua", "-e", "print('partial')\nlocal t = nil\nreturn t.x")
    assert code == 1 and err == ""
    data = json.loads(out)
    assert data["ok"] is False and data["result"] is None and data["output"] == "partial\n"
    assert data["error"]["type"] == "LuaRuntimeError" and data["error"]["code"] == "runtime_error"
    assert data["error"]["message"] == "job.lua:3: attempt to index a nil value (local 't')"
    assert (data["error"]["script"], data["error"]["line"]) == ("job.lua", 3)
    assert "job.lua:3: in main chunk" in data["error"]["traceback"]


def test_run_human_error_output(kosmo: Kosmo) -> None:
    code, out, err = kosmo("run", "-e", "print('partial')\nlocal t = nil\nreturn t.x")
    assert code == 1
    assert out == "partial\n"
    lines = err.splitlines()
    assert lines[0] == "error: LuaRuntimeError: (command line):3: attempt to index a nil value (local 't')"
    assert lines[1] == "stack traceback:"
    assert "(command line):3: in main chunk" in err
    assert "[kosmo]" not in err and ".py" not in err


def test_run_human_call_error_has_hint_and_lua_traceback(kosmo: Kosmo, accounts: str) -> None:
    code, out, err = kosmo("run", "--accounts", accounts, "--name", "notes.lua", "-e",
                           "local n = app.integrations.test_notes\nlocal x = n.get_note{}\nreturn x")
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == ("error: InvalidArgument: notes.lua:2: test-notes.get_note: missing required parameter 'id' "
                        "(string: The note id)")  # where the call was made, as Lua's own errors say it
    assert lines[1] == 'hint: call test-notes.get_note{id = "...", ...}'
    assert lines[2] == "stack traceback:"
    assert "notes.lua:2: in main chunk" in err


def test_syntax_error(kosmo: Kosmo) -> None:
    code, _, err = kosmo("run", "-e", "return {")
    assert code == 1
    assert err.startswith("error: LuaSyntaxError: (command line):1: ")


# --------------------------------------------------------------------------------------------
# exit codes and usage errors
# --------------------------------------------------------------------------------------------


def test_exit_code_1_for_script_error(kosmo: Kosmo) -> None:
    assert kosmo("run", "-e", "error('boom')")[0] == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["run"], "kosmo: error: missing script: kosmo run PATH, kosmo run - (standard input), kosmo run -e CODE "
              "or kosmo run --example NAME\n"),
    (["run", "x.lua", "-e", "return 1"], "kosmo: error: give one script: a path, - (standard input), -e CODE or --example NAME\n"),
    (["run", "/nonexistent/dir/x.lua"], "kosmo: error: cannot read /nonexistent/dir/x.lua: No such file or directory\n"),
    (["run", "-e", "return 1", "--instructions", "0"],
     "kosmo: error: limit instructions must be a positive number, got 0\n"),
])
def test_usage_errors_exit_2(kosmo: Kosmo, argv: list[str], message: str) -> None:
    code, out, err = kosmo(*argv)
    assert code == 2 and out == ""
    assert err == message


def test_unreadable_directory_and_binary_file(kosmo: Kosmo, tmp_path: Path) -> None:
    code, _, err = kosmo("run", str(tmp_path))
    assert code == 2 and err.startswith(f"kosmo: error: cannot read {tmp_path}: ")
    binary = tmp_path / "x.lua"
    binary.write_bytes(b"\xff\xfe\x00return 1")
    assert kosmo("run", str(binary)) == (2, "", f"kosmo: error: {binary} is not UTF-8 text (byte 0xff on line 1); save it as UTF-8\n")


@pytest.mark.parametrize(("flag", "value", "fragment"), [
    ("--instructions", "abc", "argument --instructions: invalid int value: 'abc'"),
    ("--memory", "lots", "argument --memory: not a size: 'lots'"),
    ("--wall-time", "soon", "argument --wall-time: invalid float value: 'soon'"),
    ("--wall-time", "99999", "limit wall_time=99999.0 is above the hard ceiling 3600.0"),
    ("--calls", "-1", "limit calls must be a positive number, got -1"),
])
def test_bad_limit_values_exit_2(kosmo: Kosmo, flag: str, value: str, fragment: str) -> None:
    code, out, err = kosmo("run", "-e", "return 1", flag, value)
    assert code == 2 and out == ""
    assert fragment in err


def test_size_flags_accept_units(kosmo: Kosmo) -> None:
    assert kosmo("run", "--memory", "32MiB", "--output", "1KiB", "-e", "return 1") == (0, "1\n", "")
    code, out, err = kosmo("run", "--output", "10", "-e", "print(string.rep('x', 50))")
    assert code == 1
    assert out == "x" * 10
    assert err.startswith("error: LimitExceeded: run stopped: output limit of 10 bytes exceeded")


def test_malformed_accounts_file_exits_2(kosmo: Kosmo, tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text("integrations:\n  test-notes:\n    accounts:\n      main:\n        api_kye: x\n", encoding="utf-8")
    code, out, err = kosmo("run", "--accounts", str(path), "-e", "return 1")
    assert code == 2 and out == ""
    assert err.splitlines()[0] == f"error: AccountsFileError: {path}:5: unknown field 'api_kye' for a test-notes account"
    assert err.splitlines()[1].startswith("hint: did you mean 'api_key'? fields: api_key, base_url, ")
    assert len(err.splitlines()) == 2
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("integrations:\n  test-notes:\n    accounts: {main: {api_key: x}\n  other: 1\n", encoding="utf-8")
    code, _, err = kosmo("accounts", "--accounts", str(syntax), "list")
    assert code == 2
    assert err.startswith(f"error: AccountsFileError: {syntax}:") and "invalid YAML" in err
    code, _, err = kosmo("run", "--accounts", str(tmp_path / "missing.yaml"), "-e", "return 1")
    assert code == 2
    assert "cannot read the accounts file" in err


def test_disallowed_base_url_is_a_config_error_exit_2(kosmo: Kosmo, tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text("integrations:\n  test-notes:\n    accounts:\n      main:\n        api_key: x\n"
                    "        base_url: https://evil.example.com\n", encoding="utf-8")
    code, _, err = kosmo("call", "test-notes.list_notes", "--accounts", str(path))
    assert code == 2
    assert err.startswith("error: ConfigError: test-notes.main: base_url host 'evil.example.com' is not one of "
                          "the integration's hosts")


# --------------------------------------------------------------------------------------------
# limits
# --------------------------------------------------------------------------------------------


def test_instruction_limit_stops_a_loop(kosmo: Kosmo) -> None:
    code, out, err = kosmo("run", "--instructions", "1000", "-e", "print('start')\nwhile true do end")
    assert code == 1 and out == "start\n"
    assert err.splitlines() == [
        "error: LimitExceeded: run stopped: instruction limit of 1,000 instructions exceeded",
        "hint: do less per run, or raise the limit with --instructions (Limits(instructions=...) in Python); "
        "the ceiling is 20,000,000,000",
    ]


def test_limit_in_json_and_pcall_cannot_catch_it(kosmo: Kosmo) -> None:
    code, out, _ = kosmo("run", "--json", "--instructions", "5000", "-e",
                         "local ok = pcall(function() while true do end end)\nreturn 'escaped'")
    assert code == 1
    error = json.loads(out)["error"]
    assert (error["type"], error["code"], error["limit"], error["value"]) == (
        "LimitExceeded", "limit_exceeded", "instructions", 5000)


def test_calls_limit(kosmo: Kosmo, accounts: str) -> None:
    code, _, err = kosmo("run", "--accounts", accounts, "--calls", "2", "-e",
                         "for i = 1, 5 do app.integrations.test_notes.whoami{} end")
    assert code == 1
    assert err.startswith("error: LimitExceeded: ")
    assert "2 integration calls" in err.splitlines()[0]


# --------------------------------------------------------------------------------------------
# run with accounts over a loopback server
# --------------------------------------------------------------------------------------------


def test_run_against_loopback_server(kosmo: Kosmo, accounts: str, sim: NotesSimulator) -> None:
    code, out, err = kosmo("run", "--accounts", accounts, "-e",
                           "local n = app.integrations['test-notes']\nprint(n.whoami{}.name)\n"
                           "return n.other.list_notes{limit = 1}")
    assert (code, err) == (0, "")
    assert out == 'Tess\n{count = 1, notes = {{id = "2", tags = {"work"}, text = "ship release"}}}\n'
    assert [r.headers["authorization"] for r in sim.requests] == [f"Bearer {KEY}", f"Bearer {OTHER_KEY}"]


def test_kosmo_accounts_environment_variable(kosmo: Kosmo, accounts: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOSMO_ACCOUNTS", accounts)
    assert kosmo("run", "-e", "return app.integrations.test_notes.whoami{}.name") == (0, "Tess\n", "")


def test_dry_run_and_read_only(kosmo: Kosmo, accounts: str, sim: NotesSimulator) -> None:
    script = "return app.integrations.test_notes.create_note{text = 'cli'}"
    code, out, _ = kosmo("run", "--accounts", accounts, "--dry-run", "--json", "-e", script)
    assert code == 0
    data = json.loads(out)
    assert data["result"]["would_send"]["method"] == "POST"
    assert data["result"]["would_send"]["body"] == {"text": "cli", "tags": []}
    assert data["calls"][0]["dry_run"] is True
    code, _, err = kosmo("run", "--accounts", accounts, "--read-only", "-e", script)
    assert code == 1
    assert err.splitlines()[0] == ("error: PermissionDenied: (command line):1: test-notes.create_note is a write and this "
                                  "run is read-only")
    assert [r.method for r in sim.requests] == []


# --------------------------------------------------------------------------------------------
# call
# --------------------------------------------------------------------------------------------


def test_call_with_json_output(kosmo: Kosmo, accounts: str, sim: NotesSimulator) -> None:
    code, out, err = kosmo("call", "test-notes.list_notes", "--arg", "limit=1", "--json", "--accounts", accounts)
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert set(data) == {"version", "ok", "result", "output", "error", "calls", "duration"}
    assert data["ok"] is True and data["error"] is None and data["output"] == ""
    assert data["result"] == {"notes": [{"id": "2", "text": "ship release", "tags": ["work"]}], "count": 1}
    assert [(c["integration"], c["function"], c["account"], c["operation"], c["ok"], c["status"])
            for c in data["calls"]] == [("test-notes", "list_notes", "main", "read", True, 200)]
    assert str(sim.requests[0].url).endswith("/v1/notes?limit=1")


def test_call_string_parameter_stays_text(kosmo: Kosmo, accounts: str) -> None:
    code, out, err = kosmo("call", "test-notes.get_note", "--arg", "id=2", "--accounts", accounts)
    assert (code, err) == (0, "")
    assert out == '{note = {id = "2", tags = {"work"}, text = "ship release"}}\n'


def test_call_json_values_for_other_parameters(kosmo: Kosmo, accounts: str, sim: NotesSimulator) -> None:
    code, out, _ = kosmo("call", "test-notes.create_note", "--arg", "text=[1, 2]", "--arg", 'tags=["a", "b"]',
                         "--json", "--accounts", accounts)
    assert code == 0
    assert json.loads(out)["result"]["note"] == {"id": "3", "text": "[1, 2]", "tags": ["a", "b"]}
    code, out, _ = kosmo("call", "test-notes.list_notes", "--args-json", '{"limit": 1, "tag": "home"}', "--json",
                         "--accounts", accounts)
    assert code == 0
    assert json.loads(out)["result"]["notes"][0]["id"] == "1"


def test_call_account_and_full_names(kosmo: Kosmo, accounts: str, sim: NotesSimulator) -> None:
    assert kosmo("call", "test-notes.other.notes_whoami", "--accounts", accounts) == (
        0, '{name = "Tess", team = "core"}\n', "")
    assert kosmo("call", "test_notes.whoami", "--account", "other", "--accounts", accounts)[0] == 0
    assert [r.headers["authorization"] for r in sim.requests] == [f"Bearer {OTHER_KEY}"] * 2


def test_call_errors(kosmo: Kosmo, accounts: str) -> None:
    code, out, err = kosmo("call", "test-notes.get_note", "--arg", "id=99", "--accounts", accounts)
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "error: UpstreamNotFound: test-notes.get_note: Test Notes answered HTTP 404 Not Found: note 99 not found",
        "hint: check the id; list the objects first to find valid ids",
    ]
    code, _, err = kosmo("call", "test-notes.list_note", "--accounts", accounts)
    assert code == 1
    assert err.splitlines()[0] == ("error: NotFound: unknown function or account 'list_note' on test-notes; "
                                   "did you mean 'list_notes'?")
    code, _, err = kosmo("call", "test-notes.other.create_note", "--arg", "text=x", "--accounts", accounts)
    assert code == 1
    assert err.splitlines()[0] == "error: PermissionDenied: test-notes.create_note is a write and account 'other' has writes: deny"
    code, _, err = kosmo("call", "test-notes.list_notes", "--arg", "limit=0", "--accounts", accounts)
    assert code == 1
    assert err.splitlines()[0] == "error: InvalidArgument: test-notes.list_notes: parameter 'limit' must be at least 1, got 0"


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--arg", "limit"], "kosmo: error: --arg 'limit': write NAME=VALUE"),
    (["--args-json", "{nope"], "kosmo: error: --args-json is not valid JSON: "),
    (["--args-json", "[1]"], "kosmo: error: --args-json must be a JSON object"),
])
def test_call_usage_errors(kosmo: Kosmo, accounts: str, argv: list[str], fragment: str) -> None:
    code, _, err = kosmo("call", "test-notes.list_notes", *argv, "--accounts", accounts)
    assert code == 2
    assert err.startswith(fragment)


# --------------------------------------------------------------------------------------------
# docs
# --------------------------------------------------------------------------------------------


def test_docs_list(kosmo: Kosmo) -> None:
    code, out, err = kosmo("docs", "list")
    assert (code, err) == (0, "")
    paths = [line.split()[0] for line in out.splitlines()]
    assert paths[:2] == ["runtime", "integrations"]
    assert "integrations.test-notes" in paths
    line = next(row for row in out.splitlines() if row.startswith("integrations.test-notes "))
    assert line.endswith("Test Notes: A tiny notes service used to test the integration framework.")
    code, out, _ = kosmo("docs", "--json", "list")
    assert code == 0
    assert {"path": "integrations.test-notes", "title": "Test Notes",
            "summary": "A tiny notes service used to test the integration framework."} in json.loads(out)


def test_docs_search(kosmo: Kosmo) -> None:
    code, out, _ = kosmo("docs", "search", "notes", "newest")
    assert code == 0
    assert out.splitlines()[0].split()[0] == "integrations.test-notes.list_notes"
    code, out, _err = kosmo("docs", "search", "zzqqxxnothing")
    assert (code, out) == (1, "")


def test_docs_read(kosmo: Kosmo) -> None:
    code, out, _ = kosmo("docs", "read", "integrations.test-notes.list_notes")
    assert code == 0
    assert out.splitlines()[:3] == [
        "```lua",
        'app.integrations["test-notes"].list_notes({limit?: integer = 10, tag?: "work" | "home" | "misc"}) '
        "-> table   -- read",
        "```",
    ]
    assert kosmo("docs", "read", "integrations.test_notes.notes_list_notes")[1] == out
    code, out, _ = kosmo("docs", "read", "integrations.test_notes")
    assert code == 0 and out.startswith("# Test Notes\n")
    code, out, _ = kosmo("docs", "read", "runtime")
    assert code == 0 and out.startswith("# ")


def test_docs_read_unknown_path(kosmo: Kosmo) -> None:
    code, out, err = kosmo("docs", "read", "integrations.test-notes.list_note")
    assert code == 1 and out == ""
    assert err.splitlines()[0] == ("error: NotFound: no doc page 'integrations.test-notes.list_note'; "
                                   "did you mean 'integrations.test-notes.list_notes'?")
    assert err.splitlines()[1].startswith("hint: ")
    code, _, err = kosmo("docs", "read", "runtme")
    assert code == 1
    assert "did you mean 'runtime'?" in err


# --------------------------------------------------------------------------------------------
# accounts
# --------------------------------------------------------------------------------------------


def test_accounts_list(kosmo: Kosmo, accounts: str) -> None:
    code, out, err = kosmo("accounts", "--accounts", accounts, "list")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"* {'test-notes':<16} {'main':<16} writes: allow  (Main account)",
        f"  {'test-notes':<16} {'other':<16} writes: deny",
    ]
    assert KEY not in out and OTHER_KEY not in out
    code, out, _ = kosmo("accounts", "--accounts", accounts, "--json", "list")
    assert json.loads(out) == [
        {"integration": "test-notes", "account": "main", "default": True, "writes": "allow", "label": "Main account"},
        {"integration": "test-notes", "account": "other", "default": False, "writes": "deny", "label": None},
    ]


def test_accounts_list_without_a_file(kosmo: Kosmo) -> None:
    code, out, _ = kosmo("accounts", "list")
    assert code == 0
    assert out.startswith("no accounts file: ") and "kosmo accounts init" in out


def test_accounts_check_ok(kosmo: Kosmo, accounts: str) -> None:
    assert kosmo("accounts", "--accounts", accounts, "check") == (0, f"ok: 2 account(s) in {accounts}\n", "")
    code, out, _ = kosmo("accounts", "--accounts", accounts, "check", "--live")
    assert code == 0
    assert out.splitlines() == ["test-notes.main: ok", "test-notes.other: ok", f"ok: 2 account(s) in {accounts}"]


def test_accounts_check_reports_missing_variable(kosmo: Kosmo, broken_accounts: str) -> None:
    code, out, err = kosmo("accounts", "--accounts", broken_accounts, "check")
    assert code == 2  # a configuration error
    lines = out.splitlines()
    assert lines[0].startswith("error: AccountError: account test-notes.unset needs environment variable CLI_UNSET_KEY "
                               f"(for 'api_key', {broken_accounts}:")
    assert lines[1] == f"hint: export CLI_UNSET_KEY=... before running, or change 'api_key' in {broken_accounts}"
    assert KEY not in out + err and OTHER_KEY not in out + err
    code, out, _ = kosmo("accounts", "--accounts", broken_accounts, "--json", "check")
    assert code == 2
    data = json.loads(out)
    assert data["ok"] is False and data["source"] == broken_accounts
    assert [c["error"]["account"] for c in data["checks"]] == ["unset"]


@pytest.mark.parametrize("argv", [
    ["accounts", "list", "--json"],
    ["accounts", "list", "--accounts", "{accounts}"],
    ["accounts", "check", "--accounts", "{accounts}"],
    ["docs", "list", "--json"],
])
def test_options_after_the_action(kosmo: Kosmo, accounts: str, argv: list[str]) -> None:
    code, _, err = kosmo(*[a.format(accounts=accounts) for a in argv])
    assert code == 0, err


# --------------------------------------------------------------------------------------------
# a broken integration handler, in a real process
# --------------------------------------------------------------------------------------------


def test_broken_handler_prints_no_python_traceback(tmp_path: Path, accounts: str) -> None:
    root = tmp_path / "integrations"
    shutil.copytree(FIXTURES / "test_notes", root / "test_notes")
    manifest = root / "test_notes" / "manifest.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + "  explode:\n    description: Fails.\n"
                        "    operation: read\n    handler: broken\n", encoding="utf-8")
    env = {**os.environ, "KOSMO_INTEGRATIONS_PATH": str(root), "PYTHONPATH": str(REPO)}
    process = subprocess.run(
        [sys.executable, "-c", "import sys; from kosmo_runtime._cli import main; sys.exit(main())",
         "run", "--accounts", accounts, "-e", "local x = app.integrations.test_notes.explode{}"],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert process.returncode == 1
    assert "error: IntegrationBug: (command line):1: test-notes.explode: the integration failed internally (KeyError)" \
        in process.stderr
    assert PY_TRACEBACK not in process.stderr
    assert "hooks.py" not in process.stderr


def test_a_calls_error_line_gives_its_position_and_no_empty_traceback(kosmo: Kosmo, accounts: str) -> None:
    code, _, err = kosmo("run", "--accounts", accounts, "--name", "job.lua", "-e",
                         "local n = app.integrations.test_notes\nreturn n.get_note{}")
    assert code == 1
    assert err.splitlines() == [
        "error: InvalidArgument: job.lua:2: test-notes.get_note: missing required parameter 'id' (string: The note id)",
        'hint: call test-notes.get_note{id = "...", ...}']  # a tail call of the main chunk: no frame of the script's is left
    code, _, err = kosmo("run", "--accounts", accounts, "--name", "job.lua", "-e", "local t = nil\nreturn t.x")
    assert err.splitlines()[0] == "error: LuaRuntimeError: job.lua:2: attempt to index a nil value (local 't')"
