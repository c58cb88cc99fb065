"""Upstream faults, for each of the four built-in integrations: retries, unknown outcomes,
slow services, 5xx storms, bad bodies and client-side rate limiting.

Scripts run against the demo simulators over real loopback HTTP. Faults are injected with
``Simulator.inject`` and aimed at the one upstream request under test (its method and path).
No test sleeps: ``RetryPolicy(sleep=...)`` records what the runtime asks to wait. The only
real waiting is the wall-clock tests' 0.5 s limit against a 2 s slow service.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kosmo_runtime import (
    BadResponse,
    Demo,
    Fault,
    KosmoError,
    LimitExceeded,
    Limits,
    OutcomeUnknown,
    RetryPolicy,
    RunResult,
    Runtime,
    ServiceUnavailable,
    Simulator,
    Store,
)
from tests.reliability.cases import CASES, IDS, Case, SleepLog, credential_values, hits

pytestmark = pytest.mark.parametrize("case", CASES, ids=IDS)

SLOW_WALL_TIME = 0.5   # the run's wall-clock limit in the slow-service tests (seconds)
SLOW_LATENCY = 2.0     # how long the slow service takes to answer (seconds)


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """The four simulators, with client-side rate limiting off (faults are what is tested here)."""
    with Demo(rate_limits=False) as started:
        yield started


@pytest.fixture(scope="module")
def sleeps() -> SleepLog:
    return SleepLog()


@pytest.fixture(scope="module")
def runtime(demo: Demo, sleeps: SleepLog) -> Iterator[Runtime]:
    with demo.runtime(retry=RetryPolicy(sleep=sleeps), store=Store(":memory:")) as started:
        yield started


@pytest.fixture
def sim(demo: Demo, case: Case, sleeps: SleepLog) -> Iterator[Simulator]:
    """The case's simulator; faults and recorded sleeps are cleared after each test."""
    simulator = demo.simulators[case.ident]
    sleeps.clear()
    yield simulator
    simulator.clear_faults()
    sleeps.clear()


def ok(runtime: Runtime, source: str, **options: Any) -> Any:
    result = runtime.run(source, **options)
    assert result.ok, result.error.to_dict() if result.error else None
    return result.result


def no_credentials(result: RunResult) -> None:
    text = json.dumps(result.to_dict(), default=str)
    for values in credential_values().values():
        for value in values:
            assert value not in text


def requests_to(call: Any, path: str) -> list[dict[str, Any]]:
    """The entries of a CallRecord's ``requests`` whose path matches ``path``."""
    return [r for r in call.requests if re.search(path, r["path"])]


# -- (a) 429 with Retry-After on a read ------------------------------------------------------


def test_read_429_with_retry_after_is_retried_after_that_wait(case: Case, runtime: Runtime, sim: Simulator,
                                                             sleeps: SleepLog) -> None:
    baseline = ok(runtime, f"return {case.read}")
    sleeps.clear()
    mark = len(sim.requests)
    sim.inject(Fault("status", status=429, retry_after=7, method="GET", path=case.read_path))

    result = runtime.run(f"return {case.read}")

    assert result.ok, result.error.to_dict() if result.error else None
    assert case.read_check(result.result) and case.read_key(result.result) == case.read_key(baseline)
    [call] = result.calls
    assert call.ok and call.retries == 1 and call.status == 200 and call.operation == "read"
    assert [(r["method"], r.get("status")) for r in requests_to(call, case.read_path)] == [("GET", 429), ("GET", 200)]
    assert len(hits(sim, mark, "GET", case.read_path)) == 2
    assert sleeps.calls == [7.0]  # exactly the Retry-After value, once


# -- (b) a dropped connection on a write -----------------------------------------------------


