"""Record and replay (``Runtime.run(record=..., replay=...)``, ``kosmo run --record/--replay``).

Recordings are made against the demo simulators over loopback; replays run with a demo whose
simulators are stopped (its accounts point at closed ports), so a request that reached the network
would fail. Replays are compared with their recordings: the same result (canonical JSON: Lua's table
order is not stable between two Lua states), the same output, the same calls and requests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kosmo_runtime import Account, Demo, Fault, NetworkError, RetryPolicy, RunResult, Secret, Store
from kosmo_runtime._cassette import CASSETTE_VERSION, open_tape
from kosmo_runtime._cli import main
from kosmo_runtime._clock import utc_now
from kosmo_runtime._discovery import Catalog
from kosmo_runtime._http import ClientPool, Http
from tests.reliability.cases import credential_values

ROOT = Path(__file__).resolve().parents[2]
DEMO_SCRIPT = (ROOT / "examples" / "demo.lua").read_text(encoding="utf-8")


def same_run(recorded: RunResult, replayed: RunResult) -> None:
    """The replay did what the recording did."""
    assert replayed.ok is recorded.ok, replayed.error and replayed.error.to_dict()
    assert json.dumps(replayed.result, sort_keys=True) == json.dumps(recorded.result, sort_keys=True)
    assert replayed.output == recorded.output
    assert (replayed.error and replayed.error.to_dict()) == (recorded.error and recorded.error.to_dict())

    def calls(result: RunResult) -> list[Any]:
        return [(c.integration, c.function, c.account, c.ok, c.error, c.status, c.retries,
                 [(r["method"], r["path"], r.get("status"), r.get("error")) for r in c.requests]) for c in result.calls]

    assert calls(replayed) == calls(recorded)


class NoNetwork(httpx.BaseTransport):
    """Stands in for the network of a replayed run: counts what reaches it, answers nothing (the stopped
    simulators' ports could be reused by another process on a busy machine; this cannot)."""

    def __init__(self) -> None:
        self.reached: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.reached.append(f"{request.method} {request.url.path}")
        raise httpx.ConnectError("no network in a replay", request=request)


def every_secret() -> list[str]:
    return [value for values in credential_values().values() for value in values]


@pytest.fixture(scope="module")
def stopped() -> Demo:
    """A demo whose simulators are stopped: its accounts are real, its services answer nothing."""
    demo = Demo(rate_limits=False)
    demo.close()
    return demo


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo(rate_limits=False) as running:
        yield running


def test_demo_replays_identically_without_the_simulators(demo: Demo, stopped: Demo, tmp_path: Path) -> None:
    cassette = tmp_path / "demo.json"
    with demo.runtime(store=Store(":memory:")) as runtime:
        recorded = runtime.run(DEMO_SCRIPT, name="demo.lua", record=cassette)
    assert recorded.ok, recorded.error and recorded.error.to_dict()
    document = json.loads(cassette.read_text(encoding="utf-8"))
    assert document["kosmo_cassette"] == CASSETTE_VERSION and document["script"] == "demo.lua"
    sent = sum(len(call.requests) for call in recorded.calls)
    assert len(document["exchanges"]) == sent > 10
    first = document["exchanges"][0]
    assert set(first) == {"integration", "account", "request", "response"}
    assert {"method", "path", "query", "headers"} <= set(first["request"])
    assert {"status", "reason", "headers", "body"} <= set(first["response"])
    network = NoNetwork()
    with stopped.runtime(store=Store(":memory:"), transport=network) as runtime:
        replayed = runtime.run(DEMO_SCRIPT, name="demo.lua", replay=cassette)
        again = runtime.run(DEMO_SCRIPT, name="demo.lua", replay=cassette)  # a cassette replays any number of times
        assert network.reached == []  # the replays sent nothing
        live = runtime.run(DEMO_SCRIPT, name="demo.lua")  # without the cassette, the same runtime reaches out
    same_run(recorded, replayed)
    same_run(recorded, again)
    assert not live.ok and live.error is not None and live.error.code == "network_error" and network.reached


def test_no_secret_enters_a_cassette(demo: Demo, tmp_path: Path) -> None:
    cassette = tmp_path / "all.json"
    with demo.runtime(store=Store(":memory:")) as runtime:
        checks = {ident: runtime.catalog.find(ident).manifest.check for ident in demo.accounts_data}  # type: ignore[union-attr]
        script = "\n".join(f"pcall(app.integrations.{ident.replace('-', '_')}.{account}.{check}, {{}})"
                           for ident, check in checks.items() for account in demo.accounts_data[ident])
        result = runtime.run(script, record=cassette)
    assert result.ok, result.error and result.error.to_dict()
    assert len({(c.integration, c.account) for c in result.calls}) == sum(map(len, demo.accounts_data.values()))
    text = cassette.read_text(encoding="utf-8")
    secrets = every_secret()
    assert secrets and not [secret for secret in secrets if secret in text]
    assert '"authorization": "***"' in text


def _whereby_pool(answer: httpx.Response) -> tuple[Any, Any, Account]:
    manifest = Catalog().find("whereby").manifest  # type: ignore[union-attr]
    account = Account("whereby", "default", {"base_url": "http://127.0.0.1:9"},
                      {"api_key": Secret("wb-secret-value-123")})
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    return ClientPool(transport=httpx.MockTransport(handler)), manifest, account


def _http(pool: ClientPool, manifest: Any, account: Account) -> Http:
    """Requests as an integration call sends them, retries not waiting."""
    return Http(pool.client(manifest, account), manifest, function="test", account=account.name,
                remaining=lambda: 10.0, retry=RetryPolicy(sleep=lambda seconds: None))


def test_secret_looking_headers_query_and_body_fields_are_redacted(tmp_path: Path) -> None:
    answer = httpx.Response(200, json={"token": "a-service-token", "password": "pw-in-answer",
                                       "nextPageToken": "cursor-1", "note": "key wb-secret-value-123 echoed"},
                            headers={"set-cookie": "sid=cookie-value", "x-request-id": "r1"})
    pool, manifest, account = _whereby_pool(answer)
    tape = open_tape(record=tmp_path / "c.json", replay=None, pool=pool, clock=utc_now)
    _http(tape.pool, manifest, account).post(
        "/v1/rooms", params={"api_key": "query-secret", "access_token": "tok-2", "limit": "2"},
        json={"client_secret": "body-secret", "nested": [{"password": "pw-1", "name": "kept"}],
              "text": "carries wb-secret-value-123 inside"},
        headers={"x-api-key": "header-secret", "cookie": "c=cookie-secret"})
    tape.finish(RunResult(ok=True), "t.lua")
    text = (tmp_path / "c.json").read_text(encoding="utf-8")
    for secret in ("wb-secret-value-123", "query-secret", "tok-2", "body-secret", "pw-1", "header-secret",
                   "cookie-secret", "a-service-token", "pw-in-answer", "cookie-value"):
        assert secret not in text, secret
    exchange = json.loads(text)["exchanges"][0]
    assert exchange["request"]["query"] == [["api_key", "***"], ["access_token", "***"], ["limit", "2"]]
    assert exchange["request"]["body"]["nested"] == [{"password": "***", "name": "kept"}]
    assert exchange["request"]["headers"]["authorization"] == "***"
    assert exchange["response"]["body"]["nextPageToken"] == "cursor-1"  # a cursor replays as it came
    assert exchange["response"]["headers"]["x-request-id"] == "r1"


def test_a_request_the_cassette_does_not_hold_fails_clearly(demo: Demo, stopped: Demo, tmp_path: Path) -> None:
    cassette = tmp_path / "two.json"
    with demo.runtime(store=Store(":memory:")) as runtime:
        recorded = runtime.run("return #app.integrations.whereby.list_rooms{limit = 2}.data", record=cassette)
    assert recorded.ok
    with stopped.runtime(store=Store(":memory:")) as runtime:
        edited = runtime.run("return #app.integrations.whereby.list_rooms{limit = 3}.data", name="edited.lua",
                             replay=cassette)
        extra = runtime.run("local w = app.integrations.whereby\nlocal n = #w.list_rooms{limit = 2}.data\n"
                            "return n + #w.list_rooms{limit = 2}.data", name="extra.lua", replay=cassette)
        fewer = runtime.run("return 1", replay=cassette)
    error = edited.error
    assert error is not None and error.code == "replay_mismatch" and error.type == "ReplayMismatch"
    assert error.got == "whereby.default: GET /v1/meetings?limit=3"
    assert error.expected == "whereby.default: GET /v1/meetings?limit=2 (exchange 1 of 1)"
    assert "limit=3" in error.message and "limit=2" in error.message and error.hint and error.line == 1
    assert (error.integration, error.function, error.script) == ("whereby", "list_rooms", "edited.lua")
    assert edited.calls[0].error == "replay_mismatch"
    assert extra.error is not None and extra.error.code == "replay_mismatch" and extra.error.line == 3
    assert extra.error.expected == "no more requests (all 1 exchanges were used)"
    assert fewer.ok and fewer.result == 1  # an edited script may send less than was recorded


def test_retries_and_failures_replay_as_recorded(demo: Demo, stopped: Demo, tmp_path: Path) -> None:
    cassette = tmp_path / "retry.json"
    waits: list[float] = []
    script = ("local ok, e = pcall(app.integrations.whereby.get_room, {room_name = 'no-such-room'})\n"
              "return {#app.integrations.whereby.list_rooms{limit = 1}.data, e.code}")
    demo.simulators["whereby"].inject(Fault("status", status=503, method="GET", path=r"^/v1/meetings$", times=1))
    try:
        with demo.runtime(store=Store(":memory:"), retry=RetryPolicy(sleep=waits.append)) as runtime:
            recorded = runtime.run(script, record=cassette)
    finally:
        demo.simulators["whereby"].clear_faults()
    assert recorded.ok and sum(call.retries for call in recorded.calls) == 1 and len(waits) == 1
    with stopped.runtime(store=Store(":memory:"), retry=RetryPolicy(sleep=waits.append)) as runtime:
        replayed = runtime.run(script, replay=cassette)
    same_run(recorded, replayed)
    assert [r["status"] for c in replayed.calls for r in c.requests].count(503) == 1 and len(waits) == 2


def test_transport_failures_are_recorded_and_raised_again(tmp_path: Path) -> None:
    manifest = Catalog().find("whereby").manifest  # type: ignore[union-attr]
    account = Account("whereby", "default", {"base_url": "http://127.0.0.1:9"}, {"api_key": Secret("k-1234")})

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    tape = open_tape(record=tmp_path / "c.json", replay=None, pool=ClientPool(transport=httpx.MockTransport(refuse)),
                     clock=utc_now)
    with pytest.raises(NetworkError, match="ConnectError: refused"):
        _http(tape.pool, manifest, account).get("/v1/rooms")
    tape.finish(RunResult(ok=True), "t.lua")
    exchanges = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))["exchanges"]
    assert [e["error"] for e in exchanges] == ["ConnectError"] * RetryPolicy().attempts
    assert all("response" not in e for e in exchanges)
    replay = open_tape(record=None, replay=tmp_path / "c.json", pool=ClientPool(), clock=utc_now)
    http = _http(replay.pool, manifest, account)
    with pytest.raises(NetworkError, match=r"ConnectError: ConnectError .replayed."):
        http.get("/v1/rooms")
    assert [r["error"] for r in http.trace.requests] == ["ConnectError"] * RetryPolicy().attempts


