"""``CallContext``: what a handler receives for one call (kept apart from the dispatcher, so it imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

from ._clock import Clock, format_time, parse_time, read, utc_now

if TYPE_CHECKING:
    from ._accounts import Account
    from ._expressions import Scope
    from ._http import Http
    from ._manifest import LookupSpec, Manifest
    from ._paginate import Pagination
    from ._store import ScopedStore

__all__ = ["CallContext"]


@dataclass(slots=True)
class CallContext:
    """What a handler gets: the account (settings; secrets stay with the HTTP layer's auth),
    an ``http`` client bound to it, a ``store`` for facts the service cannot answer, a
    ``memo`` dict kept per account for the life of the Runtime (e.g. a resolved user key),
    and the Runtime's ``clock`` (read it with :meth:`now`)."""

    integration: str
    function: str
    account: Account
    http: Http
    store: ScopedStore
    memo: dict[str, Any]
    clock: Clock = utc_now
    lookups: Mapping[str, LookupSpec] = field(default_factory=dict)
    manifest: Manifest | None = None  # its named paginations and shapes

    def setting(self, name: str) -> Any:
        return self.account.settings.get(name)

    def now(self) -> datetime:
        """The current time (aware, UTC) by the Runtime's clock: real time, or the demo's simulated date."""
        return read(self.clock)

    @overload
    @staticmethod
    def parse_time(text: str) -> datetime: ...
    @overload
    @staticmethod
    def parse_time(text: str | None) -> datetime | None: ...
    @staticmethod
    def parse_time(text: str | None) -> datetime | None:
        """An ISO 8601 date-time (a ``format: date-time`` argument, or a time the service answered)
        as an aware datetime, no offset meaning UTC; ``None`` stays ``None``."""
        return parse_time(text)

    @staticmethod
    def format_time(moment: datetime) -> str:
        """``moment`` in UTC to the second, e.g. ``2025-01-15T11:00:00Z``."""
        return format_time(moment)

    def collect(self, path: str, pagination: Pagination | str, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Iterator[Any]:
        """Every item of the list endpoint ``path``, fetched lazily page by page (``GET``); ``pagination``
        is a :class:`Pagination` or the name of one of the manifest's ``paginations``."""
        from ._paginate import collect

        if isinstance(pagination, str):
            pagination = self._manifest.paginations[pagination]
        return collect(lambda query: self.http.get(path, params=query, headers=headers), pagination, params)

    def shape(self, name: str, value: Any) -> Any:
        """``value`` (an object, or each object of a list) in the manifest's named shape ``name``."""
        from ._expressions import apply_shape

        return apply_shape(name, value, self.scope())

    def local_page(self, items: list[Any], limit: int, page: int) -> tuple[list[Any], dict[str, Any]]:
        """Page ``page`` (1-based) of ``limit`` items of a list filtered here, and where it stands
        (``totalItems``, ``remainingItems``, ``returnedItems``, ``itemsPerPage``, ``currentPage``,
        ``totalPages``, ``hasNextPage``, ``hasPreviousPage``)."""
        from ._local_pages import page_info, page_slice

        chosen = page_slice(items, limit, page)
        return chosen, page_info(len(items), len(chosen), limit, page)

    def scope(self, args: Mapping[str, Any] | None = None) -> Scope:
        """What response expressions see of this call (``args`` only in a declaration's own response)."""
        from ._expressions import Scope

        return Scope(self._manifest.shapes, args or {}, self.account.settings, self.account.name)

    @property
    def _manifest(self) -> Manifest:
        if self.manifest is None:
            raise LookupError(f"{self.label}: this call context has no manifest (named paginations and shapes)")
        return self.manifest

    def lookup(self, name: str) -> Any:
        """A value of the manifest's ``lookups``: the account's setting when it sets one, else the
        service's answer, asked once per account and remembered in ``memo``."""
        spec = self.lookups[name]
        configured = self.setting(spec.setting) if spec.setting else None
        if configured is not None:
            return configured
        if self.memo.get(name) is None:
            from ._errors import BadResponse
            from ._paginate import dig

            found = dig(self.http.request(spec.request.method, spec.request.path), spec.extract)
            if found is None:
                raise BadResponse(f"{self.label}: the service's answer to {spec.request.method} {spec.request.path} "
                                  f"has no {spec.extract}", hint="the service may have changed its API")
            self.memo[name] = found
        return self.memo[name]

    @property
    def label(self) -> str:
        """``integration.function``, for messages (the framework adds integration/function/account to errors)."""
        return f"{self.integration}.{self.function}"
