"""Worker processes (``Runtime(workers=N)``): the same envelopes as in-process, kill and replace,
memory caps, approvals and the audit log across processes, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kosmo_runtime import Demo, LimitExceeded, Limits, Runtime
from kosmo_runtime._errors import WorkerCrashed
from kosmo_runtime._workers import HEADROOM

MiB = 1024 * 1024
# Work inside one C call that no hook or guard interrupts: compiling a 36 MB chunk (~0.4 s, more
# under load). Patterns, string.rep and table.concat are bounded by the clock in-process now.
SOURCE = "local src = ('x = 1 '):rep(6e6) "
C_RUNAWAY = SOURCE + "for i = 1, 20 do load(src) end return 'finished'"
BIG = 512 * 1024 * 1024  # the memory limit the 36 MB chunk needs


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo(rate_limits=False) as demo:
        yield demo


@pytest.fixture(scope="module")
def here(demo: Demo) -> Iterator[Runtime]:
    with demo.runtime() as runtime:
        yield runtime


@pytest.fixture(scope="module")
def pool(demo: Demo) -> Iterator[Runtime]:
    with demo.runtime(workers=2) as runtime:
        yield runtime


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait (bounded) until process ``pid`` has ended."""
    waiting = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if not _alive(pid):
            return
        waiting.wait(0.005)