@pytest.mark.parametrize("pooled", [False, True], ids=["fresh", "pooled"])
def test_clock_readings_replay_in_order(demo: Demo, stopped: Demo, tmp_path: Path, pooled: bool) -> None:
    # pooled: each run starts on a sandbox the pool built ahead with the Runtime's clock; it reads the tape's
    cassette = tmp_path / "clock.json"
    script = "local t = os.time() local d = os.date('!%Y-%m-%dT%H:%M:%S') return {t, d, os.time() - t}"
    with demo.runtime(store=Store(":memory:"), pool=2 if pooled else 0) as runtime:
        assert not pooled or runtime._sandboxes.wait_full(timeout=30)
        recorded = runtime.run(script, record=cassette)
    readings = json.loads(cassette.read_text(encoding="utf-8"))["clock"]
    assert len(readings) == 3 and readings[0].startswith("2025-01-")
    with stopped.runtime(store=Store(":memory:"), clock=lambda: demo.now().replace(year=2030),
                         pool=2 if pooled else 0) as runtime:
        assert not pooled or runtime._sandboxes.wait_full(timeout=30)
        replayed = runtime.run(script, replay=cassette)
        assert runtime.run("return os.date('!%Y')").result == "2030"  # the next run reads the Runtime's own clock
    assert replayed.result == recorded.result


