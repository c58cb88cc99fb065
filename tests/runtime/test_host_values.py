"""Values the host makes in Lua, under every limit: never a crash, a freeze or a hang.

Each case runs in its own child process (a crash or a freeze there must not take the suite
down) with a watchdog; all children start together when the module starts. The class
covered: a Lua memory error raised while the host pushes a value into Lua (every host
function's results, integration results and errors, the script source) must end the run
with the memory limit's error, and a value with shared sub-tables (a DAG) must cost what
its JSON would, ending with the result (or memory) limit, not a walk of 2^n paths.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

CHILD = r"""
import faulthandler, gc, json, os, sys, time
job = json.loads(sys.argv[1])
faulthandler.dump_traceback_later(job["hang_after"], exit=True, file=open(os.devnull, "w"))
from kosmo_runtime import Limits, Runtime
from kosmo_runtime._demo import Demo
report = {}
try:
    demo = Demo(["whereby"], rate_limits=False) if "app.integrations.whereby" in job.get("source", "") else None
    with demo.runtime() if demo else Runtime(store=":memory:") as rt:
        source = job["source"] if "source" in job else "return 1 --" + "a" * job["source_bytes"]
        started = time.monotonic()
        result = rt.run(source, limits=Limits(**job["limits"]))
        report.update(seconds=time.monotonic() - started, ok=result.ok, type=result.error and result.error.type,
                      limit=getattr(result.error, "limit", None), message=result.error and result.error.message,
                      calls=len(result.calls))
        del result
        gc.collect()
        report["fresh"] = rt.run("return 1 + 1").result
    if demo:
        demo.close()
except BaseException as exc:
    report["raised"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(report, default=str), flush=True)
os._exit(0)
"""

#: The room the scripts keep before the host's values fill the rest (bytes).
PAD = "local pad = ('p'):rep(3 * 1024 * 1024) "
SMALL = {"memory": 4 * MiB, "wall_time": 10}
WALL = {"wall_time": 1, "memory": 256 * MiB}
KEEP = PAD + "local keep = {} for i = 1, 1e7 do keep[#keep + 1] = %s end"

CASES: dict[str, tuple[str | int, dict[str, Any], str]] = {
    # name: (source or source size, limits, the limit that must end the run)
    "lua_list_docs": (KEEP % "lua_list_docs()", SMALL, "memory"),
    "lua_search_docs": (KEEP % "lua_search_docs('webinar rooms')", SMALL, "memory"),
    "lua_read_doc": (KEEP % "lua_read_doc('integrations.whereby')", SMALL, "memory"),
    "json_encode": (KEEP % "json.encode({i, 'some text'})", SMALL, "memory"),
    "json_decode": (KEEP % "json.decode('[{\"a\": 1}, {\"b\": [2, 3]}]')", SMALL, "memory"),
    "json_decode_one_big": ('return pcall(json.decode, "[" .. ("{},"):rep(7e5) .. "{}]")',
                            {"memory": 8 * MiB, "wall_time": 10}, "memory"),
    "integration_names": (KEEP % "(function() local t = {} for k in pairs(app.integrations) do t[#t + 1] = k end return t end)()",
                          SMALL, "memory"),
    "integration_results": (KEEP % "app.integrations.whereby.list_rooms{}", SMALL, "memory"),
    "integration_errors": (KEEP % "select(2, pcall(app.integrations.whereby.get_room, {room_id = 'nope'}))",
                           SMALL, "memory"),
    "parallel_results": (KEEP % "app.parallel({function() return app.integrations.whereby.list_rooms{} end})",
                         SMALL, "memory"),
    "source_over_the_memory_limit": (2 * MiB, {"memory": 1 * MiB}, "memory"),
    "source_far_over_the_default_limit": (70 * MiB, {}, "memory"),
    "dag_returned": ("local t = {1} for i = 1, 24 do t = {t, t} end return t", {"result": 256 * 1024}, "result"),
    "dag_printed": ("local t = {1} for i = 1, 24 do t = {t, t} end print(t)", {"output": 64 * 1024}, "output"),
    "dag_json_encoded": ("local t = {1} for i = 1, 24 do t = {t, t} end return json.encode(t)",
                         {"memory": 1 * MiB}, "memory"),
    "dag_as_arguments": ("local t = {1} for i = 1, 24 do t = {t, t} end "
                         "return app.integrations.whereby.list_rooms{limit = t}", {"memory": 1 * MiB}, "memory"),
    # C functions and host functions on big inputs: the wall clock still holds (wall_time = 1 s)
    "upper_loop": ('local s = ("x"):rep(16 * 2^20) while true do s:upper() end', WALL, "wall_time"),
    "sort_c_comparator": ("local t = {} for i = 1, 3e6 do t[i] = i end table.sort(t, math.ult)", WALL, "wall_time"),
    "sort_default_order": ("local t = {} for i = 1, 3e6 do t[i] = -i end table.sort(t)", WALL, "wall_time"),
    "insert_at_front": ("local t = {} for i = 1, 1e6 do table.insert(t, 1, i) end", WALL, "wall_time"),
    "concat_loop": ("local t = {} for i = 1, 1e6 do t[i] = 'xxxxxxxxxx' end while true do table.concat(t) end",
                    WALL, "wall_time"),
    "json_encode_loop": ("local t = {('x'):rep(1000)} while true do json.encode(t) end", WALL, "wall_time"),
    "search_docs_loop": ("while true do lua_search_docs('webinar rooms sessions') end", WALL, "wall_time"),
}

#: How long a wall_time case may take in all (1 s limit, the documented overrun, a busy machine).
WALL_SECONDS = 1.2 * 1 + 0.1 + 1.5

HANG_AFTER = 20.0
TIMEOUT = 40.0


class Children:
    """One child process per case, all started at once."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.reports: dict[str, dict[str, Any]] = {}
        for name, (source, limits, _) in CASES.items():
            job: dict[str, Any] = {"limits": limits, "hang_after": HANG_AFTER}
            job["source" if isinstance(source, str) else "source_bytes"] = source
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps(job)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, cwd=REPO)

    def report(self, name: str) -> dict[str, Any]:
        if name not in self.reports:
            proc = self.procs[name]
            try:
                out, _ = proc.communicate(timeout=max(0.1, self.started + TIMEOUT - time.monotonic()))
                lines = out.strip().splitlines()
                self.reports[name] = json.loads(lines[-1]) if lines else {"died": proc.returncode}
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                self.reports[name] = {"hung": True}
        return self.reports[name]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module")
