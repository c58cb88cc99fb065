"""Named pagination strategies walk every page, send the declared parameters and stop where the service says
(or where a page repeats); ``link`` follows the next URL of the Link header or of the body."""

from __future__ import annotations

from itertools import islice
from typing import Any

import pytest

from kosmo_runtime._paginate import Page, collect, next_link
from kosmo_runtime.integration import Pagination

ITEMS = list(range(7))


def _server(strategy: str, sent: list[dict[str, Any]]) -> Any:
    def get(query: dict[str, Any]) -> Any:
        sent.append(query)
        if strategy == "cursor":
            start = int(query["cursor"] or 0)
            end = start + query["limit"]
            return {"results": ITEMS[start:end], "cursor": str(end) if end < len(ITEMS) else None}
        if strategy == "skip_take":
            skip, take = query["skip"], query["take"]
            return {"data": ITEMS[skip:skip + take], "pagination": {"hasNextPage": skip + take < len(ITEMS)}}
        number, size = query["page"], query["size"]
        return {"_embedded": {"w": ITEMS[number * size:(number + 1) * size]}, "page": {"totalPages": -(-len(ITEMS) // size)}}
    return get


def test_cursor_skip_take_and_page_size_collect_everything() -> None:
    strategies = {
        "cursor": Pagination("cursor", items="results", size=3, size_param="limit"),
        "skip_take": Pagination("skip_take", items="data", size=3, size_param="take"),
        "page_size": Pagination("page_size", items="_embedded.w", size=3, size_param="size"),
    }
    for name, pagination in strategies.items():
        sent: list[dict[str, Any]] = []
        assert list(collect(_server(name, sent), pagination, {"q": "x"})) == ITEMS, name
        assert len(sent) == 3 and all(query["q"] == "x" for query in sent), (name, sent)
    sent = []
    list(collect(_server("skip_take", sent), strategies["skip_take"]))
    assert [q["skip"] for q in sent] == [0, 3, 6]


def test_pages_are_fetched_lazily() -> None:
    sent: list[dict[str, Any]] = []
    pagination = Pagination("cursor", items="results", size=3, size_param="limit")
    assert list(islice(collect(_server("cursor", sent), pagination), 2)) == [0, 1]
    assert len(sent) == 1


def test_an_empty_or_shapeless_page_ends_the_walk() -> None:
    pagination = Pagination("page_size", items="_embedded.w", size=3, size_param="size")
    assert list(collect(lambda query: {}, pagination)) == []
    assert list(collect(lambda query: None, Pagination("cursor", items="results", size=3, size_param="limit"))) == []


def _linked(sent: list[tuple[dict[str, Any], str | None]], *, body_next: bool = False, base: str = "https://api.x.example",
            loop: bool = False) -> Any:
    """A link-paginated list: each page gives the next one's URL, relative in the Link header or
    absolute at ``links.next`` in the body."""
    def get(query: dict[str, Any], url: str | None = None) -> Page:
        sent.append((query, url))
        start = int(url.rsplit("=", 1)[1]) if url else 0
        size = query.get("per_page", 3) if url is None else 3
        end = start + size
        here = url or f"{base}/v1/things?per_page={size}"
        following = None if end >= len(ITEMS) else ("/v1/things?after=0" if loop else f"/v1/things?after={end}")
        if body_next:
            return Page({"items": ITEMS[start:end], "links": {"next": following and base + following}}, here)
        header = following and f'<https://elsewhere.example/last>; rel="last", <{following}>; rel="next"'
        return Page({"items": ITEMS[start:end]}, here, header)
    return get


def test_link_follows_the_link_header_or_a_body_path_relative_to_the_page() -> None:
    for body_next in (False, True):
        sent: list[tuple[dict[str, Any], str | None]] = []
        pagination = Pagination("link", items="items", size=3, size_param="per_page",
                                next_url="links.next" if body_next else None)
        assert list(collect(_linked(sent, body_next=body_next), pagination, {"q": "x"})) == ITEMS
        assert sent == [({"q": "x", "per_page": 3}, None), ({}, "https://api.x.example/v1/things?after=3"),
                        ({}, "https://api.x.example/v1/things?after=6")], body_next


def test_a_next_link_already_fetched_ends_the_walk_as_does_a_repeated_cursor() -> None:
    sent: list[tuple[dict[str, Any], str | None]] = []
    pagination = Pagination("link", items="items", size=3, size_param="per_page")
    assert list(collect(_linked(sent, loop=True), pagination)) == [0, 1, 2, 0, 1, 2]
    assert [url for _, url in sent] == [None, "https://api.x.example/v1/things?after=0"]
    queries: list[dict[str, Any]] = []

    def stuck(query: dict[str, Any]) -> Any:
        queries.append(query)
        return {"results": [len(queries)], "cursor": "same"}
    assert list(collect(stuck, Pagination("cursor", items="results", size=1, size_param="limit"))) == [1, 2]
    assert [q["cursor"] for q in queries] == [None, "same"]


def test_the_link_header_is_read_as_rfc_8288_says() -> None:
    assert next_link('<https://a.example/p?x=1,2>; rel="next"') == "https://a.example/p?x=1,2"  # a comma inside <>
    assert next_link("<https://a.example/2>; rel=next, <https://a.example/9>; rel=last") == "https://a.example/2"
    assert next_link('<https://a.example/9>; rel="last", </p/2>; title="x"; REL="prev NEXT"') == "/p/2"
    assert next_link('<https://a.example/1>; rel="prev"') is None
    assert next_link("") is None and next_link(None) is None and next_link("garbage") is None


def test_before_page_is_asked_before_every_page_after_the_first_and_may_stop_the_walk() -> None:
    asked: list[int] = []
    pagination = Pagination("skip_take", items="data", size=3, size_param="take")
    assert list(collect(_server("skip_take", []), pagination, before_page=lambda: asked.append(1))) == ITEMS
    assert len(asked) == 2

    def refuse() -> None:
        raise RuntimeError("no more")
    walk = collect(_server("skip_take", []), pagination, before_page=refuse)
    assert list(islice(walk, 3)) == [0, 1, 2]
    with pytest.raises(RuntimeError, match="no more"):
        next(walk)


def test_a_pagination_without_items_names_parameters_but_cannot_collect() -> None:
    with pytest.raises(ValueError, match="without 'items' cannot collect"):
        next(collect(lambda query: {}, Pagination("cursor", size=3, size_param="limit")))
