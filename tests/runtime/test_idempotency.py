"""Idempotency keys: a retried run does not send its writes twice (in one process, and across replicas on Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kosmo_runtime import Demo, Fault, RetryPolicy, Runtime
from kosmo_runtime._policy import WriteRequest
from kosmo_runtime._state import MemoryState, SqliteState, State

CREATE = 'return app.integrations.whereby.create_room{room_name_prefix = "standup"}.roomName'
CREATE_TWO = ('local a = app.integrations.whereby.create_room{room_name_prefix = "one"}.roomName\n'
              'local b = app.integrations.whereby.create_room{room_name_prefix = "two"}.roomName\n'
              'return {a, b}')


@pytest.fixture
def demo() -> Iterator[Demo]:
    with Demo(["whereby"], rate_limits=False) as started:
        yield started


def _posts(demo: Demo) -> int:
    return sum(r.method == "POST" for r in demo.simulators["whereby"].requests)


def _runtime(demo: Demo, state: State) -> Runtime:
    return demo.runtime(state=state, retry=RetryPolicy(sleep=lambda seconds: None))


@pytest.fixture(params=["memory", "sqlite"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[State]:
    made: State = MemoryState(":memory:") if request.param == "memory" else SqliteState(tmp_path / "state.sqlite3")
    yield made
    made.close()


def test_a_retried_run_gets_the_recorded_results_and_sends_nothing(demo: Demo, state: State) -> None:
    with _runtime(demo, state) as runtime:
        first = runtime.run(CREATE_TWO, idempotency_key="job-1")
        assert first.ok, first.error
        assert _posts(demo) == 2
        again = runtime.run(CREATE_TWO, idempotency_key="job-1")
        assert again.ok, again.error
        assert again.result == first.result
        assert _posts(demo) == 2
        assert [c.requests for c in again.calls] == [[], []]  # recorded, not sent


def test_without_a_key_or_with_another_key_the_writes_are_sent(demo: Demo, state: State) -> None:
    with _runtime(demo, state) as runtime:
        assert runtime.run(CREATE, idempotency_key="a").ok
        assert runtime.run(CREATE, idempotency_key="b").ok
        assert runtime.run(CREATE).ok
        assert runtime.run(CREATE).ok
        assert _posts(demo) == 4


def test_a_key_reused_for_a_different_write_is_refused(demo: Demo, state: State) -> None:
    with _runtime(demo, state) as runtime:
        assert runtime.run(CREATE, idempotency_key="k").ok
        other = runtime.run('return app.integrations.whereby.create_room{room_name_prefix = "other"}', idempotency_key="k")
        assert not other.ok
        assert other.error.code == "invalid_argument"  # type: ignore[union-attr]
        assert "idempotency key 'k'" in other.error.message  # type: ignore[union-attr]
        assert _posts(demo) == 1


def test_a_write_whose_outcome_is_unknown_is_not_sent_again(demo: Demo, state: State) -> None:
    with _runtime(demo, state) as runtime:
        demo.simulators["whereby"].inject(Fault("drop", method="POST"))
        lost = runtime.run(CREATE, idempotency_key="k")
        assert lost.error.code == "outcome_unknown"  # type: ignore[union-attr]
        sent = _posts(demo)
        retried = runtime.run(CREATE, idempotency_key="k")
        assert retried.error.code == "outcome_unknown"  # type: ignore[union-attr]
        assert "was not sent again" in retried.error.message  # type: ignore[union-attr]
        assert _posts(demo) == sent


def test_a_write_the_service_refused_may_be_sent_by_the_retry(demo: Demo, state: State) -> None:
    with _runtime(demo, state) as runtime:
        demo.simulators["whereby"].inject(Fault("status", status=400, method="POST"))
        refused = runtime.run(CREATE, idempotency_key="k")
        assert not refused.ok
        retried = runtime.run(CREATE, idempotency_key="k")
        assert retried.ok, retried.error
        assert _posts(demo) == 2


def test_dry_runs_do_not_claim(demo: Demo, state: State) -> None:
    with _runtime(demo, state) as runtime:
        assert runtime.run(CREATE, idempotency_key="k", dry_run=True).ok
        assert runtime.run(CREATE, idempotency_key="k").ok
        assert _posts(demo) == 1


def test_single_calls_take_a_key_too(demo: Demo, state: State) -> None:
    with _runtime(demo, state) as runtime:
        first = runtime.call("whereby.create_room", {"room_name_prefix": "x"}, idempotency_key="c")
        second = runtime.call("whereby.create_room", {"room_name_prefix": "x"}, idempotency_key="c")
        assert first.ok and second.ok
        assert first.result == second.result
        assert _posts(demo) == 1


# -- approval: a replay is not asked about again; deny still refuses ---------------------------------


class Approver:
    """Answers ``answers`` in turn and records what it was asked about."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def __call__(self, request: WriteRequest) -> bool:
        self.asked.append(request.arguments["room_name_prefix"])
        return self.answers.pop(0) if self.answers else False  # asked once too often: declined


