"""The audit log: one JSON line per integration call, from every place it can be configured.

What is checked: the documented fields of each line (time, run_id, integration, function,
account, operation, requests with method/path/status, status, duration, outcome, retries),
arguments for writes only and redacted, no demo credential anywhere in the file, a write's
line readable by another ``open()`` before the script's next statement runs, and
``RunResult.calls`` carrying the same facts.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kosmo_runtime import Demo, Fault, RetryPolicy, RunResult, Runtime, Simulator, Store
from kosmo_runtime._cli import main
from tests.reliability.cases import CAL_WRITE, ISO, credential_values

FIELDS = {"time", "run_id", "integration", "function", "account", "operation", "requests", "status",
          "duration", "outcome", "retries"}
STORAGE = ('storageConfig = {vendor = 1, region = 3, bucket = "team-recordings", accessKey = "AKIAEXAMPLEKEY", '
           'secretKey = "example-secret-value", fileNamePrefix = {"reviews", "design"}}')
ARGUMENT_SECRETS = ["AKIAEXAMPLEKEY", "example-secret-value", "rtc-token-value", "tok-should-never-be-logged"]


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOSMO_AUDIT_LOG", raising=False)
    monkeypatch.delenv("KOSMO_ACCOUNTS", raising=False)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo(rate_limits=False) as started:
        yield started


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "audit.jsonl"  # the folder does not exist yet


@pytest.fixture
def runtime(demo: Demo, audit: Path) -> Iterator[Runtime]:
    with demo.runtime(retry=RetryPolicy(sleep=lambda seconds: None), audit_log=audit, store=Store(":memory:")) as rt:
        yield rt


@pytest.fixture(autouse=True)
def _no_leftover_faults(demo: Demo) -> Iterator[None]:
    yield
    for simulator in demo.simulators.values():
        simulator.clear_faults()


def lines(path: Path) -> list[dict[str, Any]]:
    """The audit file's entries, read through a new open() of the file."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def ok(result: RunResult) -> Any:
    assert result.ok, result.error.to_dict() if result.error else None
    return result.result


def same_facts(entry: dict[str, Any], call: Any) -> None:
    """An audit entry and the CallRecord of the same call agree."""
    assert entry["run_id"] == call.run_id and entry["integration"] == call.integration
    assert entry["function"] == call.function and entry["account"] == call.account
    assert entry["operation"] == call.operation and entry["retries"] == call.retries
    assert entry.get("status") == call.status
    assert entry["outcome"] == ("ok" if call.ok else call.error)
    assert [(r["method"], r["path"], r.get("status")) for r in entry["requests"]] == \
        [(r["method"], r["path"], r.get("status")) for r in call.requests]


# -- one line per call, with the documented fields ----------------------------------------------


def test_one_line_per_call_with_the_documented_fields(runtime: Runtime, demo: Demo, audit: Path) -> None:
    name = f"audit-{uuid.uuid4().hex[:8]}"
    demo.simulators["whereby"].inject(Fault("status", status=429, retry_after=0, method="GET", path=r"^/v1/meetings$"))
    demo.simulators["cal-com"].inject(Fault("status", status=404, method="GET", path=r"^/v2/event-types/42$"))
    result = runtime.run(f"""
        local rooms = app.integrations.whereby.list_rooms{{limit = 2}}           -- read, retried once
        local project = app.integrations.agora.create_project{{name = "{name}"}} -- write
        local ok, err = pcall(app.integrations["cal-com"].get_event_type, {{id = 42}})  -- read, 404
        local user = app.integrations["goto-webinar"].marketing.get_current_user{{}}    -- named account
        return {{#rooms.data, project.name, err.code, user.email ~= nil}}
    """)
    assert ok(result) == [2, name, "upstream_not_found", True]
    second = runtime.run("return app.integrations.agora.list_projects{} ~= nil")
    assert ok(second) is True

    entries = lines(audit)
    calls = result.calls + second.calls
    assert len(entries) == len(calls) == 5  # one line per call, in order
    for entry, call in zip(entries, calls, strict=True):
        assert FIELDS <= set(entry), FIELDS - set(entry)
        assert datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).tzinfo is not None
        assert isinstance(entry["duration"], float) and entry["duration"] >= 0
        assert all({"method", "path"} <= set(r) for r in entry["requests"])
        assert ("arguments" in entry) == (entry["operation"] == "write")
        same_facts(entry, call)
    assert len({e["run_id"] for e in entries[:4]}) == 1 and entries[4]["run_id"] != entries[0]["run_id"]

    rooms, project, missing, user, listed = entries
    assert (rooms["integration"], rooms["function"], rooms["operation"]) == ("whereby", "list_rooms", "read")
    assert rooms["retries"] == 1 and rooms["outcome"] == "ok" and rooms["status"] == 200
    assert [(r["method"], r["path"], r["status"]) for r in rooms["requests"]] == \
        [("GET", "/v1/meetings", 429), ("GET", "/v1/meetings", 200)]
    assert (project["function"], project["operation"], project["outcome"]) == ("create_project", "write", "ok")
    assert project["arguments"] == {"name": name}  # as the script passed them
    assert [(r["method"], r["path"], r["status"]) for r in project["requests"]] == [("POST", "/dev/v1/project", 201)]
    assert missing["outcome"] == "upstream_not_found" and missing["status"] == 404 and "arguments" not in missing
    assert user["account"] == "marketing" and user["integration"] == "goto-webinar" and user["outcome"] == "ok"
    assert listed["function"] == "list_projects" and listed["outcome"] == "ok"


