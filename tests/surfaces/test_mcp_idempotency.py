"""``idempotency_key`` on the MCP tools: a retried tool call never sends a write twice, on one server or
on two replicas sharing a redis-server (each a child process, driven by the MCP SDK's HTTP client)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from kosmo_runtime import Runtime
from kosmo_runtime._mcp import IDEMPOTENCY_KEY, build_server
from tests.fixtures.integrations.test_notes.simulator import NotesSimulator
from tests.redis_server import RedisServer, redis_server_binary
from tests.support import notes_service
from tests.surfaces.test_mcp import FIXTURES, envelope, text
from tests.surfaces.test_mcp_http import KosmoHttp, drive

WRITE = "return app.integrations['test-notes'].create_note{text = 'once'}.note.id"


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[tuple[NotesSimulator, Path]]:
    with notes_service(tmp_path, writes="allow") as pair:
        yield pair


def posts(simulator: NotesSimulator) -> int:
    return sum(request.method == "POST" for request in simulator.requests)


def in_process(accounts: Path, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Each tool call in turn on one in-process server (state in memory) exposing the write functions."""
    results: list[Any] = []
    with Runtime(accounts=accounts, integration_paths=[FIXTURES], store=":memory:") as runtime:
        server = build_server(runtime, expose_functions=True, allow_writes=True)

        async def run() -> None:
            with anyio.fail_after(60):
                async with Client(server) as client:
                    for tool, arguments in calls:
                        results.append(await client.call_tool(tool, arguments))

        anyio.run(run)
    return results


def test_the_key_is_declared_once_for_every_tool_that_may_write(notes: tuple[NotesSimulator, Path]) -> None:
    _, accounts = notes
    with Runtime(accounts=accounts, integration_paths=[FIXTURES], store=":memory:") as runtime:
        server = build_server(runtime, expose_functions=True, allow_writes=True)
        tools: dict[str, Any] = {}

        async def run() -> None:
            async with Client(server) as client:
                tools.update({tool.name: tool.input_schema for tool in (await client.list_tools()).tools})

        anyio.run(run)
    for name in ("execute_lua", "call_integration", "notes_create_note"):
        assert tools[name]["properties"]["idempotency_key"] == IDEMPOTENCY_KEY, name
        assert "idempotency_key" not in tools[name].get("required", []), name
    for name in ("notes_list_notes", "lua_read_doc"):  # reads and docs have nothing to send twice
        assert "idempotency_key" not in tools[name]["properties"], name
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "| `execute_lua` | `code`, `idempotency_key` |" in readme


@pytest.mark.parametrize("tool, arguments", [
    ("execute_lua", {"code": WRITE}),
    ("call_integration", {"function": "test-notes.create_note", "arguments": {"text": "once"}}),
    ("notes_create_note", {"text": "once"}),
])
def test_a_retry_with_the_same_key_is_answered_from_the_record(notes: tuple[NotesSimulator, Path], tool: str,
                                                                arguments: dict[str, Any]) -> None:
    simulator, accounts = notes
    first, again, other = in_process(accounts, [(tool, {**arguments, "idempotency_key": "job-1"}),
                                                (tool, {**arguments, "idempotency_key": "job-1"}),
                                                (tool, {**arguments, "idempotency_key": "job-2"})])
    sent, replayed, fresh = (envelope(result, ok=True) for result in (first, again, other))
    assert posts(simulator) == 2  # job-1 once, job-2 once
    assert replayed["result"] == sent["result"] != fresh["result"]
    assert "replayed" not in sent["calls"][0] and "replayed" not in fresh["calls"][0]
    assert replayed["calls"][0]["replayed"] is True and replayed["calls"][0]["requests"] == []
    assert "1 write replayed, not sent again" in text(again)
    assert "replayed: an earlier attempt with this idempotency key sent it; not sent again" in text(again)


@pytest.mark.parametrize("key, shown", [("", "0 characters"), ("k" * 201, "201 characters")])
def test_an_unusable_key_is_refused_before_anything_runs(notes: tuple[NotesSimulator, Path], key: str,
                                                         shown: str) -> None:
    simulator, accounts = notes
    results = in_process(accounts, [("execute_lua", {"code": WRITE, "idempotency_key": key}),
                                    ("notes_create_note", {"text": "x", "idempotency_key": key})])
    for result in results:
        error = envelope(result, ok=False)["error"]
        assert error["code"] == "invalid_argument" and error["param"] == "idempotency_key"
        assert f"1 to 200 characters, not {shown}; nothing was run" in error["message"]
    assert posts(simulator) == 0


# -- two replicas, one redis-server ----------------------------------------------------------------

BINARY = redis_server_binary()


@pytest.fixture
def replicas(tmp_path: Path, notes: tuple[NotesSimulator, Path]) -> Iterator[Callable[[], tuple[list[KosmoHttp], str]]]:
    """Starts two ``kosmo mcp --http`` replicas sharing one redis-server and one token (answered with them)."""
    if BINARY is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    servers: list[KosmoHttp] = []
    with RedisServer(BINARY) as redis_server:
        token = secrets.token_urlsafe(32)
        env = {"KOSMO_STATE_URL": redis_server.url, "KOSMO_MCP_TOKEN": token,
               "KOSMO_INTEGRATIONS_PATH": str(FIXTURES)}

        def starting() -> tuple[list[KosmoHttp], str]:
            for name in ("a", "b"):
                servers.append(KosmoHttp(tmp_path, "--accounts", str(notes[1]), "--workers", "0", env=env,
                                         name=name, demo=False))
            for server in servers:
                server.wait_ready()
            return servers, token

        try:
            yield starting
        finally:
            for server in servers:
                server.stop()


def test_the_same_key_on_two_replicas_sends_the_write_once(notes: tuple[NotesSimulator, Path],
                                                           replicas: Callable[[], tuple[list[KosmoHttp], str]]) -> None:
    simulator, _ = notes
    (one, other), token = replicas()
    answers: list[Any] = []

    async def call(client: Client) -> None:
        answers.append(await client.call_tool("execute_lua", {"code": WRITE, "idempotency_key": "invite-42"}))

    drive(one.url, token, call)
    drive(other.url, token, call)  # the client's retry after a lost answer, sent to the other replica
    sent, replayed = (envelope(answer, ok=True) for answer in answers)
    assert posts(simulator) == 1
    assert replayed["result"] == sent["result"]
    assert replayed["calls"][0]["replayed"] is True and "replayed" not in sent["calls"][0]
    assert "1 write replayed, not sent again" in text(answers[1])
