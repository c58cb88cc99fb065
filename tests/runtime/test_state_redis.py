"""RedisState against a real redis-server on loopback: the shared bucket, records, claims, outages, expiry."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kosmo_runtime import Runtime
from kosmo_runtime._errors import StateUnavailable
from kosmo_runtime._simulate import LoopbackServer
from tests.redis_server import RedisServer, emptied, redis_server_binary

BINARY = redis_server_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason="redis-server is not installed (apt-get install redis-server)")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    assert BINARY is not None
    with RedisServer(BINARY) as started:
        yield started


@pytest.fixture
def redis_url(server: RedisServer) -> str:
    return emptied(server)


def test_bucket_passes_a_burst_then_asks_to_wait_and_honours_costs(redis_url: str) -> None:
    from kosmo_runtime import RedisState

    state = RedisState(redis_url)
    assert [state.reserve("bucket:t:a", 1, 3, 0.001) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert state.reserve("bucket:t:a", 1, 3, 0.001) == pytest.approx(1000, rel=0.01)
    assert state.reserve("bucket:t:a", 3, 3, 0.001) == pytest.approx(4000, rel=0.01)  # a POST costs 3 of Whereby's points
    state.refund("bucket:t:a", 3)
    assert state.reserve("bucket:t:a", 1, 3, 0.001) == pytest.approx(2000, rel=0.01)
    assert state.reserve("bucket:t:b", 1, 3, 0.001) == 0.0
    state.close()


def test_a_claim_is_granted_once_across_states(redis_url: str) -> None:
    from kosmo_runtime import RedisState

    first, second = RedisState(redis_url), RedisState(redis_url)
    assert first.claim("run-1:1", 60) is True
    assert second.claim("run-1:1", 60) is False
    assert first.claim("run-1:1", 60) is False  # the same process claiming again is a second caller too
    assert second.claim("run-1:2", 60) is True
    first.close()
    second.close()


def test_records_written_by_one_state_are_listed_by_another_newest_first(redis_url: str) -> None:
    from kosmo_runtime import RedisState

    first, second = RedisState(redis_url), RedisState(redis_url)
    scope = first.scoped("agora", "default")
    scope.put("recordings", "sid-1", {"sid": "sid-1"})
    scope.put("recordings", "sid-2", {"sid": "sid-2"})
    scope.put("recordings", "sid-1", {"sid": "sid-1", "status": "stopped"})  # an update keeps its place
    seen = second.scoped("agora", "default")
    assert seen.all("recordings") == [{"sid": "sid-2"}, {"sid": "sid-1", "status": "stopped"}]
    assert seen.get("recordings", "sid-2") == {"sid": "sid-2"}
    assert seen.get("recordings", "nope") is None
    assert second.scoped("agora", "other").all("recordings") == []
    first.close()
    second.close()


def test_a_recording_started_on_one_replica_is_listed_on_the_other(redis_url: str) -> None:
    from kosmo_runtime import Demo

    start = ('return app.integrations.agora.start_recording{cname = "room-7", uid = "42", clientRequest = {storageConfig = '
             '{vendor = 1, region = 3, bucket = "b", accessKey = "AKIAEXAMPLE", secretKey = "example-secret"}}}.sid')
    listing = ("local out = {} for _, r in ipairs(app.integrations.agora.list_recordings{cname = 'room-7'}.data) do "
               "out[#out + 1] = r.sid end return out")
    with Demo(["agora"]) as demo, demo.runtime(state=redis_url) as one, demo.runtime(state=redis_url) as other:
        started = one.run(start)
        assert started.ok, started.error
        listed = other.run(listing)
        assert listed.ok, listed.error
        assert listed.result == [started.result]
        local = [r["sid"] for r in demo.store.scoped("agora", "default").all("recordings")]
        assert started.result not in local  # it went to Redis, not to the in-process store


def test_redis_stopped_between_runs_gives_state_unavailable_then_recovers(tmp_path: Path) -> None:
    assert BINARY is not None
    with RedisServer(BINARY, password="s3cret-pass") as server:
        script = "return app.integrations.whereby.list_rooms{}"
        with _TimedWhereby() as sim, Runtime(accounts=_whereby_accounts(tmp_path, sim.url, requests=1000),
                                             state=server.url, store=":memory:") as runtime:
            assert runtime.run(script).ok
            server.stop()
            before = len(sim.stamps)
            failed = runtime.run(script)
            assert not failed.ok
            error = failed.error.to_dict()  # type: ignore[union-attr]
            assert error["code"] == "state_unavailable"
            assert f"redis://:***@127.0.0.1:{server.port}/0" in error["message"]
            assert "s3cret-pass" not in json.dumps(error)
            assert "start Redis" in error["hint"]
            assert len(sim.stamps) == before  # nothing was sent without the shared budget
            server.start()
            recovered = runtime.run(script)
            assert recovered.ok, recovered.error
            assert len(sim.stamps) == before + 1


def test_redis_stopped_and_started_inside_one_run(tmp_path: Path) -> None:
    """The script's calls on account "work" (no rate limit, so no state) tell the simulator to stop,
    then start, Redis: the calls on "default" in between fail with state_unavailable, later ones pass."""
    assert BINARY is not None
    script = textwrap.dedent("""
        local wb = app.integrations.whereby
        wb.default.get_current_user{}
        wb.work.get_current_user{}                 -- Redis stops
        local ok, err = pcall(wb.default.get_current_user, {})
        wb.work.get_current_user{}                 -- Redis starts again
        wb.default.get_current_user{}
        return {ok, err.code, err.retryable}
    """)
    with RedisServer(BINARY) as server, _TimedWhereby() as sim:
        switches = [server.stop, server.start]
        sim.on_request = lambda request: switches.pop(0)() if "key-work" in request.headers["authorization"] else None
        accounts = _whereby_accounts(tmp_path, sim.url, requests=1000)
        accounts.write_text(accounts.read_text() + f"      work:\n        api_key: demo-whereby-key-work\n"
                                                    f"        base_url: {sim.url}\n        rate_limit: false\n")
        with Runtime(accounts=accounts, state=server.url, store=":memory:") as runtime:
            done = runtime.run(script)
    assert done.ok, done.error
    assert done.result == [False, "state_unavailable", True]
    assert switches == []
    assert len(sim.stamps) == 4  # the failed call sent nothing


def test_keys_stay_bounded_and_expire(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    from kosmo_runtime import RedisState

    monkeypatch.setattr("kosmo_runtime._idempotency.DEFAULT_TTL", 0.3)
    state = RedisState(redis_url, retention=0.3)
    script = ('app.integrations.whereby.get_current_user{}\n'
              'return app.integrations.whereby.create_room{room_name_prefix = "r"}.roomName')
    with _TimedWhereby() as sim, Runtime(accounts=_whereby_accounts(Path(sim.dir), sim.url, requests=100000),
                                         state=state, store=":memory:") as runtime:
        for n in range(1000):
            done = runtime.run(script, idempotency_key=f"job-{n}")
            assert done.ok, done.error
            state.scoped("agora", "default").put("recordings", f"sid-{n}", {"sid": n})
        assert len(sim.stamps) == 2000
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter("*"))
        # 1,000 runs wrote 2,000 idempotency keys and 1,000 records; what is left is what the last
        # 0.3 s wrote, plus the account's bucket and the records' index
        assert len(keys) < 1000, len(keys)
        assert all(client.pttl(key) != -1 for key in keys)  # every key has a TTL (-2: expired meanwhile)
        assert client.zcard("kosmo:rec:agora:default:recordings") < 1000  # the index is trimmed too
    finally:
        client.close()
    state.close()


def test_a_retried_run_on_another_replica_does_not_send_its_write_again(redis_url: str, tmp_path: Path) -> None:
    script = 'return app.integrations.whereby.create_room{room_name_prefix = "once"}.roomName'
    with _TimedWhereby() as sim:
        accounts = _whereby_accounts(tmp_path, sim.url, requests=100)
        with Runtime(accounts=accounts, state=redis_url, store=":memory:") as one, \
                Runtime(accounts=accounts, state=redis_url, store=":memory:") as other:
            first = one.run(script, idempotency_key="job-42")
            again = other.run(script, idempotency_key="job-42")
        assert first.ok and again.ok, (first.error, again.error)
        assert again.result == first.result
        assert len(sim.stamps) == 1


def test_unknown_redis_url_part_is_a_config_error() -> None:
    from kosmo_runtime import RedisState
    from kosmo_runtime._errors import ConfigError

    with pytest.raises(ConfigError, match="cannot read state URL"):
        RedisState("redis://127.0.0.1:notaport/0")


def test_unreachable_at_first_use_is_state_unavailable() -> None:
    from kosmo_runtime import RedisState

    state = RedisState("redis://:pw@127.0.0.1:9/0", timeout=0.5)
    with pytest.raises(StateUnavailable, match=r"redis://:\*\*\*@127\.0\.0\.1:9/0"):
        state.reserve("bucket:x:y", 1, 1, 1)
    state.close()


# -- two processes, one account -----------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import json, sys
    from kosmo_runtime import Runtime
    accounts, state, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Runtime(accounts=accounts, state=state, store=":memory:") as runtime:
        result = runtime.run(f"for i = 1, {calls} do app.integrations.whereby.get_current_user{{}} end return true")
    print(json.dumps({"ok": result.ok, "error": result.error.to_dict() if result.error else None}))
""")