def test_denied_and_dry_run_writes_are_audited_without_requests(runtime: Runtime, audit: Path) -> None:
    write = 'app.integrations.agora.create_project{name = "never-created"}'
    denied = runtime.run(f"return {write}", read_only=True)
    assert denied.error is not None and denied.error.code == "permission_denied"
    dry = runtime.run(f"return {write}", dry_run=True)
    assert ok(dry)["dry_run"] is True

    refused, described = lines(audit)
    same_facts(refused, denied.calls[0])
    assert refused["outcome"] == "permission_denied" and refused["requests"] == []
    assert refused["arguments"] == {"name": "never-created"}
    same_facts(described, dry.calls[0])
    assert described["outcome"] == "ok" and described["dry_run"] is True and described["requests"] == []


# -- arguments: writes only, secrets redacted ----------------------------------------------------


def test_write_arguments_are_recorded_with_secret_looking_fields_redacted(runtime: Runtime, audit: Path) -> None:
    result = runtime.run(f"""
        local agora = app.integrations.agora
        local started = agora.start_recording{{cname = "audit-{uuid.uuid4().hex[:8]}", uid = "2001",
            clientRequest = {{token = "rtc-token-value", recordingConfig = {{maxIdleTime = 60}}, {STORAGE}}}}}
        local booking = {CAL_WRITE.replace("UNIQUE", "audit")}
        local event = app.integrations["cal-com"].get_event_type{{id = 42}}
        return started.sid ~= nil, booking.booking.id ~= nil
    """)
    assert ok(result) == [True, True]

    recording, booking, event = lines(audit)
    storage = recording["arguments"]["clientRequest"]["storageConfig"]
    assert storage["accessKey"] == "***" and storage["secretKey"] == "***"
    assert storage["bucket"] == "team-recordings" and storage["vendor"] == 1 and storage["fileNamePrefix"] == ["reviews", "design"]
    assert recording["arguments"]["clientRequest"]["token"] == "***"
    assert recording["arguments"]["clientRequest"]["recordingConfig"] == {"maxIdleTime": 60}
    assert recording["arguments"]["uid"] == "2001"
    responses = booking["arguments"]["responses"]
    assert responses["api_token"] == "***" and responses["email"] == "robin.drill@example.com"
    assert booking["arguments"]["eventTypeId"] == 42
    assert "arguments" not in event  # reads: no argument values
    text = audit.read_text(encoding="utf-8")
    envelope = json.dumps(result.to_dict())
    for secret in ARGUMENT_SECRETS:
        assert secret not in text and secret not in envelope


# -- never a credential ------------------------------------------------------------------------


CREDENTIAL_CHECKS = {
    "goto-webinar": "get_current_user{}",
    "whereby": "list_rooms{limit = 1}",
    "cal-com": "get_current_user{}",
    "agora": "list_projects{}",
}
WRITES = [
    'app.integrations.whereby.create_room{room_name_prefix = "audit"}',
    'app.integrations.agora.create_project{name = "audit-creds-UNIQUE"}',
    'app.integrations["goto-webinar"].create_webinar{subject = "Audit", times = {{startTime = os.date('
    + ISO + ', os.time() + 40 * 86400), endTime = os.date(' + ISO + ', os.time() + 40 * 86400 + 3600)}}}',
]