def _normal(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope without what differs from run to run (durations, run ids)."""
    envelope = json.loads(json.dumps(envelope))
    envelope.pop("duration")
    for call in envelope["calls"]:
        call.pop("duration")
        call.pop("run_id")
        for request in call["requests"]:
            request.pop("duration", None)
    return envelope


RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "values": ("return 1, 'two', {3, x = {true}}, nil", {}),
    "output": ("print('a', 1, {x = 1}) print(json.encode({b = json.null}))", {}),
    "runtime_error": ("local t = nil\nreturn t.x", {}),
    "syntax_error": ("return +", {}),
    "error_table": ("error({code = 'mine', n = 1})", {}),
    "read": ("local r = app.integrations.whereby.list_rooms{limit = 2} return #r.data, r.data[1].roomName", {}),
    "caught_call_error": ("local ok, e = pcall(app.integrations.whereby.get_room, {room_name = 'nope'})\n"
                          "return ok, e.code, e.integration", {}),
    "invalid_argument": ("return app.integrations.whereby.list_rooms{limit = 'x'}", {}),
    "not_found": ("return app.integrations.whereby.list_romos{}", {}),
    "upstream_404": ("return app.integrations['goto-webinar'].get_webinar{webinar_key = '999'}", {}),
    "store_read": ("return app.integrations.agora.list_recordings{}", {}),
    "parallel": ("return app.parallel({function() return app.integrations.whereby.list_rooms{limit = 1}.data[1].id end,"
                 " function() error('branch') end, function() return 3 end})", {}),
    "dry_run_write": ("return app.integrations.whereby.create_room{room_name_prefix = 'x'}", {"dry_run": True}),
    "read_only_write": ("return app.integrations.whereby.create_room{}", {"read_only": True}),
    "ask_without_approver": ("return app.integrations.whereby.create_room{}", {"writes": "ask"}),
    "docs": ("return #lua_list_docs() > 3, lua_read_doc('integrations.whereby.list_rooms'):sub(1, 40)", {}),
    "clock": ("return os.date('!%Y-%m-%d', os.time())", {}),
    "instructions": ("while true do end", {"limits": Limits(instructions=1_000_000)}),
    "memory": ("local t = {} for i = 1, 1e7 do t[i] = i end", {"limits": Limits(memory=2 * MiB)}),
    "output_limit": ("for i = 1, 100 do print(i) end", {"limits": Limits(output=50)}),
    "calls_limit": ("for i = 1, 3 do app.integrations.whereby.list_rooms{limit = 1} end", {"limits": Limits(calls=2)}),
    "wall_time_in_lua": ("print('before') while true do end", {"limits": Limits(wall_time=0.3)}),
    "big_source": ("return 1 --" + "a" * (3 * MiB), {"limits": Limits(memory=2 * MiB)}),
}

CALLS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "call_ok": ("whereby.list_rooms", {"limit": 2}, {}),
    "call_invalid": ("whereby.list_rooms", {"limit": "x"}, {}),
    "call_unknown": ("whereby.nope", {}, {}),
    "call_bad_name": ("nothing", {}, {}),
    "call_dry_run": ("whereby.create_room", {}, {"dry_run": True}),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_a_run_gives_the_same_envelope_in_a_worker(name: str, here: Runtime, pool: Runtime) -> None:
    source, options = RUNS[name]
    expected = _normal(here.run(source, name="job.lua", **options).to_dict())
    got = _normal(pool.run(source, name="job.lua", **options).to_dict())
    assert got == expected


@pytest.mark.parametrize("name", list(CALLS))
def test_a_call_gives_the_same_envelope_in_a_worker(name: str, here: Runtime, pool: Runtime) -> None:
    function, arguments, options = CALLS[name]
    assert _normal(pool.call(function, arguments, **options).to_dict()) == _normal(
        here.call(function, arguments, **options).to_dict())


def test_output_streams_to_the_caller_as_it_is_printed(pool: Runtime) -> None:
    pieces: list[str] = []
    result = pool.run("for i = 1, 3 do print('line', i) end", on_output=pieces.append)
    assert result.ok and "".join(pieces) == result.output == "line\t1\nline\t2\nline\t3\n"


def test_runs_on_one_worker_never_see_each_others_state(demo: Demo) -> None:
    """A worker builds its next sandbox between jobs (no pool thread); each run still gets a new state."""
    tamper = "leaked = 'leak' string.upper = function() return 'leak' end math.pi = 3 return 'tampered'"
    look = "return {rawget(_G, 'leaked') == nil, ('a'):upper() == 'A', math.pi > 3.14}"
    with demo.runtime(workers=1) as runtime:
        for _ in range(4):
            assert runtime.run(tamper).result == "tampered"
            assert runtime.run(look).result == [True, True, True]


def test_a_run_stuck_in_c_code_is_killed_at_its_deadline_and_others_go_on(demo: Demo) -> None:
    with demo.runtime(workers=2) as runtime:
        assert runtime.worker_pool is not None
        before = set(runtime.worker_pool.pids)
        other: dict[str, Any] = {}
        started = threading.Event()

        def neighbour() -> None:  # runs on the other worker while the first is killed
            other["result"] = runtime.run("print('go') local n = 0 for i = 1, 3e7 do n = n + 1 end "
                                          "return app.integrations.whereby.list_rooms{limit = 1}.data[1].id",
                                          on_output=lambda _: started.set(), limits=Limits(wall_time=120))

        thread = threading.Thread(target=neighbour)
        thread.start()
        assert started.wait(60)
        result = runtime.run(C_RUNAWAY, limits=Limits(wall_time=0.05, memory=BIG))
        thread.join(120)
        assert isinstance(result.error, LimitExceeded) and result.error.limit == "wall_time"
        assert result.error.to_dict() == runtime.run("while true do end", limits=Limits(wall_time=0.05)).error.to_dict()
        assert runtime.worker_pool.killed == 1
        killed = before - set(runtime.worker_pool.pids)
        assert len(killed) == 1 and not _alive(killed.pop())
        assert other["result"].ok and other["result"].output == "go\n"
        assert runtime.run("return 6 * 7").result == 42  # the replacement serves


def test_the_same_c_call_in_process_outlives_its_limit(here: Runtime) -> None:
    """What the kill is for: in-process, the C call runs to its end before the clock is read."""
    result = here.run(SOURCE + "load(src) return 'finished'", limits=Limits(wall_time=0.05, memory=BIG))
    assert result.ok and result.result == "finished"


def test_a_killed_run_keeps_its_output_and_finished_calls(demo: Demo) -> None:
    with demo.runtime(workers=1) as runtime:
        result = runtime.run("print('one') app.integrations.whereby.list_rooms{limit = 1}\n" + C_RUNAWAY,
                             limits=Limits(wall_time=0.1, memory=BIG))
        assert isinstance(result.error, LimitExceeded) and result.error.limit == "wall_time"
        assert runtime.worker_pool is not None and runtime.worker_pool.killed == 1
        assert result.output == "one\n"
        assert [(c.integration, c.function, c.ok) for c in result.calls] == [("whereby", "list_rooms", True)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_worker_killed_from_outside_ends_its_run_clearly_and_is_replaced(demo: Demo, sig: signal.Signals) -> None:
    with demo.runtime(workers=1) as runtime:
        assert runtime.worker_pool is not None
        [pid] = runtime.worker_pool.pids
        printed = threading.Event()
        outcome: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: outcome.update(result=runtime.run(
            "print('started') while true do end", on_output=lambda _: printed.set(), limits=Limits(wall_time=120))))
        thread.start()
        assert printed.wait(60)
        os.kill(pid, sig)
        thread.join(60)
        result = outcome["result"]
        assert isinstance(result.error, WorkerCrashed) and sig.name in result.error.message
        assert result.error.to_dict()["code"] == "worker_crashed" and result.error.hint
        assert result.output == "started\n"
        assert runtime.worker_pool.crashed == 1 and runtime.worker_pool.pids != [pid]
        assert runtime.run("return 'again'").result == "again"


def test_a_worker_that_died_while_idle_is_replaced_without_failing_a_run(demo: Demo) -> None:
    with demo.runtime(workers=1) as runtime:
        assert runtime.worker_pool is not None
        assert runtime.run("return 1").ok
        [pid] = runtime.worker_pool.pids
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)  # the kill is asynchronous
        assert runtime.run("return 2").result == 2
        assert runtime.worker_pool.pids != [pid]


def _address_space_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return int(line.split()[3])
    raise AssertionError("no address-space line")


def test_each_worker_caps_its_address_space_from_the_runs_memory_limit() -> None:
    with Runtime(workers=1) as runtime:
        assert runtime.worker_pool is not None
        [pid] = runtime.worker_pool.pids
        runtime.run("return 1", limits=Limits(memory=64 * MiB))
        small = _address_space_limit(pid)
        runtime.run("return 1", limits=Limits(memory=256 * MiB))
        large = _address_space_limit(pid)
        assert large - small == 4 * 192 * MiB
        assert HEADROOM < small < HEADROOM + 1024 * MiB  # the baseline (Python, lupa, httpx) is under 1 GiB


def test_a_blow_up_past_the_cap_stays_inside_its_worker() -> None:
    """Lua's own limit raised to 1 GiB, the worker capped at 600 MiB: the cap holds, the host is untouched."""
    with Runtime(workers=1, worker_memory=600 * MiB) as runtime:
        assert runtime.worker_pool is not None
        [pid] = runtime.worker_pool.pids
        result = runtime.run("local t = {} for i = 1, 1e8 do t[i] = i end return #t",
                             limits=Limits(memory=1024 * MiB, wall_time=60))
        assert not result.ok
        assert isinstance(result.error, (LimitExceeded, WorkerCrashed)), result.error
        if isinstance(result.error, LimitExceeded):
            assert result.error.limit == "memory"
            peak = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("VmHWM"))
            assert peak * 1024 < 600 * MiB
        assert runtime.run("return 'fine'").result == "fine"


