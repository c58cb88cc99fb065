"""Values crossing Lua <-> Python, print, json, results and script errors."""

from __future__ import annotations

import pytest

from kosmo_runtime import Limits, Runtime


@pytest.fixture(scope="module")
def runtime():
    with Runtime(store=":memory:") as rt:
        yield rt


def run(runtime, source, **options):
    return runtime.run(source, **options)


@pytest.mark.parametrize("source,expected", [
    ("return 6 * 7", 42),
    ("return 7 / 2", 3.5),
    ("return 3.0", 3.0),
    ("return 'héllo'", "héllo"),
    ("return true", True),
    ("return nil", None),
    ("return", None),
    ("return {1, 2, 3}", [1, 2, 3]),
    ("return {a = 1, b = {c = 'd'}}", {"a": 1, "b": {"c": "d"}}),
    ("return {1, 2, x = 'y'}", {"1": 1, "2": 2, "x": "y"}),
    ("return {[1] = 'a', [3] = 'c'}", {"1": "a", "3": "c"}),
    ("return {}", {}),
    ("return json.array()", []),
    ("return {json.null, 1}", [None, 1]),
    ("return 1, 'two', {3}", [1, "two", [3]]),
    ("return math.maxinteger", 2**63 - 1),
])
def test_return_values_follow_the_documented_rules(runtime, source, expected):
    result = run(runtime, source)
    assert result.ok, result.error
    assert result.result == expected
    assert type(result.result) is type(expected)


def test_integers_and_floats_stay_apart(runtime):
    result = run(runtime, "return {3, 3.0, math.type(3), math.type(3.0)}")
    assert result.result == [3, 3.0, "integer", "float"]
    assert isinstance(result.result[0], int) and isinstance(result.result[1], float)


@pytest.mark.parametrize("source,fragment", [
    ("return function() end", "function"),
    ("return {f = print}", "function"),
    ("return coroutine.create(function() end)", "coroutine"),
    ("local t = {} t.self = t return t", "cycle"),
    ("return {[true] = 1}", "key of type boolean"),
    ("return 0/0", "nan"),
    ("return '\\255\\254'", "return value is a string that is not valid UTF-8"),
    ("return 1, {a = {b = {'ok', '\\255'}}}", "return value.a.b holds a string that is not valid UTF-8"),
    ("return {x = -1/0}", "return value.x is -inf"),
])
def test_values_that_cannot_leave_the_sandbox_are_errors(runtime, source, fragment):
    result = run(runtime, source)
    assert not result.ok
    assert fragment.lower() in result.error.message.lower()
    assert "Traceback" not in result.error.message


def test_print_is_tab_separated_and_shows_tables(runtime):
    result = run(runtime, "print('a', 1, 2.5, nil, true, {1, 2, x = 'y', n = json.null})")
    assert result.output == 'a\t1\t2.5\tnil\ttrue\t{1, 2, n = null, x = "y"}\n'


def test_print_shows_nested_and_long_tables_over_lines(runtime):
    result = run(runtime, "local t = {} for i = 1, 30 do t[i] = 'item' .. i end print({items = t})")
    assert result.output.startswith("{\n  items = {\n")
    assert '"item30"' in result.output


def test_print_names_functions_and_cycles_instead_of_failing(runtime):
    result = run(runtime, "local t = {f = print} t.me = t print(t)")
    assert result.ok
    assert "<function>" in result.output and "<cycle>" in result.output


def test_print_uses_tostring_metamethods(runtime):
    result = run(runtime, "print(setmetatable({}, {__tostring = function() return 'custom' end}))")
    assert result.output == "custom\n"


def test_json_round_trip(runtime):
    result = run(runtime, """
        local text = json.encode({name = 'x', list = {1, 2}, empty = json.array(), none = json.null})
        local back = json.decode(text)
        return text, back.list[2], back.none == json.null, #back.empty
    """)
    assert result.ok, result.error
    encoded, second, is_null, empty_length = result.result
    assert '"empty": []' in encoded and '"none": null' in encoded
    assert (second, is_null, empty_length) == (2, True, 0)


def test_json_decode_keeps_nulls_in_lists(runtime):
    result = run(runtime, "local t = json.decode('[1, null, 3]') return #t, t[2] == json.null")
    assert result.result == [3, True]


def test_json_indent_option(runtime):
    result = run(runtime, "return json.encode({a = 1}, {indent = 2})")
    assert result.result == '{\n  "a": 1\n}'


