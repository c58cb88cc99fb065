"""``ask`` writes approved through the MCP client (elicitation), driven by the SDK's own client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from kosmo_runtime import Runtime
from kosmo_runtime._mcp import build_server
from kosmo_runtime._mcp_gate import RunGate
from tests.fixtures.integrations.test_notes.simulator import KEY, NotesSimulator
from tests.support import notes_service
from tests.surfaces.test_mcp import FIXTURES, drive, envelope, params

MODES = pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])  # elicitation/create mid-call; input_required rounds
WRITE = "return app.integrations['test-notes'].create_note{text = 'ship it', tags = {'work'}}"


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[tuple[NotesSimulator, Path]]:
    with notes_service(tmp_path) as pair:
        yield pair


def posts(simulator: NotesSimulator) -> int:
    return sum(request.method == "POST" for request in simulator.requests)


class Human:
    """An elicitation callback: records what it was shown and answers ``answer`` (or never)."""

    def __init__(self, answer: ElicitResult | None, *, after: float = 0) -> None:
        self.answer = answer
        self.after = after  # seconds a slow human takes
        self.asked: list[ElicitRequestParams] = []

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        self.asked.append(params)
        if self.answer is None:
            await anyio.sleep_forever()
        await anyio.sleep(self.after)
        assert self.answer is not None
        return self.answer


def serve(accounts: Path, human: Human, tool: str, arguments: dict[str, Any], *, timeout: float = 10,
          expose: bool = False, mode: str = "legacy", state: Any = None) -> Any:
    """Call ``tool`` once on an in-process server, with ``human`` as the client's elicitation callback."""
    results = []
    with Runtime(accounts=accounts, integration_paths=[FIXTURES], store=":memory:", state=state) as runtime:
        server = build_server(runtime, approval_timeout=timeout, expose_functions=expose, allow_writes=expose)

        async def run() -> None:
            with anyio.fail_after(30):  # a safety net: the approval timeout is what must end a silent client
                async with Client(server, mode=mode, elicitation_callback=human) as client:
                    results.append(await client.call_tool(tool, arguments))

        anyio.run(run)
    return results[0]


@MODES
def test_an_approved_write_is_sent(notes: tuple[NotesSimulator, Path], mode: str) -> None:
    simulator, accounts = notes
    human = Human(ElicitResult(action="accept", content={"approve": True}))
    data = envelope(serve(accounts, human, "execute_lua", {"code": WRITE}, mode=mode), ok=True)
    assert data["result"]["note"]["text"] == "ship it"
    assert posts(simulator) == 1
    (asked,) = human.asked
    message = asked.message
    for shown in ("integration: test-notes", "account: main", "function: create_note (write)",
                  '"text": "ship it"', "would send:", '"method": "POST"', "/v1/notes"):
        assert shown in message, shown
    assert KEY not in message
    assert asked.requested_schema["properties"]["approve"]["type"] == "boolean"


@MODES
def test_a_declined_write_is_denied_and_not_sent(notes: tuple[NotesSimulator, Path], mode: str) -> None:
    simulator, accounts = notes
    human = Human(ElicitResult(action="decline"))
    data = envelope(serve(accounts, human, "call_integration",
                          {"function": "test-notes.create_note", "arguments": {"text": "no"}}, mode=mode), ok=False)
    assert data["error"]["type"] == "PermissionDenied" and "declined" in data["error"]["message"]
    assert data["error"]["account"] == "main" and data["error"]["function"] == "create_note"
    assert posts(simulator) == 0 and len(human.asked) == 1


@MODES
def test_accepting_without_the_checkbox_denies(notes: tuple[NotesSimulator, Path], mode: str) -> None:
    simulator, accounts = notes
    human = Human(ElicitResult(action="accept", content={"approve": False}))
    data = envelope(serve(accounts, human, "notes_create_note", {"text": "unchecked"}, expose=True, mode=mode), ok=False)
    assert data["error"]["code"] == "permission_denied"
    assert posts(simulator) == 0


def test_a_client_that_never_answers_is_denied_at_the_timeout(notes: tuple[NotesSimulator, Path]) -> None:
    simulator, accounts = notes
    human = Human(None)
    data = envelope(serve(accounts, human, "execute_lua", {"code": WRITE}, timeout=0.5), ok=False)
    assert data["error"]["type"] == "PermissionDenied"
    assert "no answer from the MCP client within 0.5 s" in data["error"]["message"]
    assert posts(simulator) == 0 and len(human.asked) == 1