def test_an_ask_write_is_asked_once_and_its_replay_is_not_asked_again(demo: Demo, state: State) -> None:
    with _runtime(demo, state) as runtime:
        approve = Approver(True)
        first = runtime.run(CREATE, idempotency_key="k", writes="ask", approve=approve)
        assert first.ok, first.error
        again = runtime.run(CREATE, idempotency_key="k", writes="ask", approve=approve)
        assert again.ok, again.error
        assert again.result == first.result and again.calls[0].replayed is True
        assert approve.asked == ["standup"] and _posts(demo) == 1
        unasked = runtime.run(CREATE, idempotency_key="k", writes="ask")  # nobody could approve: nothing to approve
        assert unasked.ok and unasked.calls[0].replayed is True and _posts(demo) == 1


def test_a_declined_write_is_asked_again_on_the_retry_and_only_it(demo: Demo, state: State) -> None:
    guarded = CREATE_TWO.replace("local b = ", "local ok, b = pcall(function() return ").replace(
        ".roomName\nreturn", ".roomName end)\nreturn")
    with _runtime(demo, state) as runtime:
        first = runtime.run(guarded, idempotency_key="k", writes="ask", approve=Approver(True, False))
        assert first.ok and first.calls[1].error == "permission_denied" and _posts(demo) == 1
        approve = Approver(True)
        retried = runtime.run(guarded, idempotency_key="k", writes="ask", approve=approve)
        assert retried.ok, retried.error
        assert approve.asked == ["two"]  # write 1 replayed unasked, write 2 (declined before) asked and sent
        assert [c.replayed for c in retried.calls] == [True, None] and _posts(demo) == 2
        assert retried.result[0] == first.result[0]
        assert runtime.run(CREATE, idempotency_key="other", writes="ask").error.code == "permission_denied"  # type: ignore[union-attr]


@pytest.mark.parametrize("refusal", [{"read_only": True}, {"writes": "deny"}])
def test_deny_refuses_a_replay_too_and_asks_nobody(demo: Demo, state: State, refusal: dict[str, Any]) -> None:
    with _runtime(demo, state) as runtime:
        assert runtime.run(CREATE, idempotency_key="k").ok
        approve = Approver()
        replay = runtime.run(CREATE, idempotency_key="k", approve=approve, **refusal)
        assert replay.error is not None and replay.error.code == "permission_denied"
        assert "read-only" in replay.error.message and approve.asked == [] and _posts(demo) == 1
        assert runtime.run(CREATE, idempotency_key="k").calls[0].replayed is True  # the record is still there


def test_a_replayed_write_is_audited_as_replayed(demo: Demo, state: State, tmp_path: Path) -> None:
    import json

    audit = tmp_path / "audit.jsonl"
    with demo.runtime(state=state, audit_log=audit) as runtime:
        assert runtime.run(CREATE, idempotency_key="k").ok and runtime.run(CREATE, idempotency_key="k").ok
    sent, replayed = (json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines())
    assert "replayed" not in sent and sent["requests"] != []
    assert replayed["replayed"] is True and replayed["requests"] == [] and replayed["run_id"] != sent["run_id"]