def test_write_dropped_connection_is_not_retried_and_ends_in_outcome_unknown(case: Case, runtime: Runtime,
                                                                            sim: Simulator, demo: Demo,
                                                                            sleeps: SleepLog) -> None:
    mark = len(sim.requests)
    sim.inject(Fault("drop", method="POST"))

    result = runtime.run(f"""
        local ok, err = pcall(function() return {case.lua_write()} end)
        return {{ok = ok, err = err, continued = true}}
    """)

    assert result.ok, result.error.to_dict() if result.error else None  # pcall caught it; the script went on
    assert result.result["ok"] is False and result.result["continued"] is True
    err = result.result["err"]
    assert err["type"] == "OutcomeUnknown" and err["code"] == "outcome_unknown" and err["retryable"] is False
    assert err["integration"] == case.ident and err["account"] == "default"
    assert "may or may not have happened" in err["message"] and "read" in err["hint"]
    sent = err["sent"]
    assert sent["method"] == "POST"
    assert sent["url"].startswith(demo.servers[case.ident].url + "/")
    assert re.search(case.write_path, httpx.URL(sent["url"]).path)
    assert case.sent_body_check(sent["body"]), sent["body"]
    assert len(hits(sim, mark, "POST", case.write_path)) == 1  # sent once, never retried
    assert sleeps.calls == []
    call = result.calls[-1]
    assert call.operation == "write" and not call.ok and call.error == "outcome_unknown" and call.retries == 0
    assert [(r["method"], r.get("error")) for r in requests_to(call, case.write_path)] == [("POST", "RemoteProtocolError")]
    if case.secret_in_write:
        assert case.secret_in_write not in json.dumps(result.to_dict())
    no_credentials(result)

    # Uncaught, the same failure ends the run with the structured error.
    mark = len(sim.requests)
    sim.inject(Fault("drop", method="POST"))
    failed = runtime.run(f"return {case.lua_write()}")
    assert isinstance(failed.error, OutcomeUnknown) and failed.error.code == "outcome_unknown"
    assert failed.error.to_dict()["sent"]["method"] == "POST"
    assert len(hits(sim, mark, "POST", case.write_path)) == 1


# -- (c) a service slower than the wall-clock limit ------------------------------------------


def test_slow_service_never_holds_the_run_past_the_wall_clock_limit(case: Case, runtime: Runtime,
                                                                   sim: Simulator) -> None:
    ok(runtime, f"return {case.read}")  # connections and memos warm
    mark = len(sim.requests)
    sim.inject(Fault("latency", seconds=SLOW_LATENCY, method="GET", path=case.read_path, times=None))

    started = time.monotonic()
    result = runtime.run(f"return {case.read}", limits=Limits(wall_time=SLOW_WALL_TIME))
    elapsed = time.monotonic() - started

    assert not result.ok and isinstance(result.error, KosmoError)
    assert elapsed < SLOW_LATENCY  # the run did not wait for the slow answer
    assert len(hits(sim, mark, "GET", case.read_path)) == 1  # no retry past the deadline
    assert "Traceback" not in json.dumps(result.to_dict())


def test_slow_service_ends_the_run_with_limit_exceeded_wall_time(case: Case, runtime: Runtime,
                                                                 sim: Simulator) -> None:
    ok(runtime, f"return {case.read}")
    sim.inject(Fault("latency", seconds=SLOW_LATENCY, method="GET", path=case.read_path, times=None))
    limits = Limits(wall_time=SLOW_WALL_TIME)

    plain = runtime.run(f"return {case.read}", limits=limits)
    caught = runtime.run(f"""
        local ok, err = pcall(function() return {case.read} end)
        return "the script went on after its wall-clock limit", err
    """, limits=limits)

    for result in (plain, caught):
        assert isinstance(result.error, LimitExceeded), result.to_dict()
        assert result.error.to_dict()["limit"] == "wall_time" and result.error.code == "limit_exceeded"
        assert not result.ok and result.result is None


# -- (d) a 5xx storm --------------------------------------------------------------------------