def test_no_demo_credential_is_ever_written(runtime: Runtime, demo: Demo, audit: Path) -> None:
    statements = []
    for ident, accounts in demo.accounts_data.items():
        for account in accounts:
            statements.append(f'assert(app.integrations["{ident}"]["{account}"].{CREDENTIAL_CHECKS[ident]})')
    statements += [f"assert({write.replace('UNIQUE', uuid.uuid4().hex[:8])})" for write in WRITES]
    ok(runtime.run("\n".join(statements)))
    demo.simulators["whereby"].inject(Fault("status", status=401))  # a refused credential, too
    refused = runtime.run("return app.integrations.whereby.list_rooms{}")
    assert refused.error is not None and refused.error.code == "auth_failed"

    text = audit.read_text(encoding="utf-8")
    entries = lines(audit)
    assert {(e["integration"], e["account"]) for e in entries} == \
        {(ident, account) for ident, accounts in demo.accounts_data.items() for account in accounts}
    values = credential_values()
    assert set(values) == set(demo.accounts_data) and all(values.values())
    for ident, secrets in values.items():
        for secret in secrets:
            assert secret not in text, f"{ident} credential in the audit log"
    for account in demo.accounts_data["agora"].values():  # the Basic auth header's value
        pair = f"{account['customer_id']}:{account['customer_secret']}".encode()
        assert base64.b64encode(pair).decode() not in text
    assert "authorization" not in text.lower() and "bearer" not in text.lower()


# -- a write's line is on disk before the script's next statement ----------------------------------


def _reader_at_next_request(sim: Simulator, audit: Path, seen: list[list[dict[str, Any]]]) -> None:
    """Have ``sim`` read the audit file (a separate open()) whenever a request reaches it."""
    authenticate = sim.authenticate

    def check(request: httpx.Request) -> httpx.Response | None:
        seen.append(lines(audit) if audit.exists() else [])
        return authenticate(request)

    sim.authenticate = check  # type: ignore[method-assign]


def test_a_writes_line_is_on_disk_when_the_next_statement_runs(runtime: Runtime, demo: Demo, audit: Path) -> None:
    seen: list[list[dict[str, Any]]] = []
    agora = demo.simulators["agora"]
    _reader_at_next_request(agora, audit, seen)
    try:
        result = runtime.run("""
            local room = app.integrations.whereby.create_room{room_name_prefix = "ondisk"}
            return app.integrations.agora.list_projects{} ~= nil, room.roomName
        """)
    finally:
        del agora.authenticate
    assert ok(result)[0] is True
    [at_read] = seen  # what another reader of the file saw when the next statement's request arrived
    assert [(e["function"], e["operation"], e["outcome"]) for e in at_read] == [("create_room", "write", "ok")]
    same_facts(at_read[0], result.calls[0])


def test_a_writes_line_is_on_disk_after_the_script_fails(runtime: Runtime, audit: Path) -> None:
    result = runtime.run("""
        local room = app.integrations.whereby.create_room{room_name_prefix = "thenfail"}
        error("the script fails right after its write")
    """)
    assert result.error is not None and result.error.code == "runtime_error"
    [entry] = lines(audit)  # the Runtime (and its open audit file) is still alive
    assert entry["function"] == "create_room" and entry["outcome"] == "ok"
    assert entry["arguments"] == {"room_name_prefix": "thenfail"}
    same_facts(entry, result.calls[0])


def test_a_write_that_ends_in_outcome_unknown_is_audited(runtime: Runtime, demo: Demo, audit: Path) -> None:
    demo.simulators["whereby"].inject(Fault("drop", method="POST"))
    result = runtime.run('return app.integrations.whereby.create_room{room_name_prefix = "dropped"}')
    assert result.error is not None and result.error.code == "outcome_unknown"
    [entry] = lines(audit)
    assert entry["outcome"] == "outcome_unknown" and entry["operation"] == "write" and entry["retries"] == 0
    assert [(r["method"], r["path"], r.get("error")) for r in entry["requests"]] == \
        [("POST", "/v1/meetings", "RemoteProtocolError")]
    same_facts(entry, result.calls[0])


# -- where the audit log is configured ---------------------------------------------------------


SCRIPT = ('local rooms = app.integrations.whereby.list_rooms{limit = 1}\n'
          'local room = app.integrations.whereby.create_room{room_name_prefix = "configured"}\n'
          'return #rooms.data')


