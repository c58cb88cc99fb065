"""A declarative function that paginates, end to end: a manifest's ``paginate: {using, collect,
collect_param}`` over a loopback HTTP server, for every strategy; one page by default; a next link
to a host the manifest does not allow refused; the run's calls limit between pages; and the
manifest check's refusals, located."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kosmo_runtime import AccountsConfig, RunResult, Runtime
from kosmo_runtime._errors import ManifestError
from kosmo_runtime._limits import Limits
from kosmo_runtime._manifest import load_manifest
from kosmo_runtime._simulate import LoopbackServer

ITEMS = [{"n": n} for n in range(7)]
KEY = "pages-key-123"

MANIFEST = """\
id: pages-test
name: Pages Test
category: testing
description: A list service paginated every way, for the paginate slot.
prefix: pages
auth: {kind: bearer, token: api_key}
credentials:
  api_key: {description: API key}
settings:
  base_url: {description: API root, secret: false, default: "https://api.pages.example"}
allowed_hosts: [api.pages.example, "*.pages.example"]
check: one_page
paginations:
  cursor: {strategy: cursor, items: results, size: 3, size_param: limit, next: meta.nextCursor}
  skip: {strategy: skip_take, items: data, size: 3, size_param: take, offset_param: skip}
  numbered: {strategy: page_size, items: _embedded.things, size: 3, size_param: size, first_page: 1}
  header_link: {strategy: link, items: items, size: 3, size_param: per_page}
  body_link: {strategy: link, items: items, size: 3, size_param: per_page, next_url: links.next}
shapes:
  thing: {label: "to_string(n)"}
functions:
  one_page:
    description: One page of things, as the service gives it.
    operation: read
    request: {method: GET, path: /v1/cursor, query: {limit: "{limit}", cursor: "{cursor}"}, paginate: {using: cursor}}
    params:
      limit: {type: integer, description: page size}
      cursor: {type: string, description: where the page starts}
  cursor_things:
    description: Things, collected across cursor pages.
    operation: read
    request: {method: GET, path: /v1/cursor, query: {q: "{q}"}, paginate: {using: cursor, collect: 5, collect_param: limit}}
    response: {extract: "[?n != `1`]", wrap_as: things}
    params:
      limit: {type: integer, description: how many things at most}
      q: {type: string, description: a filter the service is sent}
  skip_things:
    description: Things, collected across skip/take pages.
    operation: read
    request: {method: GET, path: /v1/skip, paginate: {using: skip, collect: 100}}
    response: {shape: thing}
  page_things:
    description: Things, collected across numbered pages.
    operation: read
    request: {method: GET, path: /v1/pages, paginate: {using: numbered, collect: 100}}
  header_things:
    description: Things, collected by the Link header.
    operation: read
    request: {method: GET, path: /v1/header, paginate: {using: header_link, collect: 100}}
  body_things:
    description: Things, collected by the body's next link.
    operation: read
    request: {method: GET, path: /v1/body, query: {to: "{to}"}, paginate: {using: body_link, collect: 100}}
    params:
      to: {type: string, description: where the second page's link points (the test's choice)}
"""


def _page(request: httpx.Request, base: str) -> httpx.Response:
    """The list, paginated the way the request's path asks."""
    query = request.url.params
    path = request.url.path
    headers: dict[str, str] = {}
    if path == "/v1/cursor":
        start, size = int(query.get("cursor") or 0), int(query["limit"])
        end = start + size
        body: Any = {"results": ITEMS[start:end], "meta": {"nextCursor": str(end) if end < len(ITEMS) else None}}
    elif path == "/v1/skip":
        skip, take = int(query["skip"]), int(query["take"])
        body = {"data": ITEMS[skip:skip + take], "pagination": {"hasNextPage": skip + take < len(ITEMS)}}
    elif path == "/v1/pages":
        number, size = int(query["page"]), int(query["size"])
        body = {"_embedded": {"things": ITEMS[(number - 1) * size:number * size]}, "page": {"totalPages": 3}}
    else:
        start = int(query.get("after") or 0)
        end = start + int(query["per_page"])
        following = f"{path}?per_page={query['per_page']}&after={end}" if end < len(ITEMS) else None
        if path == "/v1/header":
            body = {"items": ITEMS[start:end]}
            if following:
                headers["link"] = f'<{base}/v1/header?per_page=1>; rel="first", <{following}>; rel="next"'
        else:
            body = {"items": ITEMS[start:end], "links": {"next": following and (query.get("to") or base) + following}}
    return httpx.Response(200, json=body, headers=headers)