def test_5xx_storm_ends_in_service_unavailable_after_the_documented_attempts(case: Case, runtime: Runtime,
                                                                          sim: Simulator, sleeps: SleepLog) -> None:
    policy = RetryPolicy()
    assert policy.attempts == 4 and runtime.retry.attempts == policy.attempts  # README: "up to 4 attempts"
    ok(runtime, f"return {case.read}")
    sleeps.clear()
    mark = len(sim.requests)
    sim.inject(Fault("status", status=503, method="GET", path=case.read_path, times=None))

    result = runtime.run(f"return {case.read}")

    assert isinstance(result.error, ServiceUnavailable)
    error = result.error.to_dict()
    assert error["type"] == "ServiceUnavailable" and error["code"] == "service_unavailable"
    assert error["status"] == 503 and error["retryable"] is True and "503" in error["message"]
    assert error["integration"] == case.ident and error["account"] == "default" and error["hint"]
    [call] = result.calls
    assert not call.ok and call.error == "service_unavailable" and call.status == 503
    assert call.retries == policy.attempts - 1
    assert [r.get("status") for r in requests_to(call, case.read_path)] == [503] * policy.attempts
    assert len(hits(sim, mark, "GET", case.read_path)) == policy.attempts
    # the backoff: 0.25 s doubling, with jitter between half and all of it
    assert len(sleeps.calls) == policy.attempts - 1
    for attempt, waited in enumerate(sleeps.calls, start=1):
        backoff = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
        assert backoff / 2 <= waited <= backoff


# -- (e) malformed bodies and HTML error pages --------------------------------------------------


@pytest.mark.parametrize(("body", "content_type", "starts"), [
    (None, "application/json", '{"results": [{"id": '),  # the fault's default: truncated JSON
    (b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", "text/html", "<html><head>"),
], ids=["truncated-json", "html-page"])
def test_bad_body_becomes_bad_response_naming_status_type_and_first_bytes(
        case: Case, runtime: Runtime, sim: Simulator, body: bytes | None, content_type: str, starts: str) -> None:
    ok(runtime, f"return {case.read}")
    mark = len(sim.requests)
    sim.inject(Fault("malformed", body=body, content_type=content_type, method="GET", path=case.read_path))

    result = runtime.run(f"return {case.read}")

    assert isinstance(result.error, BadResponse), result.to_dict()
    error = result.error.to_dict()
    assert error["type"] == "BadResponse" and error["code"] == "bad_response" and error["retryable"] is False
    assert error["status"] == 200 and error["integration"] == case.ident and error["hint"]
    assert "200" in error["message"] and content_type in error["message"] and starts in error["message"]
    assert len(hits(sim, mark, "GET", case.read_path)) == 1  # a bad body is not retried
    [call] = result.calls
    assert not call.ok and call.error == "bad_response" and call.retries == 0 and call.status == 200


def test_empty_body_becomes_bad_response(case: Case, runtime: Runtime, sim: Simulator) -> None:
    ok(runtime, f"return {case.read}")
    mark = len(sim.requests)
    sim.inject(Fault("malformed", body=b"", method="GET", path=case.read_path))

    result = runtime.run(f"return {case.read}")

    assert len(hits(sim, mark, "GET", case.read_path)) == 1
    assert isinstance(result.error, BadResponse), result.to_dict()
    error = result.error.to_dict()
    assert error["code"] == "bad_response" and error["status"] == 200 and error["integration"] == case.ident


# -- (f) client-side rate limiting --------------------------------------------------------------


class StrictUpstream:
    """A server-side token bucket at the integration's documented rate, enforced by the simulator.

    The client's waits are recorded, not slept, so time is reconstructed: a request that the
    client's limiter held back by ``w`` seconds is counted as arriving ``w`` seconds later than it
    really did (with a real sleep it would have). Requests the bucket cannot pay for are answered
    with the service's own 429 and counted in ``rejected``.

    The bucket is started (:meth:`start`) holding what the client's bucket holds at that moment;
    it then measures time at arrival, the client at sending, so ``JITTER`` seconds of refill are
    forgiven (scheduling noise). A client without a limiter overdraws it by whole tokens.
    """

    JITTER = 0.05  # seconds

    def __init__(self, sim: Simulator, requests: float, per_seconds: float, costs: dict[str, float]) -> None:
        self.sim = sim
        self.capacity = float(requests)
        self.rate = requests / per_seconds
        self.costs = costs
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.pending = 0.0
        self.waits: list[float] = []
        self.rejected = 0
        self.accepted = 0
        self._lock = threading.Lock()
        self._authenticate = sim.authenticate

    def sleep(self, seconds: float) -> None:
        """The runtime's sleep: record the wait; the next request counts as arriving that much later."""
        with self._lock:
            self.waits.append(seconds)
            self.pending = seconds

    def start(self, spent: float) -> None:
        """Start enforcing, with ``spent`` tokens already used (by a warm-up) from a full bucket."""
        with self._lock:
            self.tokens, self.updated, self.pending = self.capacity - spent, time.monotonic(), 0.0
            self.waits.clear()
        self.sim.authenticate = self._check  # type: ignore[method-assign]

    def stop(self) -> None:
        if "authenticate" in vars(self.sim):
            del self.sim.authenticate

    def _check(self, request: httpx.Request) -> httpx.Response | None:
        with self._lock:
            now = time.monotonic() + self.pending
            self.pending = 0.0
            self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)
            self.updated = max(self.updated, now)
            cost = self.costs.get(request.method, 1.0)
            if self.tokens + self.JITTER * self.rate < cost:
                self.rejected += 1
                return self.sim.error(429, "rate limit exceeded")
            self.tokens -= cost
            self.accepted += 1
        return self._authenticate(request)


