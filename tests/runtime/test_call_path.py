"""The per-call path's shortcuts give what the long way gives.

* A host function whose result Lua takes without allocating (a boolean, a number, a table it
  made) restores the memory cap itself before it returns (``Sandbox._settle_early``, the
  bootstrap's SETTLED): the cap is back after such calls, and a result that takes the state
  over its cap still ends the run with the memory limit.
* ``Converter.to_lua`` makes a dict of text keys and plain values with one ``table_from``: the
  same table, and the same units spent, as the general walk.
* ``AppHost.member`` gives each looked-up function a handle its calls pass; ``Http.for_call``
  copies a call plan's Http with the call's own trace, which the call's ``CallContext`` does when its
  handler first reads ``ctx.http``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lupa import lua54

from kosmo_runtime import Limits, Runtime
from kosmo_runtime._apphost import AppHost
from kosmo_runtime._calls import Invoker
from kosmo_runtime._context import CallContext
from kosmo_runtime._errors import NotFound
from kosmo_runtime._http import Trace
from kosmo_runtime._sandbox import Sandbox
from tests.support import FIXTURES, fixture_runtime, notes_service

ACCOUNTS = ("integrations:\n  test-notes:\n    default: main\n    accounts:\n"
            "      main: {api_key: unused}\n      other: {api_key: unused}\n")
MiB = 1024 * 1024
SMALL = Limits(memory=2 * MiB)


@pytest.fixture
def rt() -> Iterator[Runtime]:
    with fixture_runtime(ACCOUNTS) as runtime:
        yield runtime


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, str, dict[str, Any]]]:
    """The Invoker answers every call with ``{"id": ...}`` (nothing is sent); the calls it got."""
    calls: list[tuple[str | None, str, dict[str, Any]]] = []

    def invoker_call(self: Invoker, ident: str, account: str | None, function: str, arguments: dict[str, Any]) -> Any:
        calls.append((account, function, arguments))
        return {"id": arguments.get("id"), "n": 1, "ok": True}

    monkeypatch.setattr(Invoker, "call", invoker_call)
    return calls


# -- the cap after host calls ------------------------------------------------------------------

@pytest.mark.parametrize("call", ["ns.get_note{id = 'a'}",                       # flat: lifted in the host
                                  "ns.get_note{id = 'a', tags = {'x'}}",         # a table: lifted by Lua
                                  "json.decode('{\"a\": [1, 2]}')",               # a library host function
                                  "json.encode({a = 1})"])                        # a text result: Lua settles
def test_after_host_calls_the_cap_is_back(rt: Runtime, answers: list[Any], call: str) -> None:
    calls = f"local ns = app.integrations.test_notes for i = 1, 50 do local r = {call} end "
    over = rt.run(calls + f"local ok = pcall(string.rep, 'x', {4 * MiB}) return ok", limits=SMALL)
    assert over.error is not None and over.error.limit == "memory", over
    kept = rt.run(calls + f"local t = {{}} for i = 1, 200000 do t[i] = {call} end return #t", limits=SMALL)
    assert kept.error is not None and kept.error.limit == "memory", kept  # what the script keeps counts
    fits = rt.run(calls + "return #string.rep('x', 1024)", limits=SMALL)
    assert fits.ok and fits.result == 1024, fits


def test_a_result_that_takes_the_state_over_its_cap_is_the_memory_limit(rt: Runtime,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Invoker, "call", lambda self, *args: {"text": "x" * (3 * MiB)})
    for source in ("return #app.integrations.test_notes.get_note{id = 'a'}.text",
                   "return pcall(app.integrations.test_notes.get_note, {id = 'a'})"):  # pcall cannot catch it
        result = rt.run(source, limits=SMALL)
        assert result.error is not None and result.error.limit == "memory", result
    assert rt.run("return #app.integrations.test_notes.get_note{id = 'a'}.text").result == 3 * MiB


def test_an_early_settle_inside_a_nested_lift_leaves_the_cap_to_the_outer_one() -> None:
    sandbox = Sandbox(Limits())
    allocate = sandbox.lua.eval("function() local n = #('x'):rep(2 * 1024 * 1024) collectgarbage() return n end")
    try:
        sandbox._cap = sandbox.lua.get_memory_used() + MiB
        sandbox._lift()
        sandbox._lift()
        assert sandbox._settle_early() and sandbox._lifts == 1
        assert allocate() == 2 * MiB  # still lifted: the outer lift settles
        assert sandbox._settle_early() and sandbox._lifts == 0
        with pytest.raises(lua54.LuaMemoryError):
            allocate()
        sandbox._lift()
        sandbox._cap = 1  # the state is over it: the cap stays lifted for the bootstrap's settle to trip
        assert not sandbox._settle_early() and sandbox._lifts == 1
        assert allocate() == 2 * MiB
        assert sandbox._settle()
    finally:
        sandbox.close()


# -- the converter's flat dicts ----------------------------------------------------------------

class _Walked(dict):  # type: ignore[type-arg]
    """A dict the fast path leaves to the general walk (it takes exact dicts only)."""


@pytest.mark.parametrize("value", [
    {}, {"id": "a"}, {"s": "é ✓", "e": "", "t": True, "f": False, "i": 2**63 - 1, "m": -(2**63), "x": 1.5,
                      "z": -0.0, "nan": float("nan"), "inf": float("inf")},
    {"big": 2**63}, {"none": None}, {"list": [1, 2]}, {"nested": {"a": 1}}, {1: "number key"},
])
def test_a_dict_becomes_the_table_the_general_walk_makes(value: dict[Any, Any]) -> None:
    sandbox = Sandbox(Limits())
    try:
        convert = sandbox.convert
        describe = sandbox.lua.eval(
            "function(t) local out = {} for k, v in pairs(t) do out[#out + 1] = math.type(k) or type(k) "
            "out[#out + 1] = tostring(k) .. '=' .. (math.type(v) or type(v)) .. ':' .. "
            "(type(v) == 'table' and (getmetatable(v) or '') or tostring(v)) end "
            "table.sort(out) return table.concat(out, ' ') end")
        before = convert._since_check
        fast = describe(convert.to_lua(value))
        spent = convert._since_check - before
        walked = describe(convert.to_lua(_Walked(value)))
        assert fast == walked
        assert convert._since_check - before - spent == spent  # the same units either way
    finally:
        sandbox.close()


# -- handles and call plans --------------------------------------------------------------------

def test_calls_reach_the_function_and_account_they_were_looked_up_as(rt: Runtime, answers: list[Any]) -> None:
    result = rt.run("local n = app.integrations.test_notes\n"
                    "local a, b = n.get_note, n.notes_get_note\n"     # one function, two names
                    "assert(a == b)\n"
                    "n.other.get_note{id = 'o'} a{id = 'a'} n.list_notes{limit = 2} n.main.get_note{id = 'm'}\n"
                    "return #app.integrations.test_notes.other.list_notes{}")
    assert result.ok, result.error
    assert answers == [("other", "get_note", {"id": "o"}), (None, "get_note", {"id": "a"}),
                       (None, "list_notes", {"limit": 2}), ("main", "get_note", {"id": "m"}),
                       ("other", "list_notes", {})]


@pytest.mark.parametrize("call", ["local r = ns.get_note{id = 'a'} return r", "return ns.get_note{id = 'a'}",
                                  "return ns.get_note{}", "return ns.get_note{id = 'a', tags = {'x'}}"])
def test_a_failing_call_names_the_scripts_line_on_every_path(rt: Runtime, monkeypatch: pytest.MonkeyPatch,
                                                            call: str) -> None:
    def fail(*_: Any) -> Any:
        raise NotFound("no such note")

    monkeypatch.setattr(Invoker, "call", fail)
    result = rt.run(f"local ns = app.integrations.test_notes\n\n{call}")  # a tail call names the lookup's line
    assert not result.ok
    assert isinstance(result.error, NotFound) and result.error.line == 3


def test_member_gives_one_handle_per_function_and_account(rt: Runtime) -> None:
    sandbox = Sandbox(rt.limits)
    try:
        host = AppHost(rt, sandbox)
        first = host.member("test-notes", None, "get_note")
        assert first == ("function", "get_note", 0)
        assert host.member("test-notes", None, "notes_get_note") == first
        assert host.member("test-notes", "other", "get_note") == ("function", "get_note", 1)
        assert host.member("test-notes", None, "other") == ("account", "other")
    finally:
        sandbox.close()


def test_a_plans_http_is_copied_for_each_call_with_its_own_trace(rt: Runtime) -> None:
    result = rt.run("return 1")  # the Runtime's pools exist
    assert result.ok
    invoker = rt._invoker(rt.defaults, records=[], remaining=lambda: 5.0)
    plan = invoker._plan("test-notes", None, "get_note")
    mine, theirs = Trace(), Trace()
    http, other = plan.http.for_call(mine), plan.http.for_call(theirs)
    assert http.trace is mine and other.trace is theirs and plan.http.trace is not mine
    assert {k: v for k, v in vars(http).items() if k != "trace"} == \
        {k: v for k, v in vars(plan.http).items() if k != "trace"}
    assert invoker._plan("test-notes", "other", "get_note").account.name == "other"


def test_a_calls_context_copies_the_plans_http_when_first_read(rt: Runtime) -> None:
    result = rt.run("return 1")
    assert result.ok
    invoker = rt._invoker(rt.defaults, records=[], remaining=lambda: 5.0)
    plan = invoker._plan("test-notes", None, "get_note")
    trace = Trace()
    context = CallContext("test-notes", "get_note", plan.account, plan.http, *plan.context, trace=trace)
    http = context.http
    assert http is not plan.http and http.trace is trace and plan.http.trace is not trace
    assert context.http is http  # one copy per call
    given = CallContext("test-notes", "get_note", plan.account, plan.http, *plan.context)
    assert given.http is plan.http  # no trace: the Http as given


def test_a_call_records_the_requests_its_handler_sent(tmp_path: Path) -> None:
    with notes_service(tmp_path) as (_, accounts):
        runtime = Runtime(accounts=accounts, integration_paths=[FIXTURES], store=":memory:", pool=0)
        try:
            result = runtime.run("local ok = pcall(app.integrations.test_notes.get_note, {id = 'missing'}) return ok")
        finally:
            runtime.close()
    assert result.ok and result.result is False  # the service answered 404
    assert [call.function for call in result.calls] == ["get_note"]
    assert [(r["path"], r["status"]) for r in result.calls[0].requests] == [("/v1/notes/missing", 404)]
    assert result.calls[0].status == 404
