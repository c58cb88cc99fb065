"""Named pagination strategies: how to walk a list endpoint page by page, said as data.

* ``cursor``: send ``size_param`` and the last page's ``next`` (a dotted path) as ``cursor_param``;
  stop when the page has no next cursor (Whereby).
* ``skip_take``: send ``size_param`` and ``offset_param`` (items skipped); stop when ``more`` (a
  dotted path, e.g. ``pagination.hasNextPage``) is false (Cal.com).
* ``page_size``: send ``size_param`` and ``page_param`` (numbered from ``first_page``); stop after
  ``total_pages`` (a dotted path, e.g. ``page.totalPages``) or an empty page (GoTo Webinar).

:func:`collect` yields the items of every page lazily, so a caller may stop early.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

__all__ = ["Pagination", "collect"]


@dataclass(frozen=True)
class Pagination:
    """One list endpoint's pagination: the strategy, its parameter names and the response paths
    (a manifest's ``paginations`` entry, checked by pydantic: unknown keys are refused)."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    strategy: Literal["cursor", "skip_take", "page_size"]
    items: str
    size: int
    size_param: str
    cursor_param: str = "cursor"
    next: str = "cursor"
    offset_param: str = "skip"
    more: str = "pagination.hasNextPage"
    page_param: str = "page"
    total_pages: str = "page.totalPages"
    first_page: int = 0


def dig(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` of ``data``, ``None`` where a step is missing."""
    for part in path.split("."):
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def collect(get: Callable[[dict[str, Any]], Any], pagination: Pagination,
            params: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """Every item of a list endpoint; ``get(query)`` fetches one page (the parameters merged in)."""
    base = {**(params or {}), pagination.size_param: pagination.size}
    cursor: Any = None
    number = pagination.first_page
    skipped = 0
    while True:
        query = dict(base)
        if pagination.strategy == "cursor":
            query[pagination.cursor_param] = cursor
        elif pagination.strategy == "skip_take":
            query[pagination.offset_param] = skipped
        else:
            query[pagination.page_param] = number
        page = get(query)
        chunk = dig(page, pagination.items) or []
        yield from chunk
        if pagination.strategy == "cursor":
            cursor = dig(page, pagination.next)
            if not cursor:
                return
        elif pagination.strategy == "skip_take":
            skipped += pagination.size
            if not dig(page, pagination.more):
                return
        else:
            number += 1
            if not chunk or number - pagination.first_page >= (dig(page, pagination.total_pages) or 0):
                return