@pytest.fixture(scope="module")
def limited_demo() -> Iterator[Demo]:
    """The simulators with the demo accounts' client-side rate limiting on (the documented rates)."""
    with Demo() as started:
        yield started


def _strict(demo: Demo, ident: str) -> StrictUpstream:
    """A strict upstream at the rate the integration's manifest documents."""
    spec = demo.catalog.find(ident).manifest.rate_limit  # type: ignore[union-attr]
    assert spec is not None
    return StrictUpstream(demo.simulators[ident], spec.requests, spec.per_seconds, dict(spec.costs))


def _loop_against_strict_upstream(demo: Demo, case: Case, strict: StrictUpstream,
                                  times: int) -> tuple[RunResult, int, int]:
    """Warm up with one read (connection open, GoTo's organizer key known), then run ``times`` reads
    in a loop against the strict upstream. Returns the loop's result, the requests the warm-up
    sent and the requests the loop sent."""
    sim = demo.simulators[case.ident]
    try:
        with demo.runtime(retry=RetryPolicy(sleep=strict.sleep), store=Store(":memory:")) as runtime:
            mark = len(sim.requests)
            ok(runtime, f"return {case.read}")
            warm_up = len(sim.requests) - mark
            strict.start(spent=warm_up)  # reads cost 1 token each
            mark = len(sim.requests)
            result = runtime.run(f"local n = 0 for i = 1, {times} do local r = {case.read} n = n + 1 end return n")
            return result, warm_up, len(sim.requests) - mark
    finally:
        strict.stop()


def test_client_side_rate_limit_waits_instead_of_provoking_429(case: Case, limited_demo: Demo) -> None:
    strict = _strict(limited_demo, case.ident)
    times = int(strict.capacity) + 5  # five more reads than the burst allows

    result, warm_up, sent = _loop_against_strict_upstream(limited_demo, case, strict, times)

    assert result.ok and result.result == times, result.error.to_dict() if result.error else None
    assert sent == times and strict.accepted == sent
    assert strict.rejected == 0  # no 429 provoked
    assert all(r.get("status") != 429 for call in result.calls for r in call.requests)
    assert all(call.retries == 0 for call in result.calls)
    # the limiter held the loop back, by no more than the whole deficit at the documented rate
    deficit = warm_up + sent - strict.capacity
    assert strict.waits and all(w > 0 for w in strict.waits)
    assert len(strict.waits) <= deficit
    assert max(strict.waits) <= deficit / strict.rate + 1e-6


def test_strict_upstream_probe_rejects_the_same_loop_without_client_side_limiting(
        case: Case, demo: Demo, sim: Simulator) -> None:
    """The probe above is not vacuous: with rate limiting off, the same loop is answered 429."""
    strict = _strict(demo, case.ident)

    result, _, _ = _loop_against_strict_upstream(demo, case, strict, int(strict.capacity) + 5)

    assert strict.rejected > 0
    assert any(r.get("status") == 429 for call in result.calls for r in call.requests)
