"""An ``ask`` write approved across replicas: two ``kosmo mcp --http`` processes sharing a redis-server, the
MCP SDK's HTTP client (2026-07-28 rounds) routed like a load balancer that sends the retry carrying the
answer to the other replica; and ``kosmo approvals`` deciding, from a third process, what a run waits for."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitRequestParams, ElicitResult

from kosmo_runtime import LoopbackServer
from tests.fixtures.integrations.test_notes.simulator import KEY, NotesSimulator
from tests.redis_server import RedisServer, redis_server_binary
from tests.surfaces.test_mcp import FIXTURES, envelope
from tests.surfaces.test_mcp_http import REPO, KosmoHttp

BINARY = redis_server_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason="redis-server is not installed (apt-get install redis-server)")
WRITE = "return app.integrations['test-notes'].create_note{text = 'ship it'}.note.text"


class Replicas:
    """Two replicas sharing one redis-server and one token, and the notes simulator they write to."""

    def __init__(self, tmp_path: Path, redis_url: str, simulator_url: str, workers: int = 0) -> None:
        self.redis_url = redis_url
        self.token = secrets.token_urlsafe(32)
        accounts = tmp_path / "accounts.yaml"
        accounts.write_text(f"version: 1\nintegrations:\n  test-notes:\n    accounts:\n      main:\n"
                            f"        api_key: {KEY}\n        base_url: {simulator_url}\n        writes: ask\n",
                            encoding="utf-8")
        env = {"KOSMO_STATE_URL": redis_url, "KOSMO_MCP_TOKEN": self.token, "KOSMO_INTEGRATIONS_PATH": str(FIXTURES)}
        self.servers = [KosmoHttp(tmp_path, "--accounts", str(accounts), "--workers", str(workers), "--approval-timeout", "30",
                                  env=env, name=name, demo=False) for name in ("a", "b")]
        for server in self.servers:
            server.wait_ready()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def notes() -> Iterator[tuple[NotesSimulator, str]]:
    simulator = NotesSimulator([KEY])
    with LoopbackServer(simulator) as server:
        yield simulator, server.url


@pytest.fixture
def replicas(tmp_path: Path, notes: tuple[NotesSimulator, str], request: pytest.FixtureRequest) -> Iterator[Replicas]:
    """Two replicas; parametrized indirectly with N, each runs its scripts in N worker processes (default: none)."""
    assert BINARY is not None
    with RedisServer(BINARY) as redis_server:
        started = Replicas(tmp_path, redis_server.url, notes[1], workers=getattr(request, "param", 0))
        try:
            yield started
        finally:
            started.stop()


class Balancer(httpx2.AsyncBaseTransport):
    """Sends each request to replica A, except a tool call's retry carrying an answer (``requestState``): to B."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.routed: list[tuple[int, str]] = []  # (replica, JSON-RPC method or "retry")
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        message = json.loads(body) if body else {}
        retry = isinstance(message, dict) and "requestState" in (message.get("params") or {})
        replica = 1 if retry else 0
        if request.method == "POST":
            self.routed.append((replica, "retry" if retry else str(message.get("method"))))
        request.url = request.url.copy_with(port=self.ports[replica])
        request.headers["Host"] = f"127.0.0.1:{self.ports[replica]}"
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def call_through(replicas: Replicas, answer: Any, balancer: Balancer, arguments: dict[str, Any] | None = None) -> Any:
    """One execute_lua (``arguments``, default the write) through the balancer; ``answer(params)`` is the client's
    elicitation callback."""
    results = []

    async def run() -> None:
        with anyio.fail_after(120):
            async with httpx2.AsyncClient(transport=balancer, headers={"Authorization": f"Bearer {replicas.token}"},
                                          timeout=httpx2.Timeout(30, read=90)) as http:
                async with Client(streamable_http_client(replicas.servers[0].url, http_client=http), mode="2026-07-28",
                                  elicitation_callback=answer, read_timeout_seconds=90) as client:
                    results.append(await client.call_tool("execute_lua", arguments or {"code": WRITE}))

    anyio.run(run)
    return results[0]


def posts(simulator: NotesSimulator) -> int:
    return sum(request.method == "POST" for request in simulator.requests)


@pytest.mark.parametrize("approve", [True, False])
def test_the_answer_reaches_the_other_replica_and_the_run_goes_on(replicas: Replicas, approve: bool,
                                                                  notes: tuple[NotesSimulator, str]) -> None:
    simulator, _ = notes
    asked: list[str] = []

    async def human(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": True}) if approve else ElicitResult(action="decline")

    balancer = Balancer([server.port for server in replicas.servers])
    result = call_through(replicas, human, balancer)
    assert (1, "retry") in balancer.routed and (0, "tools/call") in balancer.routed  # asked on A, answered on B
    assert len(asked) == 1 and "function: create_note (write)" in asked[0]
    if approve:
        assert envelope(result, ok=True)["result"] == "ship it"
        assert posts(simulator) == 1
    else:
        error = envelope(result, ok=False)["error"]
        assert error["type"] == "PermissionDenied" and "declined" in error["message"]
        assert posts(simulator) == 0


def test_an_operator_decides_with_kosmo_approvals_before_the_client_answers(
        replicas: Replicas, notes: tuple[NotesSimulator, str]) -> None:
    simulator, _ = notes
    environment = {"PATH": "/usr/bin:/bin", "KOSMO_STATE_URL": replicas.redis_url}

    async def operator_first(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        listed = await anyio.run_process([sys.executable, "-m", "kosmo_runtime", "approvals", "list", "--json"],
                                         cwd=REPO, env=environment)
        (pending,) = json.loads(listed.stdout)
        assert pending["function"] == "create_note" and pending["account"] == "main"
        await anyio.run_process([sys.executable, "-m", "kosmo_runtime", "approvals", "approve", pending["id"]],
                                cwd=REPO, env=environment)
        return ElicitResult(action="decline")  # too late: the operator's decision came first

    balancer = Balancer([server.port for server in replicas.servers])
    result = call_through(replicas, operator_first, balancer)
    assert envelope(result, ok=True)["result"] == "ship it"
    assert posts(simulator) == 1
    left = subprocess.run([sys.executable, "-m", "kosmo_runtime", "approvals", "list", "--json"], cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "KOSMO_STATE_URL": replicas.redis_url}, capture_output=True,
                          text=True, timeout=60)
    assert json.loads(left.stdout) == []


@pytest.mark.parametrize("replicas", [1], indirect=True, ids=["1 worker each"])
def test_in_worker_processes_a_keyed_write_is_approved_across_replicas_once_and_replayed_unasked(
        replicas: Replicas, notes: tuple[NotesSimulator, str]) -> None:
    # kosmo mcp --http's default runs scripts in worker processes: the record is in Redis, the question goes
    # from the worker to its replica, the answer comes through the other replica
    simulator, _ = notes
    asked: list[str] = []

    async def human(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    keyed = {"code": WRITE, "idempotency_key": "invite-9"}
    a, b = (server.port for server in replicas.servers)
    first, again = Balancer([a, b]), Balancer([b, a])  # the retry's tool call goes to B
    sent = envelope(call_through(replicas, human, first, keyed), ok=True)
    assert (1, "retry") in first.routed and sent["result"] == "ship it" and posts(simulator) == 1
    replayed = envelope(call_through(replicas, human, again, keyed), ok=True)  # the client's retry, lost answer
    assert replayed["result"] == "ship it" and replayed["calls"][0]["replayed"] is True
    assert len(asked) == 1 and posts(simulator) == 1 and not any(kind == "retry" for _, kind in again.routed)
