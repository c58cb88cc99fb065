"""Load on ``kosmo mcp --http`` (loopback only, bounded): 200 concurrent clients, 20 scripts each, hostile ones mixed in.

The server is the one ``kosmo mcp --demo --http`` builds (the tools, the run gate, the token and Host
checks, a worker process per core), in a child process, with the demo's client-side rate limits off (the test is of the server,
not of the services' quotas) and tighter run limits (10 M instructions, 16 MiB) so the hostile scripts end in ~0.1 s and RSS stays
small on a shared machine. Each client
speaks the 2026-07-28 protocol (plain JSON-RPC POSTs, as the SDK's client sends them) over one shared
``httpx.AsyncClient`` and runs its 20 scripts in turn, for at most ``SECONDS``; a ``server_busy`` answer
is waited out (its ``retry_after``) and the script sent again. Every request must get a JSON-RPC answer;
the server must be alive at the end. Recorded: p50/p99 latency of the answers beside the same scripts
from one client on the idle server just before, and the server's RSS (start and peak, VmHWM).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, Figure

from tests.ports import free_port

CLIENTS = 200
SCRIPTS_PER_CLIENT = 20
SECONDS = 40.0  # the load phase stops sending after this; answers still pending are awaited
PROTOCOL = "2026-07-28"

_SERVER = """
import sys
from kosmo_runtime._demo import Demo
from kosmo_runtime._limits import Limits
from kosmo_runtime._mcp import build_server
from kosmo_runtime._mcp_gate import RunGate
from kosmo_runtime._mcp_http import HttpOptions, serve_http
from kosmo_runtime._mcp_token import Token

port, token, sessions = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
workers = int(sys.argv[4]) or None  # kosmo mcp --http's default: one worker process per core
limits = Limits(instructions=10_000_000, memory=16 * 2**20, wall_time=5, calls=100)
with Demo(rate_limits=False) as demo, demo.runtime(limits=limits, workers=workers) as runtime:
    runtime.worker_pool  # started before the first request, as kosmo mcp does
    server = build_server(runtime, gate=RunGate(longest=limits.wall_time))  # the defaults: 8 running, 32 waiting
    serve_http(server, HttpOptions(port=port, token=Token(token, "bench"), max_sessions=sessions))
"""
DEFAULT_SESSIONS = 100  # kosmo mcp --max-sessions
UNCAPPED_SESSIONS = 10_000  # the SDK's default, what the server had before
OPENED_SESSIONS = 1_000

NORMAL = [
    ("execute_lua", {"code": "return app.integrations.whereby.list_rooms{limit = 2}"}),
    ("execute_lua", {"code": 'return #app.integrations["goto-webinar"].list_webinars{size = 5}._embedded.webinars'}),
    ("execute_lua", {"code": 'return type(app.integrations["cal-com"].list_bookings{})'}),
    ("execute_lua", {"code": "return app.integrations.agora.list_projects{}"}),
    ("execute_lua", {"code": "local s = 0 for i = 1, 10000 do s = s + i end return s"}),
    ("execute_lua", {"code": 'return ("kosmo "):rep(100):upper():len()'}),
    ("execute_lua", {"code": "local w = app.integrations.whereby return #app.parallel{function() return "
                             "w.list_rooms{limit = 1} end, function() return w.list_meetings{} end, function() "
                             "return app.integrations.agora.list_projects{} end}"}),
    ("call_integration", {"function": "whereby.list_rooms", "arguments": {"limit": 1}}),
    ("lua_search_docs", {"query": "webinar sessions", "limit": 5}),
    ("lua_read_doc", {"path": "integrations.whereby.list_rooms"}),
]
HOSTILE = [
    ("execute_lua", {"code": "while true do end"}),  # instruction limit
    ("execute_lua", {"code": 'local t = {} for i = 1, 1e9 do t[i] = ("x"):rep(1024) .. i end'}),  # memory limit
    ("execute_lua", {"code": 'return ("a"):rep(5000):find(("a*"):rep(20) .. "b")'}),  # pattern bomb
    ("execute_lua", {"code": 'error(("x"):rep(1e6))'}),  # a huge error
    ("lua_search_docs", {"query": "webinar " * 10_000}),  # an 80 KB query
]
SCRIPTS = (NORMAL * 2)[:SCRIPTS_PER_CLIENT - len(HOSTILE)] + HOSTILE  # 15 normal + 5 hostile


def _rss(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) in MiB of ``pid`` and its worker processes, summed."""
    fields = {"VmRSS": 0.0, "VmHWM": 0.0}
    for process in _tree(pid):
        try:
            lines = Path(f"/proc/{process}/status").read_text().splitlines()
        except OSError:  # gone meanwhile
            continue
        for line in lines:
            key, _, value = line.partition(":")
            if key in fields:
                fields[key] += int(value.split()[0]) / 1024
    return fields


