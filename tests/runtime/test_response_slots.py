"""Response shaping as data: expressions, named shapes, ``slice``, ``path_when``, named paginations,
and what hooks get of them (``ctx.shape``, ``ctx.collect(path, name)``, ``ctx.local_page``)."""

from __future__ import annotations

from typing import Any

import pytest

from kosmo_runtime._accounts import Account, Secret
from kosmo_runtime._calls import run_declarative, shape
from kosmo_runtime._context import CallContext
from kosmo_runtime._discovery import Catalog
from kosmo_runtime._expressions import Scope, apply_shape, check_expression, evaluate
from kosmo_runtime._local_pages import page_info, page_slice
from kosmo_runtime._manifest import FunctionSpec, Manifest
from kosmo_runtime._paginate import Page, Pagination

ROOM = {"id": "meetingId", "meetingUrl": "roomUrl", "roomPath": "roomName || url_path(roomUrl)",
        "roomName": "ltrim(roomPath, '/')"}
CAL = Catalog().find("cal-com").manifest  # type: ignore[union-attr]
MEETING = {"meetingId": "7", "roomUrl": "https://x.whereby.com/abc-7", "roomName": "/abc-7"}


def test_dotted_paths_and_jmespath_expressions() -> None:
    scope = Scope(args={"n": 3}, settings={"region": "eu"}, account="work")
    data = {"data": {"items": [1, 2]}, "results": [{"roomUrl": "https://a.example.com/r?x=1"}], "name": None}
    assert evaluate("data.items", data, scope) == [1, 2]
    assert evaluate("data.missing.deeper", data, scope) is None
    assert evaluate("results[0].roomUrl", data, scope) == "https://a.example.com/r?x=1"
    assert evaluate("url_path(results[0].roomUrl)", data, scope) == "/r"
    assert evaluate("url_host(results[0].roomUrl)", data, scope) == "a.example.com"
    assert evaluate("url_host(results[1].roomUrl)", data, scope) is None  # no such item: null, not an error
    assert evaluate("ltrim('//a/b', '/')", data, scope) == "a/b"
    assert evaluate("name || 'fallback'", data, scope) == "fallback"
    assert evaluate("{n: arg('n'), region: setting('region'), who: account(), yes: `true`}", data, scope) == {
        "n": 3, "region": "eu", "who": "work", "yes": True}
    assert evaluate("compact({a: `1`, b: name, c: 'x'})", data, scope) == {"a": 1, "c": "x"}


def test_a_named_shape_adds_fields_in_order_on_an_object_or_each_item() -> None:
    scope = Scope(shapes={"room": ROOM})
    room = apply_shape("room", MEETING, scope)
    assert room == {**MEETING, "id": "7", "meetingUrl": MEETING["roomUrl"], "roomPath": "/abc-7", "roomName": "abc-7"}
    without_name = apply_shape("room", {"meetingId": "8", "roomUrl": "https://x.whereby.com/def-8"}, scope)
    assert (without_name["roomPath"], without_name["roomName"]) == ("/def-8", "def-8")  # from the URL
    assert [r["id"] for r in apply_shape("room", [MEETING, {**MEETING, "meetingId": "9"}], scope)] == ["7", "9"]
    assert evaluate("shape('room', results)", {"results": [MEETING]}, scope) == [room]
    assert evaluate("shape('room', missing)", {}, scope) is None
    with pytest.raises(TypeError, match=r"expected an object to add id, .* to \(shape room\), got str"):
        apply_shape("room", ["text"], scope)


def test_shape_keeps_the_old_signature_and_adds_named_shapes() -> None:
    body = {"data": [{"start": "s", "end": "e"}]}
    assert shape(body, "data", "bookings", None, Scope(shapes={"b": {"startTime": "start"}}), "b") == {
        "bookings": [{"start": "s", "end": "e", "startTime": "s"}]}
    assert shape(body, "data", None, {"finish": "end"}) == [{"start": "s", "end": "e", "finish": "e"}]


def _manifest(**changes: Any) -> dict[str, Any]:
    data = Catalog().find("whereby").manifest.model_dump(exclude_defaults=True)  # type: ignore[union-attr]
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = data
        for key in parents:
            target = target[key]
        target[last] = value
    return data


@pytest.mark.parametrize(("change", "message"), [
    ({"shapes__room__id": "meetingId ||"}, "shape room: expression 'meetingId ||' cannot be read"),
    ({"functions__list_rooms__response": {"shape": "nope"}}, "function list_rooms uses shape 'nope', which 'shapes' does not declare"),
    ({"functions__list_rooms__response": {"add": {"x": "shape('gone', @)"}}}, "uses shape 'gone'"),
    ({"shapes__other": {"x": "shape('gone', y)"}}, "shape other uses shape 'gone'"),
    ({"functions__list_rooms__response": {"slice": {"limit": "size", "page": "page"}}},
     r"path_when and slice name \['size', 'page'\], which are not parameters"),
    ({"functions__list_rooms__request__path_when": {"team": "/t/{team}"}}, r"name \['team'\]"),
    ({"paginations__pages__bogus": 1}, "bogus"),
    ({"paginations__pages__strategy": "offset"}, "strategy"),
])
def test_the_manifest_check_refuses_what_cannot_work(change: dict[str, Any], message: str) -> None:
    assert Manifest.model_validate(_manifest())  # the real manifest is fine
    with pytest.raises(ValueError, match=message):
        Manifest.model_validate(_manifest(**change))
    assert check_expression("a.b") is None and check_expression("a[?") is not None