@MODES
def test_parallel_branches_ask_from_their_threads(notes: tuple[NotesSimulator, Path], mode: str) -> None:
    simulator, accounts = notes
    human = Human(ElicitResult(action="accept", content={"approve": True}))
    code = ("local notes = app.integrations['test-notes']\n"
            "local out = app.parallel({function() return notes.create_note{text = 'a'} end,\n"
            "                          function() return notes.create_note{text = 'b'} end})\n"
            "return {out[1].ok, out[2].ok}")
    data = envelope(serve(accounts, human, "execute_lua", {"code": code}, mode=mode), ok=True)
    assert data["result"] == [True, True]
    assert posts(simulator) == 2 and len(human.asked) == 2


def test_a_client_without_elicitation_gets_a_clear_denial(tmp_path: Path,
                                                          notes: tuple[NotesSimulator, Path]) -> None:
    simulator, accounts = notes

    async def body(client: Client) -> None:
        denied = await client.call_tool("execute_lua", {"code": WRITE})
        error = envelope(denied, ok=False)["error"]
        assert error["type"] == "PermissionDenied" and "does not support elicitation" in error["message"]
        assert "writes: allow" in error["hint"]

    drive(params(tmp_path, "--accounts", str(accounts), "--approval-timeout", "5",
                 env={"KOSMO_INTEGRATIONS_PATH": str(FIXTURES)}), body)
    assert posts(simulator) == 0


def test_an_answer_after_the_timeout_is_too_late(notes: tuple[NotesSimulator, Path]) -> None:
    # 2026-07-28: the run waits between the rounds; a retry after the timeout finds the write denied
    simulator, accounts = notes
    human = Human(ElicitResult(action="accept", content={"approve": True}), after=1.0)
    data = envelope(serve(accounts, human, "execute_lua", {"code": WRITE}, timeout=0.3, mode="2026-07-28"), ok=False)
    assert "no answer from the MCP client within 0.3 s" in data["error"]["message"]
    assert posts(simulator) == 0 and len(human.asked) == 1


def test_kosmo_mcp_over_stdio_asks_with_the_sdk_client_defaults(tmp_path: Path,
                                                                notes: tuple[NotesSimulator, Path]) -> None:
    simulator, accounts = notes
    human = Human(ElicitResult(action="accept", content={"approve": True}))

    async def run() -> None:
        server = params(tmp_path, "--accounts", str(accounts), "--approval-timeout", "20",
                        env={"KOSMO_INTEGRATIONS_PATH": str(FIXTURES)})
        with anyio.fail_after(60):
            async with Client(server, elicitation_callback=human) as client:
                data = envelope(await client.call_tool("execute_lua", {"code": WRITE}), ok=True)
                assert data["result"]["note"]["text"] == "ship it"

    anyio.run(run)
    assert posts(simulator) == 1 and len(human.asked) == 1


def test_runs_waiting_for_approvals_are_bounded_by_the_gate(notes: tuple[NotesSimulator, Path]) -> None:
    # 2026-07-28: a run waiting between the rounds has left the gate; the next runs may not pile up behind it
    simulator, accounts = notes
    human = Human(None)  # never answers
    with Runtime(accounts=accounts, integration_paths=[FIXTURES], store=":memory:") as runtime:
        server = build_server(runtime, approval_timeout=5, gate=RunGate(running=1, waiting=0, longest=5))

        async def run() -> None:
            with anyio.fail_after(30):
                async with Client(server, mode="2026-07-28", elicitation_callback=human) as client, \
                        anyio.create_task_group() as group:
                    group.start_soon(client.call_tool, "execute_lua", {"code": WRITE})
                    while not human.asked:  # the first run now waits for its approval, out of the gate
                        await anyio.lowlevel.checkpoint()
                    refused = envelope(await client.call_tool("execute_lua", {"code": WRITE}), ok=False)
                    assert refused["error"]["type"] == "ServerBusy" and "approved" in refused["error"]["message"]
                    assert refused["error"]["retry_after"] == 5 and len(human.asked) == 1
                    group.cancel_scope.cancel()

        anyio.run(run)
    assert posts(simulator) == 0


