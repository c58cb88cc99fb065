"""Idempotency keys: a retried run does not send its writes twice (in one process, and across replicas on Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kosmo_runtime import Demo, Fault, RetryPolicy, Runtime
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