def test_approvals_are_asked_in_the_parent(demo: Demo) -> None:
    asked: list[Any] = []
    lock = threading.Lock()

    def approve(request: Any) -> bool:
        with lock:
            asked.append(request)
        return request.arguments.get("room_name_prefix") == "yes"

    script = ("return app.parallel({function() return app.integrations.whereby.create_room{room_name_prefix = 'yes'} end,"
              " function() return app.integrations.whereby.create_room{room_name_prefix = 'no'} end})")
    with demo.runtime(workers=1) as runtime:
        result = runtime.run(script, writes="ask", approve=approve)
    assert result.ok, result.error
    assert sorted(r.arguments["room_name_prefix"] for r in asked) == ["no", "yes"]
    assert {r.function for r in asked} == {"create_room"}
    created, denied = result.result
    assert created["ok"] and created["value"]["roomName"].startswith("yes")
    assert not denied["ok"] and denied["error"]["code"] == "permission_denied"


def test_workers_append_whole_lines_to_one_audit_log(demo: Demo, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    script = "for i = 1, 20 do app.integrations.whereby.list_rooms{limit = 1} end " \
             "app.integrations.whereby.create_room{room_name_prefix = '" + "p" * 30 + "'}"
    with demo.runtime(workers=2, audit_log=log) as runtime:
        results: list[Any] = []
        threads = [threading.Thread(target=lambda: results.append(runtime.run(script, dry_run=True))) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert len(results) == 6 and all(r.ok for r in results)
    lines = log.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 6 * 21
    assert {e["run_id"] for e in entries} == {c.run_id for r in results for c in r.calls}


def test_a_transport_cannot_go_to_a_worker() -> None:
    import httpx

    with Runtime(workers=1, transport=httpx.MockTransport(lambda r: httpx.Response(200))) as runtime:
        with pytest.raises(ValueError, match="transport"):
            runtime.run("return 1")


def test_workers_must_be_a_count() -> None:
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers"):
            Runtime(workers=bad)  # type: ignore[arg-type]
    assert Runtime(workers=0).worker_pool is None


def test_close_leaves_no_worker_behind() -> None:
    runtime = Runtime(workers=2)
    assert runtime.run("return 1").ok
    assert runtime.worker_pool is not None
    pids = runtime.worker_pool.pids
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    runtime.close()
    assert not any(_alive(pid) for pid in pids)
    assert runtime.run("return 'reopened'").result == "reopened"  # a closed Runtime starts a new pool on use
    runtime.close()


_PARENT = textwrap.dedent("""
    import sys
    from kosmo_runtime import Limits, Runtime

    if __name__ == "__main__":
        runtime = Runtime(workers=2)
        {enter}
        runtime.run("return 1")
        print(" ".join(map(str, runtime.worker_pool.pids)), flush=True)
        runtime.run("print('busy') while true do end", limits=Limits(wall_time=600), on_output=lambda t: print(t, end="", flush=True))
""")


@pytest.mark.parametrize(("how", "enter"), [
    ("sigint-with", "runtime.__enter__()"),
    ("sigint-no-close", "pass"),
    ("sigkill", "pass"),
])
def test_no_worker_outlives_its_parent(tmp_path: Path, how: str, enter: str) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_PARENT.replace("{enter}", enter), encoding="utf-8")
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as parent:
        try:
            assert parent.stdout is not None
            pids = [int(p) for p in parent.stdout.readline().split()]
            assert len(pids) == 2 and all(_alive(pid) for pid in pids)
            assert parent.stdout.readline() == "busy\n"  # a run is under way in a worker
            parent.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGINT)
            parent.wait(60)
        finally:
            if parent.poll() is None:
                parent.kill()
        assert parent.returncode != 0
    for pid in pids:  # with SIGKILL the workers notice the closed pipe at once; then the kernel reaps them
        _wait_gone(pid)
        assert not _alive(pid), f"worker {pid} outlived its parent ({how})"


