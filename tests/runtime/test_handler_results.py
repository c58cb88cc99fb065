"""What an integration's code returns reaches the script as data, or fails the call as the integration's bug.

``Invoker.call`` checks a result once (``_data.as_data``): JSON data passes (a tuple as a list); a
``datetime``, a ``set``, bytes or an object fails that call with an ``IntegrationBug`` naming the
integration function, the value's type and where it sits, never as the runtime's own failure, and in
``app.parallel`` only the branch that made the call fails.
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest

from kosmo_runtime import Runtime
from kosmo_runtime._calls import _Target
from kosmo_runtime._data import as_data
from kosmo_runtime._errors import IntegrationBug
from tests.support import fixture_runtime

ACCOUNTS = "integrations:\n  test-notes:\n    accounts:\n      default: {api_key: unused}\n"
CALL = "app.integrations.test_notes.get_note{id = 'a'}"


@pytest.fixture
def rt() -> Iterator[Runtime]:
    with fixture_runtime(ACCOUNTS) as runtime:
        yield runtime


def returning(monkeypatch: pytest.MonkeyPatch, value: Any) -> None:
    monkeypatch.setattr(_Target, "run", lambda self, context, args: value)


def test_a_tuple_reaches_the_script_as_a_list(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    returning(monkeypatch, ({"x": 1}, 2))
    result = rt.run(f"local r = {CALL}\nreturn {{type(r), r[1].x, r[2], #r}}")
    assert result.ok, result.error
    assert result.result == ["table", 1, 2, 2]


@pytest.mark.parametrize(("value", "what"), [
    (datetime.datetime(2026, 1, 1), "a Python datetime at result"),
    ({"id": "a", "when": datetime.date(2026, 1, 1)}, "a Python date at result.when"),
    ({"tags": ["x", {"y"}]}, "a Python set at result.tags[2]"),
    ({"raw": b"\x00"}, "a Python bytes at result.raw"),
    ({("a", "b"): 1}, "a Python tuple as a key in result"),
    ([object()], "a Python object at result[1]"),
])
def test_a_result_that_is_not_data_fails_the_call_as_the_integrations_bug(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch, value: Any, what: str) -> None:
    returning(monkeypatch, value)
    result = rt.run(f"local ok, err = pcall(function() return {CALL} end)\nreturn ok, err.code, err.message")
    assert result.ok, result.error
    assert result.result == [False, "internal_error",
                             f"test-notes.get_note: the integration returned {what}, which is not data"]
    assert [(call.ok, call.error) for call in result.calls] == [(False, "internal_error")]
    failed = rt.run(f"return {CALL}")
    assert isinstance(failed.error, IntegrationBug) and failed.error.line == 1
    assert "bug in the integration" in (failed.error.hint or "")


def test_in_app_parallel_only_the_branch_whose_call_returned_no_data_fails(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Target, "run", lambda self, context, args: {"at": datetime.time(1)} if args["id"] == "bad"
                        else {"id": args["id"]})
    result = rt.run("local n = app.integrations.test_notes\n"
                    "local r = app.parallel{function() return n.get_note{id = 'a'} end,\n"
                    "                       function() return n.get_note{id = 'bad'} end}\n"
                    "return {r[1].ok, r[1].value.id, r[2].ok, r[2].error.code}")
    assert result.ok, result.error
    assert result.result == [True, "a", False, "internal_error"]


@pytest.mark.parametrize("value", [None, "text", 1, 2**70, 1.5, True, {"a": [1, {"b": None}]}, {1: "a", None: 2},
                                   OrderedDict(a=1), [], {}])
def test_data_passes_as_it_is(value: Any) -> None:
    assert as_data(value, "x.f") is value


def test_a_cycle_is_refused_not_walked_for_ever() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(IntegrationBug, match=r"nesting deeper than 200 levels .*\(a cycle\?\)"):
        as_data(cyclic, "x.f")