def _tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(descendant for child in children for descendant in _tree(int(child)))]


class _Load:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
                        "MCP-Protocol-Version": PROTOCOL}
        self.sent = self.answered = self.busy = self.ran = self.tool_errors = 0
        self.failures: list[str] = []
        self.latencies: list[float] = []

    async def call(self, http: httpx.AsyncClient, tool: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
        body = {"jsonrpc": "2.0", "id": self.sent, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments,
                           "_meta": {"io.modelcontextprotocol/protocolVersion": PROTOCOL,
                                     "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                                     "io.modelcontextprotocol/clientCapabilities": {}}}}
        self.sent += 1
        started = time.perf_counter()
        try:
            response = await http.post(self.url, json=body, headers={**self.headers, "Mcp-Method": "tools/call",
                                                                     "Mcp-Name": tool})
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self.failures.append(f"{tool}: {type(exc).__name__}: {exc}"[:200])
            return None
        self.latencies.append(time.perf_counter() - started)
        if response.status_code != 200 or "result" not in answer:
            self.failures.append(f"{tool}: HTTP {response.status_code} {str(answer)[:160]}")
            return None
        self.answered += 1
        return answer["result"]  # type: ignore[no-any-return]

    async def client(self, http: httpx.AsyncClient, index: int, stop_at: float) -> None:
        for turn in range(SCRIPTS_PER_CLIENT):
            tool, arguments = SCRIPTS[(index + turn) % len(SCRIPTS)]
            while time.monotonic() < stop_at:
                result = await self.call(http, tool, arguments)
                error = ((result or {}).get("structuredContent") or {}).get("error") or {}
                if error.get("code") != "server_busy":
                    self.ran += result is not None
                    self.tool_errors += bool(result and result.get("isError"))
                    break
                self.busy += 1
                await asyncio.sleep(min(error.get("retry_after", 1), max(0.0, stop_at - time.monotonic())))
            else:
                return


async def _run(url: str, token: str, clients: int, seconds: float) -> _Load:
    load = _Load(url, token)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0), limits=limits) as http:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(load.client(http, index, stop_at) for index in range(clients)))
    return load


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