class _Http:
    """Answers from ``pages`` (by path), recording every request."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers, self.sent = answers, []  # type: ignore[var-annotated]

    def request(self, method: str, path: str, **options: Any) -> Any:
        self.sent.append((method, path, options.get("params")))
        answer = self.answers[path]
        return answer(options.get("params")) if callable(answer) else answer

    def get(self, path: str, **options: Any) -> Any:
        return self.request("GET", path, **options)

    def page(self, path: str, **options: Any) -> Page:
        return Page(self.request("GET", path, **options))


def _context(manifest: Manifest | None, http: _Http) -> CallContext:
    account = Account("cal-com", "work", {"base_url": "https://api.cal.com"}, {"api_key": Secret("k")})
    return CallContext("cal-com", "f", account, http, None, {}, manifest=manifest)  # type: ignore[arg-type]


def _spec(request: dict[str, Any], response: dict[str, Any], *params: str) -> FunctionSpec:
    return FunctionSpec.model_validate({"description": "d", "operation": "read", "request": request,
                                        "response": response,
                                        "params": {p: {"type": "integer", "description": p} for p in params}})


def test_path_when_picks_the_first_path_whose_argument_is_given() -> None:
    spec = _spec({"method": "GET", "path": "/v2/event-types", "path_when": {"teamId": "/v2/teams/{teamId}/event-types"}},
                 {"extract": "data"}, "teamId")
    http = _Http({"/v2/event-types": {"data": ["mine"]}, "/v2/teams/5/event-types": {"data": ["team"]}})
    assert run_declarative(spec, _context(CAL, http), {}) == ["mine"]
    assert run_declarative(spec, _context(CAL, http), {"teamId": 5}) == ["team"]
    assert [path for _, path, _ in http.sent] == ["/v2/event-types", "/v2/teams/5/event-types"]


def test_slice_cuts_a_whole_list_to_the_asked_page() -> None:
    spec = _spec({"method": "GET", "path": "/v2/teams"}, {"extract": "data", "slice": {"limit": "limit", "page": "page"},
                                                          "wrap_as": "teams"}, "limit", "page")
    http = _Http({"/v2/teams": {"data": list(range(5))}})
    run = lambda **args: run_declarative(spec, _context(CAL, http), args)["teams"]  # noqa: E731
    assert run() == [0, 1, 2, 3, 4] and run(page=1) == [0, 1, 2, 3, 4] and run(page=2) == []
    assert run(limit=2, page=1) == [0, 1] and run(limit=2, page=3) == [4] and run(limit=2, page=4) == []


def test_local_pages() -> None:
    assert page_slice([1, 2, 3], None, 1) == [1, 2, 3] and page_slice([1, 2, 3], None, 2) == []
    assert page_info(5, 2, 2, 2) == {"totalItems": 5, "remainingItems": 1, "returnedItems": 2, "itemsPerPage": 2,
                                     "currentPage": 2, "totalPages": 3, "hasNextPage": True, "hasPreviousPage": True}
    assert page_info(0, 0, 10, 1)["totalPages"] == 0 and not page_info(4, 2, 2, 2)["hasNextPage"]


def test_hooks_use_the_manifests_named_paginations_and_shapes() -> None:
    manifest = Manifest.model_validate(_manifest(
        paginations={"pages": {"strategy": "cursor", "items": "results", "size": 2, "size_param": "limit"}}))
    assert manifest.paginations["pages"] == Pagination("cursor", items="results", size=2, size_param="limit")
    rooms = [{**MEETING, "meetingId": str(n)} for n in range(3)]
    http = _Http({"/v1/meetings": lambda q: {"results": rooms[int(q["cursor"] or 0):][:q["limit"]],
                                            "cursor": None if q["cursor"] else "2"}})
    ctx = _context(manifest, http)
    assert [m["meetingId"] for m in ctx.collect("/v1/meetings", "pages", {"q": 1})] == ["0", "1", "2"]
    assert [params for _, _, params in http.sent] == [{"q": 1, "limit": 2, "cursor": None}, {"q": 1, "limit": 2, "cursor": "2"}]
    assert ctx.shape("room", MEETING)["roomName"] == "abc-7"
    assert ctx.local_page(list("abcde"), 2, 3) == (["e"], page_info(5, 1, 2, 3))
    with pytest.raises(LookupError, match=r"cal-com\.f: this call context has no manifest"):
        _context(None, http).shape("room", MEETING)
