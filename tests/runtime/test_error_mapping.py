"""Every error type and every HTTP error status has its mapping (like httpx's test of map_httpcore_exceptions)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from kosmo_runtime import _errors
from kosmo_runtime._errors import (
    AuthFailed,
    HTTPStatusError,
    KosmoError,
    RateLimited,
    ServiceUnavailable,
    UpstreamNotFound,
    error_table,
)
from kosmo_runtime._http import status_error
from kosmo_runtime._manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(ROOT / "integrations" / "whereby", None).manifest
CONTEXT = {"integration": "whereby", "function": "list_rooms", "account": "default"}


def _all_errors() -> list[type[KosmoError]]:
    found, pending = [], [KosmoError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending += cls.__subclasses__()
    return found


def test_runtime_md_carries_the_generated_error_table() -> None:
    page = (ROOT / "lua_docs" / "runtime.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- kosmo:errors -->\n(.*?)<!-- /kosmo:errors -->", page, re.S)
    assert block is not None and block.group(1) == error_table(), "paste _errors.error_table() into runtime.md"


def test_every_error_type_has_a_code_and_a_row_or_is_an_abstract_branch() -> None:
    table = error_table()
    for cls in _all_errors():
        assert cls.__name__ in _errors.__all__, cls
        if "code" in vars(cls) and cls is not KosmoError:
            assert f"| `{cls.__name__}` | `{cls.code}` |" in table
        else:  # a branch of the tree: never raised itself
            assert cls.__subclasses__(), f"{cls.__name__} is a leaf without its own code"


def _expected(status: int) -> type[HTTPStatusError]:
    if status in (401, 403):
        return AuthFailed
    if status == 404:
        return UpstreamNotFound
    if status == 429:
        return RateLimited
    return ServiceUnavailable if status >= 500 else HTTPStatusError


@pytest.mark.parametrize("status", range(400, 600))
def test_every_error_status_maps_to_its_error(status: int) -> None:
    response = httpx.Response(status, json={"error": "no"}, request=httpx.Request("GET", "https://api.whereby.dev/v1/x"))
    error = status_error(response, MANIFEST, CONTEXT)
    assert type(error) is _expected(status)
    assert error.status == status and error.code in error_table() and error.hint
    assert error.retryable == (status in (429, 502, 503, 504))
    assert error.message.startswith(f"Whereby answered HTTP {status}")  # the call's label comes from the Invoker


def test_the_call_boundary_stamps_an_integration_error_once() -> None:
    """Hooks raise bare messages; the Invoker alone adds the call's label and context fields, and
    never twice (framework errors that already lead with the label keep one)."""
    from kosmo_runtime._demo import Demo
    from kosmo_runtime._store import Store

    script = """
        local function fail(f, args) local ok, e = pcall(f, args) assert(not ok) return e end
        local w = app.integrations.whereby
        return {fail(w.get_room, {room_name = "nope"}), fail(app.integrations.agora.get_project, {project_id = "zz"}),
                fail(w.get_room, {}), fail(app.integrations.goto_webinar.get_webinar, {id = "404"})}
    """
    with Demo(["whereby", "agora", "goto-webinar"], rate_limits=False) as demo, \
            demo.runtime(store=Store(":memory:")) as runtime:
        result = runtime.run(script)
    assert result.ok, result.error and result.error.to_dict()
    labels = ["whereby.get_room", "agora.get_project", "whereby.get_room", "goto-webinar.get_webinar"]
    for error, label in zip(result.result, labels, strict=True):
        assert error["message"].startswith(label + ": "), error
        assert error["message"].count(label) == 1, error
        integration, function = label.split(".")
        assert (error["integration"], error["function"], error["account"]) == (integration, function, "default"), error
    assert "no room named 'nope'" in result.result[0]["message"]
    assert "no project with id 'zz'" in result.result[1]["message"]
