"""Pending approvals and mailboxes on every state backend (memory, SQLite, a real redis-server), and
``kosmo approvals`` deciding, from another process, an approval a run waits for in this one."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kosmo_runtime import _pending
from kosmo_runtime._errors import StateUnavailable
from kosmo_runtime._policy import WriteRequest
from kosmo_runtime._state import MemoryState, SqliteState, State
from tests.redis_server import RedisServer, emptied, redis_keys, redis_server_binary

ROOT = Path(__file__).resolve().parents[2]
BINARY = redis_server_binary()
NO_REDIS = "redis-server is not installed (apt-get install redis-server)"
REQUEST = WriteRequest("test-notes", "create_note", "main", {"text": "ship it", "api_key": "***"})


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer | None]:
    if BINARY is None:
        yield None
        return
    with RedisServer(BINARY) as started:
        yield started


def _flushed(server: RedisServer | None) -> str:
    if server is None:
        pytest.skip(NO_REDIS)
    return emptied(server)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def states(request: pytest.FixtureRequest, tmp_path: Path,
           redis_server: RedisServer | None) -> Iterator[Callable[[], State]]:
    """Makes states that share one backend (memory: the same object, as in one process)."""
    made: list[State] = []
    url = _flushed(redis_server) if request.param == "redis" else ""
    shared = MemoryState(":memory:")

    def make() -> State:
        if request.param == "memory":
            return shared
        if request.param == "sqlite":
            state: State = SqliteState(tmp_path / "state.sqlite3")
        else:
            from kosmo_runtime import RedisState

            state = RedisState(url)
        made.append(state)
        return state

    yield make
    for state in made:
        state.close()


def test_an_approval_is_listed_until_decided_and_decided_once(states: Callable[[], State]) -> None:
    asking, deciding = states(), states()
    approval = _pending.ask(asking, REQUEST, "send it?", 30)
    (listed,) = deciding.pending_approvals()
    assert listed == approval
    assert {"integration": "test-notes", "function": "create_note", "account": "main", "message": "send it?",
            "arguments": {"text": "ship it", "api_key": "***"}}.items() <= listed.items()
    assert listed["expires"] == pytest.approx(listed["asked"] + 30)
    assert _pending.decide(deciding, approval["id"], True, _pending.BY_OPERATOR)
    assert not _pending.decide(deciding, approval["id"], False, _pending.BY_CLIENT)  # the first decision wins
    assert deciding.pending_approvals() == []
    assert _pending.await_decision(asking, approval["id"], 10) == {"approved": True, "by": _pending.BY_OPERATOR}


def test_the_waiting_run_wakes_on_a_decision_made_elsewhere(states: Callable[[], State]) -> None:
    asking, deciding = states(), states()
    approval = _pending.ask(asking, REQUEST, "send it?", 30)
    decided: list[dict[str, Any] | None] = []
    waiter = threading.Thread(target=lambda: decided.append(_pending.await_decision(asking, approval["id"], 30)))
    waiter.start()
    assert _pending.decide(deciding, approval["id"], False, _pending.BY_CLIENT)
    waiter.join(30)
    assert decided == [{"approved": False, "by": _pending.BY_CLIENT}]


def test_no_decision_within_the_timeout_withdraws_the_approval(states: Callable[[], State]) -> None:
    asking, deciding = states(), states()
    approval = _pending.ask(asking, REQUEST, "send it?", 30)
    assert _pending.await_decision(asking, approval["id"], 0.05) is None
    assert deciding.pending_approvals() == []
    assert not _pending.decide(deciding, approval["id"], True, _pending.BY_OPERATOR)  # too late: nothing is sent


def test_mailboxes_keep_order_and_a_take_waits_at_most_its_timeout(states: Callable[[], State]) -> None:
    posting, taking = states(), states()
    posting.post("round:a", {"n": 1}, 30)
    posting.post("round:a", {"n": 2}, 30)
    posting.post("round:b", {"n": 3}, 30)
    assert [taking.take("round:a", 5), taking.take("round:a", 5)] == [{"n": 1}, {"n": 2}]
    assert taking.take("round:a", 0.05) is None and taking.take("round:a", 0) is None
    assert taking.take("round:b", 0) == {"n": 3}
    took: list[dict[str, Any] | None] = []
    taker = threading.Thread(target=lambda: took.append(taking.take("round:c", 30)))
    taker.start()
    posting.post("round:c", {"n": 4}, 30)
    taker.join(30)
    assert took == [{"n": 4}]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_approvals_and_mail_expire(kind: str, tmp_path: Path) -> None:
    clock = FakeClock()
    state: State = MemoryState(":memory:", clock=clock) if kind == "memory" else \
        SqliteState(tmp_path / "state.sqlite3", clock=clock)
    state.ask_approval({"id": "a1", "asked": 1}, 10)
    state.post("round:x", {"n": 1}, 10)
    clock.now += 11
    assert state.pending_approvals() == []
    assert not state.decide_approval("a1", {"approved": True}, 10)
    assert state.take("round:x", 0) is None
    state.close()


def test_redis_keys_carry_ttls_expire_and_stay_bounded(redis_server: RedisServer | None) -> None:
    import redis

    from kosmo_runtime import RedisState

    url = _flushed(redis_server)
    state = RedisState(url)
    client = redis.Redis.from_url(url)
    try:
        for n in range(1000):  # decided, withdrawn at the timeout, and round mail taken: nothing is left
            approval = _pending.ask(state, REQUEST, "send it?", 30)
            if n % 2:
                _pending.decide(state, approval["id"], True, _pending.BY_CLIENT)
            assert (_pending.await_decision(state, approval["id"], 0 if n % 2 == 0 else 5) is None) is (n % 2 == 0)
            state.post(f"round:{n}", {"done": {}}, 30)
            assert state.take(f"round:{n}", 5) == {"done": {}}
        assert redis_keys(url) == []
        state.ask_approval({"id": "short", "asked": 1}, 0.2)  # nobody waits for this one: it expires by itself
        state.post("round:left", {"n": 1}, 0.2)
        assert sorted(redis_keys(url)) == [b"kosmo:approval:short", b"kosmo:approvals", b"kosmo:mail:round:left"]
        assert all(0 < client.pttl(key) <= 200 for key in redis_keys(url))
        deadline = time.monotonic() + 10
        while redis_keys(url) and time.monotonic() < deadline:
            state.take("round:nothing", 0.05)  # a bounded wait on Redis while the TTLs run out
        assert redis_keys(url) == [] and state.pending_approvals() == []
    finally:
        client.close()
        state.close()


def test_redis_unreachable_is_state_unavailable_for_approvals() -> None:
    from kosmo_runtime import RedisState

    state = RedisState("redis://:pw@127.0.0.1:9/0", timeout=0.5)
    for attempt in (lambda: _pending.ask(state, REQUEST, "send it?", 30), state.pending_approvals,
                    lambda: _pending.decide(state, "x", True, _pending.BY_OPERATOR),
                    lambda: state.take("round:x", 0.5), lambda: state.post("round:x", {}, 1)):
        with pytest.raises(StateUnavailable, match=r"redis://:\*\*\*@127\.0\.0\.1:9/0"):
            attempt()
    state.close()


# -- kosmo approvals, in another process ----------------------------------------------------------


def _kosmo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kosmo_runtime", "approvals", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
@pytest.mark.parametrize("action", ["approve", "deny"])
def test_kosmo_approvals_decides_what_a_run_waits_for_in_another_process(
        kind: str, action: str, tmp_path: Path, redis_server: RedisServer | None) -> None:
    if kind == "redis":
        from kosmo_runtime import RedisState

        url = _flushed(redis_server)
        state: State = RedisState(url)
    else:
        url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
        state = SqliteState(tmp_path / "state.sqlite3")
    approval = _pending.ask(state, REQUEST, "send it?", 60)
    decided: list[dict[str, Any] | None] = []
    waiter = threading.Thread(target=lambda: decided.append(_pending.await_decision(state, approval["id"], 60)))
    waiter.start()
    try:
        listed = _kosmo("list", "--json", "--state", url)
        assert listed.returncode == 0, listed.stderr
        assert [a["id"] for a in json.loads(listed.stdout)] == [approval["id"]]
        text = _kosmo("list", "--state", url).stdout
        assert approval["id"] in text and "test-notes.create_note on account 'main'" in text and "***" in text
        done = _kosmo(action, approval["id"], "--state", url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("approved: " if action == "approve" else "denied: ")
    finally:
        waiter.join(60)
    assert decided == [{"approved": action == "approve", "by": _pending.BY_OPERATOR}]
    again = _kosmo(action, approval["id"], "--state", url)
    assert again.returncode == 1 and "no pending approval" in again.stderr
    state.close()


def test_kosmo_approvals_refuses_the_in_process_state() -> None:
    refused = _kosmo("list", "--state", "memory")
    assert refused.returncode == 2 and "needs the state the MCP servers share" in refused.stderr


def test_approval_ids_can_be_typed_on_a_command_line() -> None:
    """``kosmo approvals approve ID``: an id never starts with '-' (argparse would read an option) nor
    holds a character a shell treats specially (URL-safe base64 ids began with '-' one time in 64)."""
    state = MemoryState()
    request = WriteRequest("test-notes", "create_note", "main", {})
    ids = [_pending.ask(state, request, "ok?", 60)["id"] for _ in range(500)]
    assert len(set(ids)) == 500
    assert all(len(i) >= 16 and i.isalnum() and not i.startswith("-") for i in ids), [i for i in ids if not i.isalnum()]
