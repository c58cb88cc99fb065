"""app.parallel: concurrent integration calls from Lua, results in order, errors per branch."""

from __future__ import annotations

import threading

import pytest

from kosmo_runtime import Demo, Fault, Limits, RetryPolicy


@pytest.fixture(scope="module")
def demo():
    with Demo(["goto-webinar"], rate_limits=False) as running:
        yield running


@pytest.fixture
def runtime(demo):
    with demo.runtime(retry=RetryPolicy(sleep=lambda seconds: None)) as rt:
        yield rt


FAN_OUT = """
local gw = app.integrations["goto-webinar"]
local ids = {%s}
local branches = {}
for _, id in ipairs(ids) do
  branches[#branches + 1] = function() return gw.get_webinar{id = id}.subject end
end
return app.parallel(branches, {concurrency = %d})
"""


def test_results_come_back_in_order_with_errors_per_branch(runtime):
    result = runtime.run(FAN_OUT % ('"1234567890", "no-such", "1234567890"', 4))
    assert result.ok, result.error
    first, failed, third = result.result
    assert first == {"ok": True, "value": "Quarterly Product Update"} == third
    assert failed["ok"] is False and failed["error"]["status"] == 400
    assert [c.function for c in result.calls] == ["get_webinar"] * 3


def test_calls_really_overlap(demo, runtime):
    sim = demo.simulators["goto-webinar"]
    in_flight, peak, lock = [0], [0], threading.Lock()
    gate = threading.Barrier(4, timeout=5)

    def wrapped(request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            if "/webinars/1234567890" in request.url.path:
                gate.wait()  # four requests must be in flight together to pass
            return handler(request)
        finally:
            with lock:
                in_flight[0] -= 1

    handler = sim.__call__
    demo.servers["goto-webinar"]._server.RequestHandlerClass.simulator = staticmethod(wrapped)
    try:
        result = runtime.run(FAN_OUT % (", ".join(['"1234567890"'] * 4), 4))
    finally:
        demo.servers["goto-webinar"]._server.RequestHandlerClass.simulator = staticmethod(handler)
    assert result.ok, result.error
    assert all(entry["ok"] for entry in result.result)
    assert peak[0] >= 4


def test_concurrency_option_is_validated(runtime):
    for options in ("{concurrency = 0}", "{concurrency = 1.5}", "{concurrency = 65}", "'fast'"):
        result = runtime.run(f"return app.parallel({{function() end}}, {options})")
        assert result.error.type == "InvalidArgument", options
    assert runtime.run("return app.parallel({1})").error.message.startswith("app.parallel: item 1")


def test_plain_branches_and_empty_lists(runtime):
    result = runtime.run("return app.parallel({}), app.parallel({function() return 1 end, function() error('x', 0) end})")
    assert result.result == [[], [{"ok": True, "value": 1}, {"ok": False, "error": "x"}]]


def test_limits_still_apply_inside_branches(runtime):
    result = runtime.run("return app.parallel({function() while true do end end})", limits=Limits(instructions=100_000))
    assert result.error.type == "LimitExceeded" and result.error.limit == "instructions"


def test_wall_clock_stops_slow_parallel_calls(demo, runtime):
    demo.simulators["goto-webinar"].inject(Fault("latency", seconds=2, path="/webinars/1234567890", times=None))
    try:
        result = runtime.run(FAN_OUT % ('"1234567890", "1234567890"', 2), limits=Limits(wall_time=0.5))
    finally:
        demo.simulators["goto-webinar"].clear_faults()
    assert result.error.type == "LimitExceeded" and result.error.limit == "wall_time"


def _counting(demo):
    """Wrap the GoTo simulator so the test sees every request that reached it."""
    sim = demo.simulators["goto-webinar"]
    seen, lock = [0], threading.Lock()

    def wrapped(request):
        with lock:
            seen[0] += 1
        return sim.__call__(request)

    return seen, wrapped


def _with_handler(demo, handler, fn):
    server = demo.servers["goto-webinar"]._server.RequestHandlerClass
    original = server.simulator
    server.simulator = staticmethod(handler)
    try:
        return fn()
    finally:
        server.simulator = original


def test_call_limit_counts_calls_in_flight(demo, runtime):
    seen, wrapped = _counting(demo)
    result = _with_handler(demo, wrapped, lambda: runtime.run(
        FAN_OUT % (", ".join(['"1234567890"'] * 17), 17), limits=Limits(calls=2)))
    assert result.error.type == "LimitExceeded" and result.error.limit == "calls"
    assert len(result.calls) <= 2 and sum(len(c.requests) for c in result.calls) == seen[0]


def test_a_runs_end_sends_nothing_more_and_records_what_was_sent(demo, runtime):
    # 40 branches submit at once (16 per account run, the rest queue), then one branch hits a limit.
    seen, wrapped = _counting(demo)
    source = FAN_OUT.replace("return app.parallel(branches", "branches[#branches + 1] = function() while true do end end\n"
                             "return app.parallel(branches") % (", ".join(['"1234567890"'] * 40), 41)
    demo.simulators["goto-webinar"].inject(Fault("latency", seconds=0.3, path="/webinars/1234567890", times=None))
    try:
        result = _with_handler(demo, wrapped, lambda: runtime.run(source, limits=Limits(instructions=2_000_000)))
    finally:
        demo.simulators["goto-webinar"].clear_faults()
    assert result.error.type == "LimitExceeded" and result.error.limit == "instructions"
    sent = seen[0]
    assert 0 < len(result.calls) <= 16 and sum(len(c.requests) for c in result.calls) == sent  # the calls under way were awaited, the queued ones never sent
    assert runtime.run("return 1").result == 1
    assert seen[0] == sent


# -- branches used in ways app.parallel cannot schedule: a clean result, never a stray ticket ------

GW = 'local gw = app.integrations["goto-webinar"]\n'
SUBJECT = "Quarterly Product Update"


def _run_counted(demo, runtime, source):
    seen, wrapped = _counting(demo)
    result = _with_handler(demo, wrapped, lambda: runtime.run(GW + source))
    assert runtime.run("return 1").result == 1  # the next run is unaffected
    # every request that reached the service is in the run's calls: no call outlived its branch
    assert sum(len(c.requests) for c in result.calls) == seen[0]
    return result, seen[0]


def _no_internals(result):
    text = repr(result.result) + repr(result.error and result.error.to_dict())
    assert "[kosmo]" not in text and "co_resume" not in text and "bad argument" not in text


def test_nested_parallel_is_a_structured_error(demo, runtime):
    result, _sent = _run_counted(demo, runtime, """
        return app.parallel({
          function() local inner = app.parallel({function() return gw.get_webinar{id = "1234567890"}.subject end}) return inner end,
          function() return gw.get_webinar{id = "1234567890"}.subject end,
        })
    """)
    assert result.ok, result.error
    nested, other = result.result
    assert nested["ok"] is False and nested["error"]["type"] == "InvalidArgument"
    assert "app.parallel cannot be nested" in nested["error"]["message"] and nested["error"]["hint"]
    assert other == {"ok": True, "value": SUBJECT}
    assert len(result.calls) == 1
    _no_internals(result)


def test_nested_parallel_through_a_coroutine_is_refused_too(demo, runtime):
    result, sent = _run_counted(demo, runtime, """
        return app.parallel({function()
          local ok, err = coroutine.wrap(function() return pcall(app.parallel, {function() return 1 end}) end)()
          return err.message
        end})
    """)
    assert result.ok, result.error
    assert result.result[0]["ok"] and "cannot be nested" in result.result[0]["value"]
    assert sent == 0
    _no_internals(result)


@pytest.mark.parametrize("body", [
    pytest.param('return (("1234567890"):gsub("%d+", function(id) return gw.get_webinar{id = id}.subject end))', id="gsub"),
    pytest.param('local t = {"1234567890", "1234567890"} table.sort(t, function(a, b) '
                 'return gw.get_webinar{id = a}.subject < gw.get_webinar{id = b}.subject end) return #t', id="sort"),
    pytest.param('return tostring(setmetatable({}, {__tostring = function() return gw.get_webinar{id = "1234567890"}.subject end}))',
                 id="metamethod-from-C"),
    pytest.param('local ok, v = pcall(function() return gw.get_webinar{id = "1234567890"}.subject end) return v', id="pcall"),
    pytest.param('return coroutine.wrap(function() return gw.get_webinar{id = "1234567890"}.subject end)()',
                 id="own-coroutine"),
])
def test_calls_a_branch_cannot_yield_from_are_made_at_once(demo, runtime, body):
    result, sent = _run_counted(demo, runtime, f"return app.parallel({{function() {body} end, function() return 7 end}})")
    assert result.ok, result.error
    first, second = result.result
    assert first["ok"], first
    assert second == {"ok": True, "value": 7}
    assert sent >= 1 and len(result.calls) >= 1
    _no_internals(result)


def test_a_branch_cannot_be_resumed_after_parallel_returned(demo, runtime):
    result, sent = _run_counted(demo, runtime, """
        local saved
        local r = app.parallel({function()
          saved = coroutine.running()
          coroutine.yield()
          return gw.get_webinar{id = "1234567890"}.subject
        end})
        return r, coroutine.status(saved), coroutine.resume(saved)
    """)
    assert result.ok, result.error
    outcomes, status, ok, message = result.result
    assert outcomes == [{"ok": False, "error": "app.parallel: a branch yielded outside of an integration call"}]
    assert status == "dead" and ok is False and message == "cannot resume dead coroutine"
    assert sent == 0 and result.calls == []
    _no_internals(result)


def test_a_waiting_branch_cannot_be_resumed_or_closed_by_the_script(demo, runtime):
    result, _sent = _run_counted(demo, runtime, """
        local saved
        return app.parallel({
          function() saved = coroutine.running() return gw.get_webinar{id = "1234567890"}.subject end,
          function() local ok, e = pcall(coroutine.resume, saved) return e.message end,
          function() local ok, e = pcall(coroutine.close, saved) return e.message end,
        })
    """)
    assert result.ok, result.error
    first, resumed, closed = result.result
    assert first == {"ok": True, "value": SUBJECT}
    assert "cannot be resumed or closed by the script" in resumed["value"]
    assert "cannot be resumed or closed by the script" in closed["value"]
    assert len(result.calls) == 1
    _no_internals(result)


def test_parallel_works_again_after_an_error_inside_it(runtime):
    result = runtime.run("""
        local ok = pcall(app.parallel, {function() return 1 end}, {concurrency = 0})
        return ok, app.parallel({function() return 2 end})[1].value
    """)
    assert result.ok and result.result == [False, 2]