@pytest.mark.parametrize("source,fragment", [
    ("return json.decode('{bad')", "line 1 column 2"),
    ("return json.decode(42)", "expects a string"),
    ("return json.encode(print)", "function"),
])
def test_json_errors_are_clear_and_catchable(runtime, source, fragment):
    result = run(runtime, source)
    assert not result.ok
    assert fragment in result.error.message
    caught = run(runtime, f"local ok, err = pcall(function() {source} end) return ok, type(err), err.code")
    assert caught.result == [False, "table", "invalid_argument"]


def test_json_null_cannot_be_modified(runtime):
    result = run(runtime, "json.null.x = 1")
    assert not result.ok and "cannot be modified" in result.error.message


def test_runtime_errors_name_script_and_line(runtime):
    result = run(runtime, "local x\n\nreturn x.y", name="hello.lua")
    assert result.error.to_dict()["message"] == "hello.lua:3: attempt to index a nil value (local 'x')"
    assert result.error.script == "hello.lua" and result.error.line == 3
    assert "hello.lua:3" in result.error.traceback


def test_syntax_errors_name_script_and_line(runtime):
    result = run(runtime, "local a = 1\nlocal = 2", name="broken.lua")
    assert result.error.type == "LuaSyntaxError"
    assert result.error.line == 2 and result.error.message.startswith("broken.lua:2:")


def test_keyword_as_table_key_gets_a_fix(runtime):
    result = run(runtime, 'local t = {\n  start = "a",\n  end = "b",\n}')
    assert result.error.type == "LuaSyntaxError"
    assert result.error.hint == '\'end\' is a Lua keyword and cannot be a bare table key: write ["end"] = ... instead of end = ...'


def test_error_with_a_table_value(runtime):
    result = run(runtime, "error({code = 7})")
    assert result.error.type == "LuaRuntimeError"
    assert "{code = 7}" in result.error.message


def test_each_run_gets_a_fresh_state(runtime):
    assert run(runtime, "leaked = 1 string.leak = 1 return 1").ok
    assert run(runtime, "return leaked, string.leak, ('x').leak").result == [None, None, None]


def test_run_result_envelope(runtime):
    data = run(runtime, "print('hi') return 1").to_dict()
    assert set(data) == {"version", "ok", "result", "output", "error", "calls", "duration"}
    assert data["ok"] is True and data["output"] == "hi\n" and data["calls"] == []


def test_limits_can_be_set_per_run(runtime):
    result = run(runtime, "for i = 1, 1e7 do end return 1", limits=Limits(instructions=100_000))
    assert result.error.type == "LimitExceeded" and result.error.limit == "instructions"
    assert run(runtime, "for i = 1, 1e5 do end return 1").ok


@pytest.mark.parametrize("pool", [0, 2], ids=["fresh", "pooled"])
def test_session_keeps_globals_between_chunks_and_restarts_after_a_limit(pool):
    with Runtime(store=":memory:", pool=pool) as rt:
        assert not pool or rt._sandboxes.wait_full(timeout=30)  # pooled: built with the Runtime's limits
        session = rt.session(limits=Limits(instructions=100_000))
        assert session.run("for i = 1, 20000 do end counter = 41").ok
        assert session.run("for i = 1, 20000 do end").ok  # the limit is per chunk, not for the session
        assert session.run("counter = 41").ok
        assert session.run("counter = counter + 1 return counter").result == 42
        limited = session.run("for i = 1, 1e6 do end")  # the session's limit, not the Runtime's
        assert limited.error.type == "LimitExceeded" and limited.error.limit == "instructions"
        after = session.run("return counter")
        assert after.ok and after.result is None and session.restarted
        assert session.run("print('fresh') return 1").output == "fresh\n"


def test_session_interrupt_stops_a_running_chunk_from_another_thread():
    import threading

    with Runtime(store=":memory:") as rt:
        session = rt.session(limits=Limits(wall_time=60))
        assert session.run("x = 1").ok
        started = threading.Event()
        outcome = {}

        def run():
            started.set()
            outcome["result"] = session.run("while true do end")

        worker = threading.Thread(target=run)
        worker.start()
        started.wait()
        while "result" not in outcome and worker.is_alive():
            session.interrupt()
            worker.join(0.05)
        worker.join()
        error = outcome["result"].error
        assert error.type == "LimitExceeded" and error.limit == "interrupted"
        assert session.run("return x").result is None  # the state was discarded