class _Service:
    """The loopback service: answers ``_page``, keeps every request it was sent."""

    def __init__(self) -> None:
        self.base = ""
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"message": "no"})
        return _page(request, self.base)

    def sent(self) -> list[str]:
        return [f"{r.url.path}?{r.url.query.decode()}" if r.url.query else r.url.path for r in self.requests]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Service, Runtime]]:
    folder = tmp_path_factory.mktemp("integrations")
    (folder / "pages_test").mkdir()
    (folder / "pages_test" / "manifest.yaml").write_text(MANIFEST, encoding="utf-8")
    service = _Service()
    with LoopbackServer(service) as server:
        service.base = server.url
        accounts = f"version: 1\nintegrations:\n  pages-test:\n    accounts:\n      main:\n" \
                   f"        api_key: {KEY}\n        base_url: {server.url}\n"
        probe = Runtime(integration_paths=[folder], store=":memory:", accounts=AccountsConfig.empty())
        config = AccountsConfig.parse(accounts, "accounts.yaml", probe._manifest_for, probe.catalog.names, environ={})
        probe.close()
        runtime = Runtime(integration_paths=[folder], store=":memory:", accounts=config)
        yield service, runtime
        runtime.close()


def _run(served: tuple[_Service, Runtime], source: str, **overrides: Any) -> tuple[RunResult, list[str]]:
    service, runtime = served
    service.requests.clear()
    return runtime.run(source, **overrides), service.sent()


def _ok(result: RunResult) -> Any:
    assert result.ok, result.error and result.error.to_dict()
    return result.result


def test_without_collect_a_function_returns_one_page_its_params_passing_the_page_parameters(served: Any) -> None:
    result, sent = _run(served, 'return app.integrations.pages_test.one_page{limit = 2, cursor = "4"}')
    assert _ok(result) == {"results": ITEMS[4:6], "meta": {"nextCursor": "6"}}
    assert sent == ["/v1/cursor?limit=2&cursor=4"]


def test_every_strategy_collects_every_page_into_the_response_slots(served: Any) -> None:
    labelled = [{"n": n, "label": str(n)} for n in range(7)]
    for function, expected, requests in [
            ("skip_things", labelled, ["/v1/skip?take=3&skip=0", "/v1/skip?take=3&skip=3", "/v1/skip?take=3&skip=6"]),
            ("page_things", ITEMS, ["/v1/pages?size=3&page=1", "/v1/pages?size=3&page=2", "/v1/pages?size=3&page=3"]),
            ("header_things", ITEMS, ["/v1/header?per_page=3", "/v1/header?per_page=3&after=3",
                                      "/v1/header?per_page=3&after=6"]),
            ("body_things", ITEMS, ["/v1/body?per_page=3", "/v1/body?per_page=3&after=3", "/v1/body?per_page=3&after=6"])]:
        result, sent = _run(served, f"return app.integrations.pages_test.{function}()")
        assert _ok(result) == expected, function
        assert sent == requests, function
        (call,) = result.calls
        assert [(r["method"], r["path"], r["status"]) for r in call.requests] == [
            ("GET", request.split("?")[0], 200) for request in requests], function


def test_collect_stops_requesting_once_n_items_are_in_and_the_argument_is_capped(served: Any) -> None:
    # collect 5 (no argument): two pages of 3, the second cut at 5 items; extract then drops n == 1
    result, sent = _run(served, 'return app.integrations.pages_test.cursor_things{q = "x"}')
    assert _ok(result) == {"things": [ITEMS[0], *ITEMS[2:5]]}
    assert sent == ["/v1/cursor?q=x&limit=3", "/v1/cursor?q=x&limit=3&cursor=3"]
    result, sent = _run(served, "return app.integrations.pages_test.cursor_things{limit = 2}")
    assert _ok(result) == {"things": [ITEMS[0]]}
    assert sent == ["/v1/cursor?limit=2"]  # pages no larger than what is asked: one request
    result, sent = _run(served, "return app.integrations.pages_test.cursor_things{limit = 50}")
    assert len(_ok(result)["things"]) == 4 and len(sent) == 2  # 50 is capped at collect: 5


def test_a_next_link_to_a_host_the_manifest_does_not_allow_is_refused_never_followed(served: Any) -> None:
    for to in ("https://evil.example", "http://api.pages.example", "http://127.0.0.1:1", "https://me@api.pages.example"):
        result, sent = _run(served, f'return app.integrations.pages_test.body_things{{to = "{to}"}}')
        assert not result.ok and result.error is not None, to
        error = result.error.to_dict()
        assert error["code"] == "bad_response" and error["function"] == "body_things", error
        assert "neither the account's base URL nor one of the manifest's allowed_hosts" in error["message"], error
        assert "allowed_hosts" in error["hint"]
        assert sent == ["/v1/body?to=" + to.replace(":", "%3A").replace("/", "%2F").replace("@", "%40") + "&per_page=3"]


