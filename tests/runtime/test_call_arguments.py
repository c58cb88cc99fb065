"""A call's named arguments reach the Invoker the same whichever way they cross.

``_app.lua`` passes arguments that are all text keys with text, boolean or finite-number values
(at most 8, or none) as name, value, ... (``AppHost.call_flat``); anything else goes as a table
through the converter (``AppHost.call``), and a call in an ``app.parallel`` branch is submitted.
Both must give the Invoker exactly what the converter gives.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from kosmo_runtime import Runtime
from kosmo_runtime._apphost import AppHost
from kosmo_runtime._calls import Invoker
from tests.support import fixture_runtime

ACCOUNTS = "integrations:\n  test-notes:\n    accounts:\n      default: {api_key: unused}\n"


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Which way each call's arguments came, and what the Invoker got (the call itself does nothing)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    path = ""

    def invoker_call(self: Invoker, ident: str, account: str | None, function: str, arguments: dict[str, Any]) -> Any:
        calls.append((path, arguments))
        return {"ok": True}

    def via(name: str, method: Any) -> Any:
        def wrapper(self: AppHost, *args: Any) -> Any:
            nonlocal path
            path = name
            return method(self, *args)
        return wrapper

    monkeypatch.setattr(Invoker, "call", invoker_call)
    monkeypatch.setattr(AppHost, "call", via("table", AppHost.call))
    monkeypatch.setattr(AppHost, "call_flat", via("flat", AppHost.call_flat))
    return calls


@pytest.fixture
def rt() -> Iterator[Runtime]:
    with fixture_runtime(ACCOUNTS) as runtime:
        yield runtime


FLAT = [
    ("{id = 'a'}", {"id": "a"}),
    ("{n = 1, f = 1.0, neg = -0.0, big = math.maxinteger}", {"n": 1, "f": 1.0, "neg": -0.0, "big": 2**63 - 1}),
    ("{yes = true, no = false, text = 'é ✓', empty = ''}", {"yes": True, "no": False, "text": "é ✓", "empty": ""}),
    ("{a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8}", {k: i for i, k in enumerate("abcdefgh", 1)}),
    ("{}", {}),
    ("nil", {}),
    ("", {}),
]

TABLE = [
    ("{a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8, i = 9}", {k: i for i, k in enumerate("abcdefghi", 1)}),
    ("{tags = {'x', 'y'}}", {"tags": ["x", "y"]}),
    ("{id = json.null}", {"id": None}),
    ("{[1] = 'a', id = 'b'}", {"1": "a", "id": "b"}),
]


@pytest.mark.parametrize(("args", "expected"), FLAT)
def test_plain_arguments_cross_flat(rt: Runtime, seen: list[tuple[str, dict[str, Any]]], args: str,
                                    expected: dict[str, Any]) -> None:
    result = rt.run(f"return app.integrations.test_notes.get_note({args})")
    assert result.ok, result.error and result.error.to_dict()
    assert seen == [("flat", expected)]
    got = seen[0][1]
    for key, value in expected.items():  # the same types, not only equal values (1 vs 1.0, -0.0)
        assert type(got[key]) is type(value) and math.copysign(1, got[key]) == math.copysign(1, value) \
            if isinstance(value, float) else type(got[key]) is type(value)


@pytest.mark.parametrize(("args", "expected"), TABLE)
def test_other_arguments_cross_as_a_table(rt: Runtime, seen: list[tuple[str, dict[str, Any]]], args: str,
                                          expected: dict[str, Any]) -> None:
    result = rt.run(f"return app.integrations.test_notes.get_note({args})")
    assert result.ok, result.error and result.error.to_dict()
    assert seen == [("table", expected)]


def test_a_call_in_an_app_parallel_branch_is_submitted_with_its_arguments(
        rt: Runtime, seen: list[tuple[str, dict[str, Any]]]) -> None:
    result = rt.run("return app.parallel{function() return app.integrations.test_notes.get_note{id = 'p'} end}")
    assert result.ok, result.error and result.error.to_dict()
    assert seen == [("", {"id": "p"})]  # neither call nor call_flat: the branch's call went to submit


@pytest.mark.parametrize("args", ["{x = 0/0}", "{x = math.huge}", "{x = -math.huge}", "{x = '\\xff'}",
                                  "{['\\xff'] = 1}", "{x = function() end}", "json.array({})", "json.decode('[]')"])
def test_values_the_converter_refuses_are_refused_as_before(rt: Runtime, seen: list[tuple[str, dict[str, Any]]],
                                                            args: str) -> None:
    result = rt.run(f"return app.integrations.test_notes.get_note({args})")
    assert not result.ok and result.error is not None and result.error.code == "invalid_argument", result
    assert seen == []


def test_a_flat_call_restores_the_memory_cap_and_its_result_counts(rt: Runtime,
                                                                   seen: list[tuple[str, dict[str, Any]]]) -> None:
    # the flat path lifts the cap inside the host function: after it the cap is back, whatever the count
    from kosmo_runtime import Limits

    limits = Limits(memory=2 * 1024 * 1024)
    calls = "local ns = app.integrations.test_notes for i = 1, 50 do ns.get_note{id = 'a'} end "
    over = rt.run(calls + "local ok = pcall(string.rep, 'x', 4 * 1024 * 1024) return ok", limits=limits)
    assert over.error is not None and over.error.limit == "memory", over
    kept = rt.run(calls + "local t = {} for i = 1, 200000 do t[i] = ns.get_note{id = 'a'} end return #t",
                  limits=limits)
    assert kept.error is not None and kept.error.limit == "memory", kept  # the results it keeps are the run's
    fits = rt.run(calls + "return #string.rep('x', 1024)", limits=limits)
    assert fits.ok and fits.result == 1024 and seen[-1] == ("flat", {"id": "a"})