class _Server:
    """The bench server in a child process, on a free loopback port."""

    def __init__(self, home: str, sessions: int = DEFAULT_SESSIONS, workers: int | None = None) -> None:
        self.port, self.token = free_port(), secrets.token_urlsafe(32)
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        env = {**os.environ, "XDG_CONFIG_HOME": home, "XDG_DATA_HOME": home, "XDG_STATE_HOME": home}
        count = str(os.cpu_count() or 1 if workers is None else workers)
        self.process = subprocess.Popen([sys.executable, "-c", _SERVER, str(self.port), self.token, str(sessions), count],
                                        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError as refused:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the server did not start: {self.process.communicate()[1].decode()[-2000:]}") from refused
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def bench_mcp_load() -> list[Figure]:
    with tempfile.TemporaryDirectory() as home:
        server = _Server(home)
        url, token = server.url, server.token
        try:
            idle = asyncio.run(_run(url, token, 1, SECONDS))  # one client, the same 20 scripts: the floor
            start_rss = _rss(server.process.pid)["VmRSS"]
            started = time.perf_counter()
            load = asyncio.run(_run(url, token, CLIENTS, SECONDS))
            elapsed = time.perf_counter() - started
            memory = _rss(server.process.pid)
            alive = server.process.poll() is None and asyncio.run(_run(url, token, 1, 10)).answered > 0
        finally:
            server.stop()
    all_answered = not load.failures and load.answered == load.sent and alive
    counts = (f"{CLIENTS} clients x {SCRIPTS_PER_CLIENT} scripts ({len(HOSTILE)} hostile), {elapsed:.1f} s: "
              f"{load.sent} requests, {load.answered} answered, {load.ran} runs done ({load.tool_errors} tool errors "
              f"as expected from the hostile ones), {load.busy} server_busy answers waited out"
              + (f"; failures: {load.failures[:3]}" if load.failures else ""))
    return [
        Figure("MCP HTTP load: requests answered", "requests", load.answered, "requests sent", load.sent,
               "all answered, no crash", all_answered, counts),
        Figure("MCP HTTP load: p50 latency per answer", "ms", statistics.median(load.latencies) * 1e3,
               "one client, idle server", statistics.median(idle.latencies) * 1e3, "reported", None),
        Figure("MCP HTTP load: p99 latency per answer", "ms", _percentile(load.latencies, 0.99) * 1e3,
               "one client, idle server", _percentile(idle.latencies, 0.99) * 1e3, "reported", None),
        Figure("MCP HTTP load: server and workers, peak RSS (VmHWM)", "MiB", memory["VmHWM"], "RSS before the load",
               start_rss,
               "reported", None, f"RSS after the load {memory['VmRSS']:.1f} MiB"),
    ]


async def _open_sessions(url: str, token: str, count: int) -> int:
    """``count`` 2025-protocol sessions opened (initialize) and left open, 50 at a time; how many were refused."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}}}
    refused = 0
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as http:
        for start in range(0, count, 50):
            answers = await asyncio.gather(*(http.post(url, json=body, headers=headers)
                                             for _ in range(min(50, count - start))))
            refused += sum(answer.status_code != 200 for answer in answers)
    return refused


def bench_mcp_sessions() -> list[Figure]:
    """RSS growth of 1,000 sessions opened and abandoned: the default cap beside the SDK's 10,000, same run."""
    grown: dict[int, float] = {}
    refused: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as home:
        for cap in (UNCAPPED_SESSIONS, DEFAULT_SESSIONS):
            server = _Server(home, cap, workers=0)  # sessions live in the server process, not in workers
            try:
                asyncio.run(_open_sessions(server.url, server.token, 20))  # warm: imports, first sessions
                before = _rss(server.process.pid)["VmRSS"]
                refused[cap] = asyncio.run(_open_sessions(server.url, server.token, OPENED_SESSIONS))
                grown[cap] = _rss(server.process.pid)["VmRSS"] - before
            finally:
                server.stop()
    return [Figure(f"MCP HTTP: RSS growth, {OPENED_SESSIONS:,} sessions opened and left, --max-sessions "
                   f"{DEFAULT_SESSIONS}", "MiB", grown[DEFAULT_SESSIONS], f"cap {UNCAPPED_SESSIONS:,} (before)",
                   grown[UNCAPPED_SESSIONS], "bounded by the cap, none refused (oldest idle closed)",
                   refused[DEFAULT_SESSIONS] == 0 and grown[DEFAULT_SESSIONS] < grown[UNCAPPED_SESSIONS] / 2,
                   f"refused: {refused[DEFAULT_SESSIONS]} capped, {refused[UNCAPPED_SESSIONS]} uncapped")]


BENCHMARKS = {"mcp_load": bench_mcp_load, "mcp_sessions": bench_mcp_sessions}

if __name__ == "__main__":
    for figure in bench_mcp_load() + bench_mcp_sessions():
        print(json.dumps(figure.__dict__))