def test_two_processes_sharing_one_account_stay_under_its_rate_together(redis_url: str, tmp_path: Path) -> None:
    rate, calls = 5, 12  # 5 per second each way; 24 calls in all
    with _TimedWhereby() as sim:
        accounts = _whereby_accounts(tmp_path, sim.url, requests=rate)
        children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(accounts), redis_url, str(calls)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                    for _ in range(2)]
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            assert json.loads(out.strip().splitlines()[-1])["ok"], out
        stamps = sorted(sim.stamps)
    assert len(stamps) == 2 * calls
    # A token bucket of `rate` tokens refilled at `rate`/s lets through at most rate + rate*T requests in
    # any T seconds (plus 0.25 s for requests delayed on their way to the simulator on a loaded machine);
    # two private buckets would let twice that through (10 requests within the first 0.1 s).
    for i, first in enumerate(stamps):
        for j in range(i, len(stamps)):
            span = stamps[j] - first
            assert j - i + 1 <= rate + rate * (span + 0.25) + 1, (j - i + 1, span)
    assert stamps[-1] - stamps[0] >= (2 * calls - rate) / rate * 0.9


# -- helpers ------------------------------------------------------------------------------------


def _whereby_accounts(directory: Path, base_url: str, *, requests: float) -> Path:
    path = directory / "accounts.yaml"
    path.write_text(textwrap.dedent(f"""\
        integrations:
          whereby:
            accounts:
              default:
                api_key: demo-whereby-key-default
                base_url: {base_url}
                rate_limit: {{requests: {requests}, per_seconds: 1}}
    """))
    return path


class _TimedWhereby:
    """The Whereby simulator on loopback, noting when each request arrived (``stamps``, monotonic)."""

    def __init__(self) -> None:
        import tempfile

        from kosmo_integrations.whereby.simulator import WherebySimulator

        self.simulator = WherebySimulator()
        self.stamps: list[float] = []
        self._lock = threading.Lock()
        self.dir = tempfile.mkdtemp(prefix="kosmo-state-test-")

        self.on_request: Any = None  # called with each request before it is answered

        def timed(request: httpx.Request) -> Any:
            with self._lock:
                self.stamps.append(time.monotonic())
            if self.on_request is not None:
                self.on_request(request)
            return self.simulator(request)

        self._server = LoopbackServer(timed)
        self.url = self._server.url

    def __enter__(self) -> _TimedWhereby:
        return self

    def __exit__(self, *exc: object) -> None:
        import shutil

        self._server.close()
        shutil.rmtree(self.dir, ignore_errors=True)
