"""State backends: the token bucket, records and idempotency claims, in one process and across processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

import pytest

from kosmo_runtime import Runtime
from kosmo_runtime._errors import ConfigError
from kosmo_runtime._state import MemoryState, SqliteState, State, open_state


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def make_state(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[FakeClock], State]:
    def make(clock: FakeClock) -> State:
        if request.param == "memory":
            return MemoryState(":memory:", clock=clock)
        return SqliteState(tmp_path / "state.sqlite3", clock=clock)
    return make


def test_bucket_passes_a_burst_up_to_capacity_then_asks_to_wait(make_state: Callable[[FakeClock], State]) -> None:
    clock = FakeClock()
    state = make_state(clock)
    assert [state.reserve("b", 1, 3, 1.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert state.reserve("b", 1, 3, 1.0) == pytest.approx(1.0)
    assert state.reserve("b", 2, 3, 1.0) == pytest.approx(3.0)  # costs add up (Whereby's points)
    clock.now += 10  # refilled, but never past capacity
    assert [state.reserve("b", 1, 3, 1.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert state.reserve("b", 1, 3, 1.0) > 0
    assert state.reserve("other", 1, 3, 1.0) == 0.0  # buckets are separate
    state.close()


def test_refund_gives_tokens_back(make_state: Callable[[FakeClock], State]) -> None:
    state = make_state(FakeClock())
    state.reserve("b", 2, 2, 1.0)
    assert state.reserve("b", 1, 2, 1.0) == pytest.approx(1.0)
    state.refund("b", 1)
    assert state.reserve("b", 1, 2, 1.0) == pytest.approx(1.0)
    state.close()


def test_a_claim_is_granted_once_until_it_expires(make_state: Callable[[FakeClock], State]) -> None:
    clock = FakeClock()
    state = make_state(clock)
    assert state.claim("write-1", 60) is True
    assert state.claim("write-1", 60) is False
    assert state.claim("write-2", 60) is True
    clock.now += 61
    assert state.claim("write-1", 60) is True
    state.close()


def test_records_are_scoped_by_integration_and_account(make_state: Callable[[FakeClock], State]) -> None:
    state = make_state(FakeClock())
    mine = state.scoped("agora", "default")
    mine.put("recordings", "sid-1", {"sid": "sid-1"})
    mine.put("recordings", "sid-1", {"sid": "sid-1", "stopped": True})
    assert mine.get("recordings", "sid-1") == {"sid": "sid-1", "stopped": True}
    assert mine.all("recordings") == [{"sid": "sid-1", "stopped": True}]
    assert state.scoped("agora", "other").all("recordings") == []
    assert mine.get("recordings", "missing") is None
    state.close()


def _take_tokens(path: str, tries: int, granted: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    state = SqliteState(path)
    granted.put(sum(state.reserve("shared", 1, 20, 1e-6) == 0.0 for _ in range(tries)))
    state.close()


def test_processes_sharing_a_sqlite_state_share_one_bucket(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite3")
    context = multiprocessing.get_context("spawn")
    granted = context.Queue()
    workers = [context.Process(target=_take_tokens, args=(path, 15, granted)) for _ in range(3)]
    for worker in workers:
        worker.start()
    counts = [granted.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sum(counts) == 20  # 45 tries, one bucket of 20 (it barely refills): exactly 20 passed at once


def test_records_written_by_one_sqlite_state_are_seen_by_another(tmp_path: Path) -> None:
    first, second = SqliteState(tmp_path / "s.sqlite3"), SqliteState(tmp_path / "s.sqlite3")
    first.scoped("agora", "default").put("recordings", "sid-1", {"sid": "sid-1"})
    assert second.scoped("agora", "default").all("recordings") == [{"sid": "sid-1"}]
    assert first.claim("k", 60) and not second.claim("k", 60)
    first.close()
    second.close()


def test_open_state_reads_urls(tmp_path: Path) -> None:
    assert isinstance(open_state(None), MemoryState)
    assert isinstance(open_state("memory"), MemoryState)
    made = open_state(f"sqlite:///{tmp_path}/a.sqlite3")
    assert isinstance(made, SqliteState) and made.path == tmp_path / "a.sqlite3"
    assert isinstance(open_state(str(tmp_path / "b.sqlite3")), SqliteState)
    with pytest.raises(ConfigError, match="cannot use state URL ftp://"):
        open_state("ftp://example.com/x")


def test_runtime_state_comes_from_argument_environment_then_accounts_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOSMO_STATE_URL", raising=False)
    assert isinstance(Runtime(store=":memory:").state, MemoryState)
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(f"settings:\n  state: sqlite:///{tmp_path}/from-file.sqlite3\n")
    with Runtime(accounts=accounts) as runtime:
        assert runtime.state.url == f"sqlite:///{tmp_path}/from-file.sqlite3"
    monkeypatch.setenv("KOSMO_STATE_URL", f"sqlite:///{tmp_path}/from-env.sqlite3")
    with Runtime(accounts=accounts) as runtime:
        assert runtime.state.url == f"sqlite:///{tmp_path}/from-env.sqlite3"
    given = MemoryState(":memory:")
    with Runtime(accounts=accounts, state=given) as runtime:
        assert runtime.state is given


def test_a_runtime_on_sqlite_state_keeps_agora_recordings_there(tmp_path: Path) -> None:
    from kosmo_runtime import Demo

    script = ('return app.integrations.agora.start_recording{cname = "room-1", uid = "42", clientRequest = {storageConfig = '
              '{vendor = 1, region = 3, bucket = "b", accessKey = "AKIAEXAMPLE", secretKey = "example-secret"}}}.sid')
    listing = "local out = {} for _, r in ipairs(app.integrations.agora.list_recordings{}.data) do out[#out+1] = r.sid end return out"
    with Demo(["agora"]) as demo:
        url = f"sqlite:///{tmp_path}/shared.sqlite3"
        with demo.runtime(state=url) as first:
            started = first.run(script)
            assert started.ok, started.error
        with demo.runtime(state=url) as second:
            listed = second.run(listing)
        assert listed.ok, listed.error
        assert started.result in listed.result


def test_redis_is_an_optional_extra_the_default_never_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    probe = ("import sys\nfrom kosmo_runtime import Demo\n"
             "with Demo(['whereby', 'agora']) as demo, demo.runtime() as runtime:\n"
             "    assert runtime.run('return #app.integrations.whereby.list_rooms{limit = 1}.data').ok\n"
             "print(sorted(name for name in sys.modules if name.split('.')[0] == 'redis'))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    monkeypatch.setitem(sys.modules, "redis", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"redis://:\*\*\*@db:6379/0 needs the redis client library") as refused:
        open_state("redis://:secret@db:6379/0")
    assert refused.value.hint == "pip install 'kosmo-runtime[redis]'" and "secret" not in str(refused.value)
