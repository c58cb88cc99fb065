"""One envelope: ``RunResult.to_dict()``, ``kosmo run --json`` and ``kosmo call --json`` share the shape
``kosmo_runtime/envelope.schema.json`` describes (the MCP tools are checked in test_mcp.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from kosmo_runtime import Demo, Limits, Runtime
from kosmo_runtime._cli import main
from kosmo_runtime._result import ENVELOPE_VERSION, envelope_schema
from tests.surfaces import check_envelope

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KOSMO_ACCOUNTS", raising=False)
    monkeypatch.delenv("KOSMO_AUDIT_LOG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr("kosmo_runtime._cli._terminal_approver", lambda: None)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo(rate_limits=False) as demo:
        yield demo


@pytest.fixture(scope="module")
def runtime(demo: Demo) -> Iterator[Runtime]:
    with demo.runtime(limits=Limits(instructions=100_000, output=64)) as runtime:
        yield runtime


def test_schema_is_valid_and_versioned() -> None:
    schema = envelope_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["version"] == {"description": "Version of this shape.", "const": ENVELOPE_VERSION}
    assert set(schema["required"]) == {"version", "ok", "result", "output", "error", "calls", "duration"}
    # shipped with the package, and documented
    assert (REPO / "kosmo_runtime" / "envelope.schema.json").is_file()
    assert "envelope.schema.json" in (REPO / "README.md").read_text(encoding="utf-8")


SCRIPTS = {
    "ok with calls": "local rooms = app.integrations.whereby.list_rooms{limit = 2}\nprint(#rooms.data)\nreturn rooms",
    "several values": "return 1, 'two', {x = json.null}",
    "nothing returned": "print('hi')",
    "runtime error": "print('partial')\nlocal t = nil\nreturn t.x",
    "syntax error": "local = 1",
    "instruction limit": "while true do end",
    "output limit": "for i = 1, 100 do print('a line of output') end",
    "failed call caught": "return pcall(app.integrations.whereby.get_room, {room_name = 'no-such-room'})",
    "failed call uncaught": "return app.integrations.whereby.list_rooms{limit = 'x'}",
    "unknown function": "return app.integrations.whereby.list_roomz{}",
    "error table": "error({code = 7})",
    "dry-run write": "return app.integrations.whereby.create_room{room_mode = 'group'}",
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_run_results_validate(runtime: Runtime, name: str) -> None:
    result = runtime.run(SCRIPTS[name], name="envelope.lua", dry_run=name == "dry-run write")
    data = check_envelope(result.to_dict())
    assert data["version"] == 1
    assert data["ok"] is result.ok
    json.dumps(data)  # JSON-compatible as is


def test_error_envelopes_say_what_failed(runtime: Runtime) -> None:
    limit = check_envelope(runtime.run("while true do end").to_dict())
    assert (limit["ok"], limit["result"], limit["error"]["code"], limit["error"]["limit"]) == (
        False, None, "limit_exceeded", "instructions")
    failed = check_envelope(runtime.run("return app.integrations.whereby.list_rooms{limit = 'x'}").to_dict())
    assert failed["error"]["type"] == "InvalidArgument" and failed["calls"][0]["ok"] is False


def test_call_results_validate(runtime: Runtime) -> None:
    ok = check_envelope(runtime.call("whereby.list_rooms", {"limit": 1}).to_dict())
    assert ok["ok"] and ok["calls"][0]["requests"][0]["method"] == "GET"
    for function, arguments in [("whereby.list_rooms", {"limit": 0}), ("whereby.nope", {}), ("nope.list", {}),
                                ("whereby", {}), ("whereby.get_room", {"room_name": "missing"})]:
        data = check_envelope(runtime.call(function, arguments).to_dict())
        assert data["ok"] is False and data["error"]["message"]


def test_configuration_error_validates(tmp_path: Path) -> None:
    with Runtime(accounts=tmp_path / "missing.yaml") as runtime:
        data = check_envelope(runtime.run("return 1").to_dict())
    assert data["error"]["code"] == "accounts_file_error"
    with Runtime() as runtime:  # no accounts at all: the call fails with AccountError
        data = check_envelope(runtime.call("whereby.list_rooms", {}).to_dict())
    assert data["error"]["code"] == "account_error"


def _kosmo(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_cli_run_and_call_json_validate(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _kosmo(capsys, "run", "--demo", "--json", "-e",
                        "print('rooms') return app.integrations.whereby.list_rooms{limit = 1}")
    assert code == 0 and check_envelope(data)["calls"][0]["function"] == "list_rooms"
    code, data = _kosmo(capsys, "run", "--demo", "--json", "--instructions", "1000", "-e", "while true do end")
    assert code == 1 and check_envelope(data)["error"]["code"] == "limit_exceeded"
    code, data = _kosmo(capsys, "call", "--demo", "--json", "whereby.list_rooms", "--arg", "limit=1")
    assert code == 0 and check_envelope(data)["ok"] is True
    code, data = _kosmo(capsys, "call", "--demo", "--json", "whereby.list_rooms", "--arg", "limit=500")
    assert code == 1 and check_envelope(data)["error"]["code"] == "invalid_argument"


def test_trace_ids_and_the_replay_error_are_in_the_schema(runtime: Runtime) -> None:
    data = runtime.run("return app.integrations.whereby.list_rooms{limit = 1}").to_dict()
    assert "trace_id" not in data["calls"][0]  # tracing off: no ids
    data["calls"][0].update(trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331")
    check_envelope(data)
    data["calls"][0]["span_id"] = "not-hex"
    with pytest.raises(AssertionError, match="span_id"):
        check_envelope(data)
    codes = envelope_schema()["$defs"]["error"]["properties"]["code"]["enum"]
    assert "replay_mismatch" in codes


def test_every_error_code_the_runtime_can_raise_is_in_the_schema() -> None:
    from kosmo_runtime import _errors

    raised = {kind.code for kind in vars(_errors).values()
              if isinstance(kind, type) and issubclass(kind, _errors.KosmoError)}
    allowed = set(envelope_schema()["$defs"]["error"]["properties"]["code"]["enum"])
    assert raised - allowed == set(), "error codes missing from envelope.schema.json"
    assert allowed - raised == set(), "codes in envelope.schema.json that nothing raises"
