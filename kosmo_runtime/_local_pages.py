"""Paging done here, for lists a service returns whole (or filtered here): one page of them, and
where that page stands, in the fields of Cal.com's ``PaginationMetaDto`` (a common vocabulary)."""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["page_info", "page_slice"]

T = TypeVar("T")


def page_slice(items: list[T], limit: int | None, page: int) -> list[T]:
    """Page ``page`` (1-based) of ``limit`` items; without a limit everything is page 1."""
    if limit is None:
        return items if page == 1 else []
    return items[(page - 1) * limit : page * limit]


def page_info(total: int, returned: int, limit: int, page: int) -> dict[str, Any]:
    """Where page ``page`` of ``limit`` items (``returned`` of them) stands among ``total``."""
    skip = (page - 1) * limit
    return {
        "totalItems": total,
        "remainingItems": max(0, total - skip - returned),
        "returnedItems": returned,
        "itemsPerPage": limit,
        "currentPage": page,
        "totalPages": -(-total // limit),
        "hasNextPage": skip + limit < total,
        "hasPreviousPage": page > 1,
    }
