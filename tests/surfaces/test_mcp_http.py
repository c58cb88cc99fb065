"""``kosmo mcp --http``: the bearer token, the Host check and the bounds, driven by the MCP SDK's HTTP client.

Each server is a child process on a free loopback port (``KosmoHttp``), stopped at the end of its test;
readiness is polled (connect, or the process's exit), never slept for.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from kosmo_runtime._cli import main
from kosmo_runtime._errors import ConfigError, ServerBusy
from kosmo_runtime._mcp_gate import RunGate
from kosmo_runtime._mcp_http import Guard, HttpOptions, allowed_hosts, announce, bind, parse_host
from kosmo_runtime._mcp_token import Token, load_token

from .test_mcp import envelope, text

REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 30
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
SPIN_LIMITS = ("--wall-time", "4", "--instructions", "20000000000")  # `while true do end` runs 4 s
ANNOUNCED = re.compile(r"kosmo mcp: streamable HTTP at (http://127\.0\.0\.1:([0-9]+)/mcp)\n")  # a whole line
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class KosmoHttp:
    """``kosmo mcp --demo --http 0 ...`` (without ``--demo`` if not ``demo``) in a child process, its standard
    error in a file; ``port`` and ``url`` are the ones its start-up line names (the system picked the port,
    and the server listens on it before naming it: no other program's port is mistaken for it)."""

    port: int
    url: str

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None, name: str = "server",
                 demo: bool = True) -> None:
        self.errors = tmp_path / f"{name}.stderr"
        self.config = tmp_path / "config"
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "XDG_CONFIG_HOME": str(self.config),
                   "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state"), **(env or {})}
        with self.errors.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kosmo_runtime", "mcp", *(["--demo"] if demo else []), "--http", "0", *args],
                cwd=REPO, env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)

    def wait_ready(self) -> KosmoHttp:
        deadline = time.monotonic() + START_SECONDS
        while (found := ANNOUNCED.search(self.stderr())) is None:
            assert time.monotonic() < deadline, f"the server did not start:\n{self.stderr()}"
            try:  # polls the process: a server that exits is reported at once
                code = self.process.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"the server exited with {code}:\n{self.stderr()}") from None
        self.url, self.port = found[1], int(found[2])
        return self

    def exit_code(self) -> int:
        return self.process.wait(timeout=START_SECONDS)

    def stderr(self) -> str:
        return self.errors.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def token(self) -> str:
        return (self.config / "kosmo" / "mcp-token").read_text(encoding="utf-8").strip()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., KosmoHttp]]:
    servers: list[KosmoHttp] = []

    def starting(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> KosmoHttp:
        server = KosmoHttp(tmp_path, *args, env=env, name=f"server{len(servers)}")
        servers.append(server)
        return server.wait_ready() if ready else server

    yield starting
    for server in servers:
        server.stop()


def drive(url: str, token: str | None, body: Callable[[Client], Awaitable[None]]) -> None:
    """Run ``body`` with an SDK client connected to ``url``, sending ``token`` as the bearer token."""
    async def run() -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
            async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=60) as client:
                await body(client)

    try:
        anyio.run(run)
    except BaseException as exc:  # the failing assertion, not the task groups around it
        leaf: BaseException = exc
        while len(getattr(leaf, "exceptions", ())) == 1:
            leaf = leaf.exceptions[0]  # type: ignore[attr-defined]
        if leaf is exc:
            raise
        raise leaf from None