@pytest.mark.parametrize("content,found", [
    ("not json", "is not JSON"),
    ('{"kosmo_cassette": 99, "exchanges": []}', "found version 99"),
    ("[]", "not a kosmo cassette"),
])
def test_unusable_cassettes_are_configuration_errors(stopped: Demo, tmp_path: Path, content: str, found: str) -> None:
    cassette = tmp_path / "bad.json"
    cassette.write_text(content, encoding="utf-8")
    with stopped.runtime() as runtime:
        result = runtime.run("return 1", replay=cassette)
        missing = runtime.run("return 1", replay=tmp_path / "missing.json")
        nowhere = runtime.run("return 1", record=tmp_path / "no" / "such" / "dir.json")
        both = runtime.run("return 1", record=cassette, replay=cassette)
    assert result.error is not None and result.error.code == "config_error" and found in result.error.message
    assert result.error.file == str(cassette) and result.error.hint
    for failed in (missing, nowhere, both):
        assert failed.error is not None and failed.error.code == "config_error" and failed.error.hint


def test_cli_record_then_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOSMO_ACCOUNTS", raising=False)
    monkeypatch.delenv("KOSMO_AUDIT_LOG", raising=False)
    monkeypatch.setattr("kosmo_runtime._cli._terminal_approver", lambda: None)
    cassette = tmp_path / "run.json"
    assert main(["run", "--demo", "--json", "--record", str(cassette), "--example", "demo"]) == 0
    recorded = json.loads(capsys.readouterr().out)
    assert main(["run", "--demo", "--json", "--replay", str(cassette), "--example", "demo"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert json.dumps(replayed["result"], sort_keys=True) == json.dumps(recorded["result"], sort_keys=True)
    assert replayed["output"] == recorded["output"]
    assert main(["run", "--demo", "--json", "--replay", str(cassette), "-e",
                 "return app.integrations.whereby.list_rooms{limit = 7}"]) == 1
    mismatch = json.loads(capsys.readouterr().out)["error"]
    assert mismatch["code"] == "replay_mismatch" and mismatch["got"].endswith("?limit=7")
    assert main(["run", "--demo", "--replay", str(tmp_path / "none.json"), "-e", "return 1"]) == 2
    assert "cannot read the cassette" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one or the other
        main(["run", "--record", "a", "--replay", "b", "-e", "return 1"])
