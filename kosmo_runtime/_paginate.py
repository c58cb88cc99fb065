"""Named pagination strategies: how to walk a list endpoint page by page, said as data.

* ``cursor``: send ``size_param`` and the last page's ``next`` (a dotted path) as ``cursor_param``;
  stop when the page has no next cursor, or gives the one just sent again (Whereby).
* ``skip_take``: send ``size_param`` and ``offset_param`` (items skipped); stop when ``more`` (a
  dotted path, e.g. ``pagination.hasNextPage``) is false (Cal.com).
* ``page_size``: send ``size_param`` and ``page_param`` (numbered from ``first_page``); stop after
  ``total_pages`` (a dotted path, e.g. ``page.totalPages``) or an empty page (GoTo Webinar).
* ``link``: send ``size_param`` on the first request, then follow the URL the service gives for
  the next page: at ``next_url`` (a dotted path of the body, e.g. ``links.next``) or, without it,
  in the ``Link`` header's ``rel="next"`` (RFC 8288); relative to the page's own URL. Stop when
  there is none, or it is one already fetched. Where a next URL may go is the fetcher's check
  (``Http.page``: the account's base URL, or one of the manifest's hosts over https).

:func:`collect` yields the items (at ``items``) of every page lazily, so a caller may stop early
and no page past the last item taken is requested.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import urljoin

__all__ = ["Page", "Pagination", "collect", "next_link"]


@dataclass(frozen=True)
class Pagination:
    """One list endpoint's pagination: the strategy, its parameter names and the response paths
    (a manifest's ``paginations`` entry, checked by pydantic: unknown keys are refused). Without
    ``items`` it only names the parameters (a function returning one page); collecting needs it."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    strategy: Literal["cursor", "skip_take", "page_size", "link"]
    size: int
    size_param: str
    items: str | None = None
    cursor_param: str = "cursor"
    next: str = "cursor"
    offset_param: str = "skip"
    more: str = "pagination.hasNextPage"
    page_param: str = "page"
    total_pages: str = "page.totalPages"
    first_page: int = 0
    next_url: str | None = None  # link: the body's dotted path of the next page's URL; none: the Link header


@dataclass(frozen=True, slots=True)
class Page:
    """One fetched page: its JSON body, the URL it came from and its ``Link`` header (for ``link``)."""

    body: Any
    url: str = ""
    link: str | None = None


#: Fetches one page: ``get(query)`` the list endpoint with ``query``; ``get({}, url)`` a next page's URL.
#: It returns a :class:`Page`, or just the body (the strategies other than ``link`` need no more).
Fetch = Callable[..., Any]

_LINK = re.compile(r"<([^>]*)>([^<]*)")
_REL = re.compile(r';\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))', re.I)


def dig(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` of ``data``, ``None`` where a step is missing."""
    for part in path.split("."):
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def next_link(header: str | None) -> str | None:
    """The target of a ``Link`` header's ``rel="next"`` (RFC 8288: rel values are space-separated,
    case-insensitive), or ``None``."""
    for target, params in _LINK.findall(header or ""):
        for quoted, bare in _REL.findall(params):
            if "next" in (quoted or bare).lower().split():
                return str(target).strip()
    return None


def collect(get: Fetch, pagination: Pagination, params: Mapping[str, Any] | None = None,
            before_page: Callable[[], None] | None = None) -> Iterator[Any]:
    """Every item of a list endpoint, page by page (``get``: :data:`Fetch`, the parameters merged
    into the first query and every query of the strategies that send one); ``before_page`` is
    called before each page after the first (the run's limits: it raises to stop the walk)."""
    items = pagination.items
    if items is None:
        raise ValueError(f"a {pagination.strategy} pagination without 'items' cannot collect: "
                         "it does not say where a page's items are")
    base = {**(params or {}), pagination.size_param: pagination.size}
    cursor: Any = None
    number = pagination.first_page
    skipped = 0
    url: str | None = None
    seen: set[Any] = set()
    while True:
        if pagination.strategy == "link" and url is not None:
            answer = get({}, url)
        else:
            query = dict(base)
            if pagination.strategy == "cursor":
                query[pagination.cursor_param] = cursor
            elif pagination.strategy == "skip_take":
                query[pagination.offset_param] = skipped
            elif pagination.strategy == "page_size":
                query[pagination.page_param] = number
            answer = get(query)
        page = answer if isinstance(answer, Page) else Page(answer)
        chunk = dig(page.body, items) or []
        yield from chunk
        if pagination.strategy == "cursor":
            seen.add(cursor)
            cursor = dig(page.body, pagination.next)
            if not cursor or cursor in seen:
                return
        elif pagination.strategy == "skip_take":
            skipped += pagination.size
            if not dig(page.body, pagination.more):
                return
        elif pagination.strategy == "page_size":
            number += 1
            if not chunk or number - pagination.first_page >= (dig(page.body, pagination.total_pages) or 0):
                return
        else:
            seen.add(page.url or url)
            target = dig(page.body, pagination.next_url) if pagination.next_url else next_link(page.link)
            url = urljoin(page.url, target) if isinstance(target, str) and target else None
            if url is None or url in seen:
                return
        if before_page is not None:
            before_page()