@MODES
def test_an_unreachable_shared_state_refuses_the_write_with_state_unavailable(notes: tuple[NotesSimulator, Path],
                                                                            mode: str) -> None:
    from kosmo_runtime import RedisState

    simulator, accounts = notes
    human = Human(ElicitResult(action="accept", content={"approve": True}))
    state = RedisState("redis://:pw@127.0.0.1:9/0", timeout=0.5)  # nothing listens there
    data = envelope(serve(accounts, human, "execute_lua", {"code": WRITE}, mode=mode, state=state), ok=False)
    assert data["error"]["code"] == "state_unavailable" and "redis://:***@127.0.0.1:9/0" in data["error"]["message"]
    assert posts(simulator) == 0 and human.asked == []  # never asked on a private fallback


def test_an_operator_answers_an_open_elicitation_with_kosmo_approvals(notes: tuple[NotesSimulator, Path],
                                                                     tmp_path: Path) -> None:
    # 2025 protocols: the form stays open at the client; the operator's decision, through the state, comes first
    import json
    import sys

    simulator, accounts = notes
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    command = [sys.executable, "-m", "kosmo_runtime", "approvals"]

    class Operator(Human):
        async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
            self.asked.append(params)
            listed = await anyio.run_process([*command, "list", "--json", "--state", url], cwd=FIXTURES.parents[2])
            (pending,) = json.loads(listed.stdout)
            await anyio.run_process([*command, "approve", pending["id"], "--state", url], cwd=FIXTURES.parents[2])
            await anyio.sleep_forever()  # the client's user never answers
            raise AssertionError("unreachable")

    operator = Operator(None)
    data = envelope(serve(accounts, operator, "execute_lua", {"code": WRITE}, state=url), ok=True)
    assert data["result"]["note"]["text"] == "ship it"
    assert posts(simulator) == 1 and len(operator.asked) == 1


@MODES
def test_a_retry_with_the_same_key_replays_the_approved_write_unasked(notes: tuple[NotesSimulator, Path], mode: str,
                                                                      tmp_path: Path) -> None:
    simulator, accounts = notes
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"  # what the replicas share (Redis in production)
    keyed = {"code": WRITE, "idempotency_key": "note-7"}
    human = Human(ElicitResult(action="accept", content={"approve": True}))
    sent = envelope(serve(accounts, human, "execute_lua", keyed, mode=mode, state=url), ok=True)
    retry = Human(ElicitResult(action="decline"))  # would deny, if it were asked
    replayed = envelope(serve(accounts, retry, "execute_lua", keyed, mode=mode, state=url), ok=True)
    assert replayed["result"] == sent["result"] and replayed["calls"][0]["replayed"] is True
    assert len(human.asked) == 1 and retry.asked == [] and posts(simulator) == 1
    other = envelope(serve(accounts, retry, "execute_lua", {**keyed, "idempotency_key": "note-8"}, mode=mode,
                           state=url), ok=False)  # a new key is a new write: asked, declined, not sent
    assert other["error"]["code"] == "permission_denied" and len(retry.asked) == 1 and posts(simulator) == 1


@MODES
def test_in_worker_processes_the_retry_replays_unasked_on_a_new_worker(notes: tuple[NotesSimulator, Path],
                                                                       mode: str) -> None:
    # the pool's own shared state holds the record (the Runtime's is in memory); the question goes to the parent
    import os
    import signal

    simulator, accounts = notes
    human = Human(ElicitResult(action="accept", content={"approve": True}))
    keyed = {"code": WRITE, "idempotency_key": "note-9"}
    results = []
    with Runtime(accounts=accounts, integration_paths=[FIXTURES], store=":memory:", workers=1) as runtime:
        server = build_server(runtime, approval_timeout=30)
        pool = runtime.worker_pool
        assert pool is not None

        async def run() -> None:
            with anyio.fail_after(120):
                async with Client(server, mode=mode, elicitation_callback=human) as client:
                    results.append(await client.call_tool("execute_lua", keyed))
                    (sender,) = pool.pids
                    os.kill(sender, signal.SIGKILL)  # the worker that sent the write is gone
                    results.append(await client.call_tool("execute_lua", keyed))
                    assert sender not in pool.pids

        anyio.run(run)
    sent, replayed = (envelope(result, ok=True) for result in results)
    assert replayed["result"] == sent["result"] and replayed["calls"][0]["replayed"] is True
    assert len(human.asked) == 1 and posts(simulator) == 1