def test_a_next_link_to_another_allowed_host_over_https_is_followed(tmp_path: Path) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return _page(request, "https://api.pages.example")
    folder = tmp_path / "pages_test"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(MANIFEST, encoding="utf-8")
    accounts = f"version: 1\nintegrations:\n  pages-test:\n    accounts:\n      main:\n        api_key: {KEY}\n"
    probe = Runtime(integration_paths=[tmp_path], store=":memory:", accounts=AccountsConfig.empty())
    config = AccountsConfig.parse(accounts, "accounts.yaml", probe._manifest_for, probe.catalog.names, environ={})
    probe.close()
    with Runtime(integration_paths=[tmp_path], store=":memory:", accounts=config,
                 transport=httpx.MockTransport(answer)) as runtime:
        result = runtime.run('return app.integrations.pages_test.body_things{to = "https://cdn.pages.example"}')
    assert _ok(result) == ITEMS
    assert seen == ["https://api.pages.example/v1/body?to=https%3A%2F%2Fcdn.pages.example&per_page=3",
                    "https://cdn.pages.example/v1/body?per_page=3&after=3",  # the link the first page gave
                    "https://api.pages.example/v1/body?per_page=3&after=6"]  # and back, as the second page's says


def test_each_further_page_counts_against_the_runs_calls_limit(served: Any) -> None:
    result, sent = _run(served, "return app.integrations.pages_test.page_things()", limits=Limits(calls=3))
    assert len(_ok(result)) == 7 and len(sent) == 3  # one call and two further pages: 3
    result, sent = _run(served, "return app.integrations.pages_test.page_things()", limits=Limits(calls=2))
    assert not result.ok and result.error is not None and result.error.to_dict()["limit"] == "calls"
    assert len(sent) == 2
    script = "app.integrations.pages_test.page_things(); return app.integrations.pages_test.one_page{limit = 1}"
    result, sent = _run(served, script, limits=Limits(calls=3))
    assert not result.ok and result.error is not None and result.error.to_dict()["limit"] == "calls"
    assert len(sent) == 3  # the pages used the run's calls: the next call is refused before it is sent



def test_calls_in_app_parallel_count_the_pages_already_fetched(served: Any) -> None:
    script = """app.integrations.pages_test.page_things()
    return app.parallel({function() return app.integrations.pages_test.one_page{limit = 1} end,
                         function() return app.integrations.pages_test.one_page{limit = 1} end})"""
    result, sent = _run(served, script, limits=Limits(calls=4))
    assert not result.ok and result.error is not None and result.error.to_dict()["limit"] == "calls"
    assert len(sent) == 4  # one call and two further pages, then one branch's call: the other is refused

def _refusal(folder: Path, change: str, old: str) -> str:
    (folder / "pages_test").mkdir(exist_ok=True)
    assert old in MANIFEST
    (folder / "pages_test" / "manifest.yaml").write_text(MANIFEST.replace(old, change), encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder / "pages_test", None)
    return str(caught.value)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("paginate: {using: numbered, collect: 100}", "paginate: {using: numbred, collect: 100}",
     r":45: functions\.page_things\.request\.paginate: .*paginate uses 'numbred', which 'paginations' does not declare"),
    ("numbered: {strategy: page_size, items: _embedded.things, size: 3, size_param: size, first_page: 1}",
     "numbered: {strategy: page_size, size: 3, size_param: size, first_page: 1}",
     r":45: functions\.page_things\.request\.paginate: .*collecting needs pagination 'numbered' to say where"),
    ("operation: read\n    request: {method: GET, path: /v1/pages",
     "operation: write\n    request: {method: GET, path: /v1/pages", r"page_things.*a write never paginates"),
    ("request: {method: GET, path: /v1/pages", "request: {method: POST, path: /v1/pages",
     r"page_things\.request\.paginate: .*a POST request does not paginate"),
    ("collect: 5, collect_param: limit", "collect: 5, collect_param: q",
     r"cursor_things\.request\.paginate\.collect_param: .*'q' is not an integer parameter"),
    ("collect: 5, collect_param: limit", "collect_param: limit", r"collect_param needs collect"),
    ("collect: 5, collect_param: limit", "collect: 0", r"collect.*greater than or equal to 1"),
    ("paginate: {using: numbered, collect: 100}",
     "paginate: {using: numbered, collect: 100}, include: {x: {method: GET, path: /v1/x}}",
     r"a request that collects pages cannot also include other reads"),
    ("strategy: link, items: items, size: 3, size_param: per_page, next_url",
     "strategy: link, items: items, size: 3, size_param: per_page, nexturl", r"paginations\.body_link\.nexturl"),
])
def test_the_manifest_check_refuses_a_paginate_that_cannot_work(tmp_path: Path, old: str, new: str, message: str) -> None:
    (tmp_path / "pages_test").mkdir()
    (tmp_path / "pages_test" / "manifest.yaml").write_text(MANIFEST, encoding="utf-8")
    assert load_manifest(tmp_path / "pages_test", None).manifest.paginations["numbered"].first_page == 1
    refused = _refusal(tmp_path, new, old)
    assert re.search(message, refused), refused


def test_a_lookup_does_not_paginate(tmp_path: Path) -> None:
    lookup = "lookups:\n  me: {request: {method: GET, path: /v1/me, paginate: {using: cursor}}, extract: id}\nfunctions:\n"
    message = _refusal(tmp_path, lookup, "functions:\n")
    assert "lookups.me" in message and "a lookup's request does not paginate" in message