def post(server: KosmoHttp, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(server.url, json=body, headers={**MCP_HEADERS, **headers}, timeout=30)


async def list_rooms(client: Client) -> None:
    result = await client.call_tool("execute_lua", {"code": "return app.integrations.whereby.list_rooms{limit = 1}"})
    assert len(envelope(result, ok=True)["result"]["data"]) == 1


# --------------------------------------------------------------------------------------------------
# the bearer token
# --------------------------------------------------------------------------------------------------


def test_requests_need_the_token_and_get_the_spec_s_challenge(start: Callable[..., KosmoHttp]) -> None:
    server = start()
    token = server.token()
    metadata_url = f"http://127.0.0.1:{server.port}/.well-known/oauth-protected-resource/mcp"

    missing = post(server, INITIALIZE)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == f'Bearer realm="kosmo", resource_metadata="{metadata_url}"'
    wrong = post(server, INITIALIZE, Authorization="Bearer " + "x" * len(token))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert post(server, INITIALIZE, Authorization=f"Basic {token}").status_code == 401
    assert post(server, INITIALIZE, Authorization=f"Bearer {token[:-1]}").status_code == 401
    metadata = httpx.get(metadata_url, timeout=30).json()  # RFC 9728: public, names the resource
    assert metadata["resource"] == server.url and metadata["bearer_methods_supported"] == ["header"]

    with pytest.raises(Exception):  # noqa: B017 - the SDK's error for a 401 is not part of its API
        drive(server.url, None, list_rooms)
    with pytest.raises(Exception):  # noqa: B017
        drive(server.url, "not-the-token-" * 3, list_rooms)
    drive(server.url, token, list_rooms)
    assert server.stderr().count(token) == 1  # in the start-up snippet only


def test_the_token_is_made_0600_shown_once_and_reused(start: Callable[..., KosmoHttp]) -> None:
    first = start()
    path = first.config / "kosmo" / "mcp-token"
    token = first.token()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    shown = first.stderr()
    assert shown.count(token) == 1 and "shown this once" in shown
    snippet = json.loads(shown[shown.index("{"):shown.rindex("}") + 1])
    assert snippet["mcpServers"]["kosmo"] == {"type": "http", "url": first.url,
                                              "headers": {"Authorization": f"Bearer {token}"}}
    first.stop()

    second = start()
    assert second.token() == token
    assert token not in second.stderr() and str(path) in second.stderr()
    drive(second.url, token, list_rooms)


def test_token_from_the_environment_or_a_given_file(start: Callable[..., KosmoHttp], tmp_path: Path) -> None:
    token = "env-token-" + "e" * 40
    server = start(env={"KOSMO_MCP_TOKEN": token})
    assert not (server.config / "kosmo" / "mcp-token").exists() and token not in server.stderr()
    assert "KOSMO_MCP_TOKEN" in server.stderr()
    drive(server.url, token, list_rooms)
    assert post(server, INITIALIZE, Authorization=f"Bearer {token}x").status_code == 401

    given = tmp_path / "secrets" / "kosmo.token"
    other = start("--token-file", str(given), env={"KOSMO_MCP_TOKEN": token})  # the file wins
    assert stat.S_IMODE(given.stat().st_mode) == 0o600
    drive(other.url, given.read_text(encoding="utf-8").strip(), list_rooms)
    assert post(other, INITIALIZE, Authorization=f"Bearer {token}").status_code == 401


def test_unusable_tokens_stop_the_server(start: Callable[..., KosmoHttp], tmp_path: Path) -> None:
    short = start(env={"KOSMO_MCP_TOKEN": "short"}, ready=False)
    assert short.exit_code() == 2 and "at least 32" in short.stderr()
    readable = tmp_path / "readable.token"
    readable.write_text("r" * 40, encoding="utf-8")
    readable.chmod(0o644)
    exposed = start("--token-file", str(readable), ready=False)
    assert exposed.exit_code() == 2 and "chmod 600" in exposed.stderr()


def test_the_port_listens_before_it_is_named_and_a_busy_one_stops_the_server(
        capsys: pytest.CaptureFixture[str]) -> None:
    listener, options = bind(HttpOptions(port=0))
    with listener:
        assert options.port == listener.getsockname()[1] > 0 and options.url == f"http://127.0.0.1:{options.port}/mcp"
        assert ("127.0.0.1", options.port) in allowed_hosts(options)  # the Host check knows the real port
        socket.create_connection(("127.0.0.1", options.port), timeout=5).close()  # listening (backlog) already
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1 port {options.port}"):
            bind(HttpOptions(port=options.port))
        assert main(["mcp", "--demo", "--workers", "0", "--no-auth", "--http", str(options.port)]) == 2
    shown = capsys.readouterr().err
    assert "cannot listen" in shown and "--http 0" in shown and "streamable HTTP at" not in shown


def test_load_token_reads_what_a_racing_replica_wrote(tmp_path: Path) -> None:
    path = tmp_path / "t"
    made = load_token(path, environ={})
    assert made.created and made.value not in repr(made)
    again = load_token(path, environ={})
    assert (again.value, again.created) == (made.value, False)


def test_no_auth_on_loopback_says_what_it_means(start: Callable[..., KosmoHttp]) -> None:
    server = start("--no-auth")
    assert "--no-auth: no token is checked" in server.stderr()
    assert not (server.config / "kosmo" / "mcp-token").exists()
    drive(server.url, None, list_rooms)


@pytest.mark.parametrize(("argv", "message"), [
    (["--http", "8080", "--no-auth", "--host", "0.0.0.0"], "loopback bind only"),
    (["--http", "8080", "--host", "0.0.0.0"], "needs a token you provision"),
    (["--http", "8080", "--host", "192.0.2.7"], "needs a token you provision"),
    (["--http", "8080", "--no-auth", "--token-file", "t"], "contradict"),
    (["--host", "127.0.0.1"], "add --http PORT"),
    (["--http", "8080", "--allowed-host", "a b"], "--allowed-host"),
])
def test_exposing_options_are_refused_without_a_token(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KOSMO_MCP_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["mcp", "--demo", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# DNS rebinding: the Host and Origin checks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "parsed"), [
    ("127.0.0.1:18765", ("127.0.0.1", 18765)), ("LOCALHOST:80", ("localhost", 80)), ("[::1]:9", ("[::1]", 9)),
    ("kosmo.example.com", ("kosmo.example.com", None)), ("127.0.0.1:18765.evil.com", None),
    ("127.0.0.1:18765@evil.com", None), ("127.0.0.1:", None), ("127.0.0.1:99999", None), ("[::1", None),
    ("[evil]:1", None), ("a b:1", None), ("127.0.0.1:١٢", None), ("", None),
])
def test_host_values_are_parsed_exactly(value: str, parsed: tuple[str, int | None] | None) -> None:
    assert parse_host(value) == parsed


def test_foreign_hosts_and_origins_are_refused(start: Callable[..., KosmoHttp]) -> None:
    server = start("--allowed-host", "kosmo.example.com")
    auth = f"Bearer {server.token()}"
    port = server.port
    for host in (f"127.0.0.1:{port}.evil.com", "evil.com", f"evil.com:{port}", f"127.0.0.1:{port + 1}",
                 "127.0.0.1", f"kosmo.example.com:{port}"):
        refused = post(server, INITIALIZE, Authorization=auth, Host=host)
        assert refused.status_code == 421, host
    assert post(server, INITIALIZE, Host=f"evil.com:{port}").status_code == 421  # before the token check
    for host in (f"localhost:{port}", f"[::1]:{port}", "kosmo.example.com"):
        assert post(server, INITIALIZE, Authorization=auth, Host=host).status_code == 200, host
    assert post(server, INITIALIZE, Authorization=auth, Origin="http://evil.com").status_code == 403
    assert post(server, INITIALIZE, Authorization=auth, Origin=f"http://127.0.0.1:{port}.evil.com").status_code == 403
    assert post(server, INITIALIZE, Authorization=auth, Origin="https://kosmo.example.com").status_code == 200


# --------------------------------------------------------------------------------------------------
# bounds: query size, sessions, runs in flight, body size
# --------------------------------------------------------------------------------------------------


def test_docs_search_query_and_body_are_capped(start: Callable[..., KosmoHttp]) -> None:
    server = start()

    async def body(client: Client) -> None:
        started = time.monotonic()
        refused = await client.call_tool("lua_search_docs", {"query": "webinar " * 10_000})
        assert refused.is_error and time.monotonic() - started < 5
        error = refused.structured_content["error"]
        assert error["type"] == "InvalidArgument" and error["param"] == "query" and "80,000 bytes" in error["message"]
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert tools["lua_search_docs"].input_schema["properties"]["query"]["maxLength"] == 1000
        found = await client.call_tool("lua_search_docs", {"query": "webinar sessions", "limit": 3})
        assert not found.is_error and 1 <= len(found.structured_content["hits"]) <= 3, text(found)

    drive(server.url, server.token(), body)
    big = {**INITIALIZE, "params": {**INITIALIZE["params"], "pad": "x" * (4 * 1024 * 1024)}}
    assert post(server, big, Authorization=f"Bearer {server.token()}").status_code == 413


def test_sessions_are_capped_oldest_idle_closed_first(start: Callable[..., KosmoHttp]) -> None:
    server = start("--max-sessions", "2")
    auth = f"Bearer {server.token()}"
    opened = []
    for _ in range(3):
        answer = post(server, INITIALIZE, Authorization=auth)
        assert answer.status_code == 200
        opened.append(answer.headers["mcp-session-id"])
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

    def status(session: str) -> int:
        return post(server, listing, Authorization=auth, **{"mcp-session-id": session,
                                                            "mcp-protocol-version": "2025-06-18"}).status_code

    assert status(opened[0]) == 404  # the oldest idle one made room for the third
    post(server, listing, Authorization=auth, **{"mcp-protocol-version": "2026-07-28"})  # sessionless: no room made
    assert status(opened[1]) == 200 and status(opened[2]) == 200
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two opened at once, two idle: each finds room
        statuses = list(pool.map(lambda _: post(server, INITIALIZE, Authorization=auth).status_code, range(2)))
    assert statuses == [200, 200]


def test_sessions_all_busy_get_503_with_retry_after(start: Callable[..., KosmoHttp]) -> None:
    server = start("--max-sessions", "1", *SPIN_LIMITS)
    auth = {**MCP_HEADERS, "Authorization": f"Bearer {server.token()}"}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "execute_lua", "arguments": {"code": "while true do end"}}}
    with httpx.Client(timeout=30) as http:  # 2025 protocol: sessions (the SDK's own client speaks 2026-07-28)
        opened = http.post(server.url, json=INITIALIZE, headers=auth)
        session = {**auth, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        http.post(server.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        with http.stream("POST", server.url, json=call, headers=session) as running:
            assert running.status_code == 200  # its answer has begun: the session has a request in flight
            refused = post(server, INITIALIZE, Authorization=auth["Authorization"])
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
            assert '"limit":"wall_time"' in running.read().decode()  # the busy session was left alone
    assert post(server, INITIALIZE, Authorization=auth["Authorization"]).status_code == 200  # idle again: room


def test_runs_beyond_the_bound_are_told_to_retry(start: Callable[..., KosmoHttp]) -> None:
    server = start("--max-runs", "1", "--max-queued", "0", *SPIN_LIMITS)

    async def body(client: Client) -> None:
        async with anyio.create_task_group() as group:
            long_run: dict[str, Any] = {}

            async def spin() -> None:  # holds the one slot until its wall-clock limit
                while True:  # (refused only while a quick run below has the slot)
                    long_run["result"] = await client.call_tool("execute_lua", {"code": "while true do end"})
                    if "ServerBusy" not in text(long_run["result"]):
                        return
            group.start_soon(spin)
            deadline = time.monotonic() + 3
            while True:  # until the long run holds the slot: a quick run either passes first or is refused
                answer = await client.call_tool("execute_lua", {"code": "return 1"})
                if answer.is_error:
                    break
                assert time.monotonic() < deadline, "the long run never held the slot"
        data = envelope(answer, ok=False)
        assert data["error"]["type"] == "ServerBusy" and data["error"]["code"] == "server_busy"
        assert data["error"]["retryable"] is True and 1 <= data["error"]["retry_after"] <= 4
        assert "call the tool again" in data["error"]["hint"] and data["calls"] == []
        assert envelope(long_run["result"], ok=False)["error"]["limit"] == "wall_time"
        assert envelope(await client.call_tool("execute_lua", {"code": "return 2"}), ok=True)["result"] == 2

    drive(server.url, server.token(), body)


def test_the_run_gate_runs_some_queues_some_and_refuses_the_rest() -> None:
    gate = RunGate(running=1, waiting=1, longest=10)
    release = threading.Event()
    answers: list[Any] = []

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            for name in ("first", "second"):
                group.start_soon(lambda name=name: _record(gate, release, name, answers))
            while gate.admitted < 2:  # both inside the gate: one running, one waiting
                await anyio.lowlevel.checkpoint()
            refused = await gate.run(lambda: "third")
            assert isinstance(refused, ServerBusy) and refused.retryable and 1 <= refused.retry_after <= 10
            release.set()
        assert await gate.run(lambda: "fourth") == "fourth"

    anyio.run(scenario)
    assert sorted(answers) == ["first", "second"]


async def _record(gate: RunGate, release: threading.Event, name: str, answers: list[Any]) -> None:
    answers.append(await gate.run(lambda: release.wait(10) and name))


def test_start_up_lines_show_a_new_token_once_and_warn_off_loopback() -> None:
    made = Token("m" * 43, "/x/mcp-token", created=True)
    shown = io.StringIO()
    announce(HttpOptions(port=8765, token=made), shown)
    assert shown.getvalue().count(made.value) == 1 and "warning" not in shown.getvalue()
    again = io.StringIO()
    announce(HttpOptions(port=8765, host="0.0.0.0", token=Token(made.value, "/x/mcp-token")), again)
    assert made.value not in again.getvalue() and "/x/mcp-token" in again.getvalue()
    assert "warning: serving plain HTTP on 0.0.0.0" in again.getvalue() and "TLS-terminating" in again.getvalue()


def test_a_websocket_never_reaches_the_app_unchecked() -> None:
    reached: list[str] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    async def send(message: Any) -> None:
        sent.append(message)

    guard = Guard(app, HttpOptions(port=8765, token=Token("w" * 43, "t")), session_manager=None)
    scope = {"type": "websocket", "path": "/mcp", "headers": [(b"host", b"127.0.0.1:8765")]}
    anyio.run(guard, scope, None, send)
    assert reached == [] and sent == [{"type": "websocket.close", "code": 1008}]


def test_a_place_in_line_lasts_at_most_the_longest_run() -> None:
    gate = RunGate(running=1, waiting=1, longest=0.2)
    release = threading.Event()
    ran: list[str] = []

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: _record(gate, release, "first", ran))
            while gate.admitted < 1:
                await anyio.lowlevel.checkpoint()
            late = await gate.run(lambda: ran.append("second"))  # waits 0.2 s for the slot, then gives up
            assert isinstance(late, ServerBusy) and "within 0.2 s" in late.message
            release.set()
        assert await gate.run(lambda: "third") == "third"

    anyio.run(scenario)
    assert ran == ["first"]  # the one that gave up never ran


def test_a_session_being_opened_is_never_the_one_closed() -> None:
    """The SDK registers a session before the request opening it counts as in flight (its idle deadline is
    still infinite then): making room for another opening request must not close it (a race CI met once,
    where the second of two concurrent initializes closed the first one's new session: 404)."""
    import math

    from kosmo_runtime._mcp_http import _SessionCap

    class Transport:
        def __init__(self, deadline: float) -> None:
            self.idle_scope, self._requests_in_flight = anyio.CancelScope(deadline=deadline), 0

    discarded: list[str] = []

    class Manager:
        def __init__(self) -> None:
            self._server_instances = {"idle": Transport(1.0), "being-opened": Transport(math.inf)}

        async def _discard_session(self, session_id: str, transport: Transport) -> None:
            discarded.append(session_id)
            del self._server_instances[session_id]

    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    async def open_one() -> None:
        cap = _SessionCap(Manager(), 1)  # (a cancel scope is made in an event loop)
        async with cap.opening(send) as answering:
            assert cap._opening == 1
            await answering({"type": "http.response.start", "status": 200})
            assert cap._opening == 0  # answered: its session, if any, now counts in the table
        assert cap._opening == 0

    anyio.run(open_one)
    assert discarded == ["idle"] and sent == ["http.response.start"]