def _check_two_lines(path: Path) -> None:
    read, write = lines(path)
    assert (read["function"], read["operation"], "arguments" in read) == ("list_rooms", "read", False)
    assert (write["function"], write["operation"], write["arguments"]) == \
        ("create_room", "write", {"room_name_prefix": "configured"})
    assert read["run_id"] == write["run_id"] and read["outcome"] == write["outcome"] == "ok"


def test_audit_log_from_the_environment(demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env-audit.jsonl"
    monkeypatch.setenv("KOSMO_AUDIT_LOG", str(path))
    with demo.runtime(store=Store(":memory:")) as runtime:
        ok(runtime.run(SCRIPT))
    _check_two_lines(path)


def test_audit_log_argument_wins_over_the_environment(demo: Demo, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOSMO_AUDIT_LOG", str(tmp_path / "env-audit.jsonl"))
    with demo.runtime(store=Store(":memory:"), audit_log=tmp_path / "arg-audit.jsonl") as runtime:
        ok(runtime.run(SCRIPT))
    _check_two_lines(tmp_path / "arg-audit.jsonl")
    assert not (tmp_path / "env-audit.jsonl").exists()


def _accounts_file(demo: Demo, path: Path, audit_log: Path) -> Path:
    document = {
        "version": 1,
        "settings": {"audit_log": str(audit_log)},
        "integrations": {ident: {"default": "default", "accounts": accounts}
                         for ident, accounts in demo.accounts_data.items()},
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_audit_log_from_the_accounts_file_setting(demo: Demo, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "file-audit.jsonl"
    accounts = _accounts_file(demo, tmp_path / "accounts.yaml", path)
    with Runtime(accounts=accounts, store=Store(":memory:"), clock=demo.clock) as runtime:
        ok(runtime.run(SCRIPT))
    _check_two_lines(path)
    # the environment variable takes precedence over the file's setting
    env_path = tmp_path / "env-over-file.jsonl"
    monkeypatch.setenv("KOSMO_AUDIT_LOG", str(env_path))
    with Runtime(accounts=accounts, store=Store(":memory:"), clock=demo.clock) as runtime:
        ok(runtime.run(SCRIPT))
    _check_two_lines(env_path)
    assert len(lines(path)) == 2


def test_kosmo_run_audit_log_flag_with_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli-audit.jsonl"
    code = main(["run", "--demo", "--json", "--audit-log", str(path), "-e", SCRIPT])
    out = capsys.readouterr()
    assert code == 0, out.err
    envelope = json.loads(out.out)
    assert envelope["ok"] is True and envelope["result"] == 1
    _check_two_lines(path)
    entries = lines(path)
    for entry, call in zip(entries, envelope["calls"], strict=True):  # --json carries the same facts
        assert entry["run_id"] == call["run_id"] and entry["retries"] == call["retries"]
        assert entry["status"] == call["status"] and entry["function"] == call["function"]
        assert [(r["method"], r["path"], r["status"]) for r in entry["requests"]] == \
            [(r["method"], r["path"], r["status"]) for r in call["requests"]]
    text = path.read_text(encoding="utf-8") + out.out + out.err
    for secrets in credential_values().values():
        for secret in secrets:
            assert secret not in text
    assert os.environ.get("KOSMO_AUDIT_LOG") is None


# -- replicas: one file on one machine, per-replica files merged by time --------------------------

_APPENDER = """
import sys
from kosmo_runtime._audit import AuditLog
from kosmo_runtime._result import CallRecord
log = AuditLog(sys.argv[1])
for n in range(int(sys.argv[3])):
    log.record(CallRecord(integration="whereby", function="create_room", account="default", operation="write",
                          duration=0.001, ok=True, run_id=f"{sys.argv[2]}-{n}"), {"pad": "x" * 8000})  # 8 KB lines
log.close()
"""


def test_replicas_on_one_machine_share_a_file_and_per_replica_files_sort_by_time(tmp_path: Path) -> None:
    import subprocess
    import sys

    shared, lines = tmp_path / "audit.jsonl", 200
    children = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(shared), name, str(lines)])
                for name in ("a", "b")]
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    written = shared.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in written]  # whole lines only: none torn or interleaved
    assert sorted(entry["run_id"] for entry in entries) == sorted(f"{r}-{n}" for r in "ab" for n in range(lines))
    # README (Deployment): each line begins with its UTC time, so `sort` of per-replica files is the merged log
    assert all(line.startswith('{"time": "') for line in written)
    merged = sorted(written)
    assert [json.loads(line)["time"] for line in merged] == sorted(entry["time"] for entry in entries)
