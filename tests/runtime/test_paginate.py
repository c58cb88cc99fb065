"""Named pagination strategies walk every page, send the declared parameters and stop where the service says."""

from __future__ import annotations

from itertools import islice
from typing import Any

from kosmo_runtime._paginate import collect
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