def children():
    running = Children()
    yield running
    running.close()


@pytest.mark.parametrize("name", list(CASES))
def test_host_values_end_with_a_limit_not_a_crash(children: Children, name: str) -> None:
    report = children.report(name)
    assert "hung" not in report and "died" not in report and "raised" not in report, report
    assert report["ok"] is False and report["type"] == "LimitExceeded", report
    assert report["limit"] == CASES[name][2], report
    assert report["fresh"] == 2, report
    if report["limit"] == "wall_time":
        assert report["seconds"] < WALL_SECONDS, report


def test_a_source_over_the_maximum_is_refused_before_it_reaches_lua() -> None:
    from kosmo_runtime import Limits, Runtime
    from kosmo_runtime._limits import MAX_SOURCE_BYTES

    with Runtime(store=":memory:") as rt:
        result = rt.run("return 1 --" + "a" * MAX_SOURCE_BYTES, limits=Limits(memory=4 * MAX_SOURCE_BYTES))
        assert result.ok is False and result.error.type == "InvalidArgument"
        assert f"{MAX_SOURCE_BYTES:,}" in result.error.message
        assert rt.run("return 1 --" + "a" * (MAX_SOURCE_BYTES // 2)).result == 1


def test_values_the_host_makes_stay_usable_near_the_cap() -> None:
    # Results made while the cap is lifted are ordinary Lua values once it is back.
    from kosmo_runtime import Runtime

    with Runtime(store=":memory:") as rt:
        result = rt.run("local d = json.decode('{\"a\": [1, 2, {\"b\": null}]}') "
                        "return d.a[3].b == json.null, #d.a, json.encode(d)")
    assert result.ok and result.result == [True, 3, '{"a": [1, 2, {"b": null}]}']


def test_shared_subtables_count_as_often_as_they_are_reached() -> None:
    from kosmo_runtime import Limits, Runtime

    with Runtime(store=":memory:") as rt:
        small = rt.run("local t = {1} for i = 1, 4 do t = {t, t} end return t")
        assert small.ok and json.dumps(small.result).count("1") == 16
        over = rt.run("local s = ('x'):rep(1000) local t = {} for i = 1, 100 do t[i] = s end return t",
                      limits=Limits(result=50_000))
        assert over.ok is False and over.error.limit == "result"
        assert rt.run("local s = ('x'):rep(100) local t = {} for i = 1, 100 do t[i] = s end return #t",
                      limits=Limits(result=50_000)).result == 100