def test_two_workers_share_each_accounts_rate_budget() -> None:
    """10 requests/s for the account: ~30 requests from two workers at once take 2 s, as from one process."""
    with Demo(["goto-webinar"]) as demo:
        demo.accounts_data["goto-webinar"]["default"]["rate_limit"] = {"requests": 10, "per_seconds": 1}
        handler = demo.servers["goto-webinar"]._server.RequestHandlerClass
        simulator, seen, lock = handler.simulator, [], threading.Lock()

        def counting(request: Any) -> Any:
            with lock:
                seen.append(time.monotonic())
            return simulator(request)

        handler.simulator = staticmethod(counting)
        script = "for i = 1, 8 do app.integrations['goto-webinar'].list_webinars{} end"
        with demo.runtime(workers=2) as runtime:
            assert runtime.run("return 1").ok and runtime.run("return 1").ok  # both workers ready
            results: list[Any] = []
            threads = [threading.Thread(target=lambda: results.append(runtime.run(script))) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
    assert len(results) == 2 and all(r.ok for r in results), [r.error for r in results]
    sent = sum(len(call.requests) for result in results for call in result.calls)
    assert len(seen) == sent >= 30
    first = seen[0]
    # a shared bucket lets 10 through at once, then 10 a second: at most ~20 in the first second
    # (a bucket per worker would let all of them through at once)
    assert sum(1 for t in seen if t - first < 1.0) <= 21
    assert seen[-1] - first >= (sent - 10) / 10 - 0.2


@pytest.mark.parametrize(("argv", "expected"), [
    (["mcp"], None),
    (["mcp", "--http", "8765"], os.cpu_count()),
    (["mcp", "--workers", "3"], 3),
    (["mcp", "--http", "8765", "--workers", "0"], None),
    (["run", "-e", "return 1"], None),
])
def test_kosmo_mcp_workers_default_to_the_cores_over_http_only(argv: list[str], expected: int | None) -> None:
    from kosmo_runtime._cli import _parser, _workers

    assert _workers(_parser(argv).parse_args(argv)) == expected


def test_kosmo_mcp_serves_from_worker_processes(tmp_path: Path) -> None:
    import anyio
    from mcp import Client, StdioServerParameters

    server = StdioServerParameters(
        command=sys.executable, args=["-m", "kosmo_runtime", "mcp", "--demo", "--workers", "2", "--wall-time", "1", "--memory", "512MiB"],
        env={"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
             "XDG_STATE_HOME": str(tmp_path / "state")})
    seen: dict[str, Any] = {}

    async def body() -> None:
        async with Client(server, read_timeout_seconds=60) as client:
            seen["ok"] = (await client.call_tool("execute_lua", {
                "code": "print('hi') return app.integrations.whereby.list_rooms{limit = 1}.data[1].roomName"})).structured_content
            seen["stuck"] = (await client.call_tool("execute_lua", {"code": C_RUNAWAY})).structured_content
            seen["after"] = (await client.call_tool("execute_lua", {"code": "return 7"})).structured_content

    anyio.run(body)
    assert seen["ok"]["ok"] and seen["ok"]["output"] == "hi\n" and seen["ok"]["calls"][0]["function"] == "list_rooms"
    assert seen["stuck"]["error"]["limit"] == "wall_time"
    assert seen["after"]["result"] == 7


def test_a_retried_run_with_its_idempotency_key_sends_no_write_twice_across_workers(pool: Runtime) -> None:
    """Both attempts may land on different workers: the claim lives in the state they share."""
    script = "return app.integrations.whereby.create_room{room_name_prefix = 'once'}.roomName"
    first = pool.run(script, idempotency_key="retry-1")
    second = pool.run(script, idempotency_key="retry-1")
    assert first.ok and second.ok, (first.error, second.error)
    assert first.result == second.result
    assert len(first.calls[0].requests) == 1 and second.calls[0].requests == []
