"""``CallContext``: what a handler receives for one call (kept apart from the dispatcher, so it imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, overload

from ._clock import Clock, format_time, parse_time, read, utc_now

if TYPE_CHECKING:
    from ._accounts import Account
    from ._expressions import Scope
    from ._http import Http, Trace
    from ._manifest import LookupSpec, Manifest
    from ._paginate import Pagination
    from ._store import ScopedStore

__all__ = ["CallContext"]


class CallContext:
    """What a handler gets: the account (settings; secrets stay with the HTTP layer's auth),
    an ``http`` client bound to it, a ``store`` for facts the service cannot answer, a
    ``memo`` dict kept per account for the life of the Runtime (e.g. a resolved user key),
    and the Runtime's ``clock`` (read it with :meth:`now`).

    With ``trace``, ``http`` is the account's shared client and the call's own copy (recording
    into ``trace``) is made when the handler first uses it: a call that sends nothing pays for none.
    """

    __slots__ = ("_http", "_trace", "account", "clock", "function", "integration", "lookups", "manifest", "memo",
                 "next_page", "store")

    def __init__(self, integration: str, function: str, account: Account, http: Http, store: ScopedStore,
                 memo: dict[str, Any], clock: Clock = utc_now, lookups: Mapping[str, LookupSpec] | None = None,
                 manifest: Manifest | None = None, next_page: Callable[[], None] | None = None, *,
                 trace: Trace | None = None) -> None:
        self.integration, self.function, self.account, self.store, self.memo = integration, function, account, store, memo
        self.clock, self.manifest, self.next_page = clock, manifest, next_page  # next_page: before each further page
        self.lookups: Mapping[str, LookupSpec] = {} if lookups is None else lookups
        self._http, self._trace = http, trace

    @property
    def http(self) -> Http:
        """The call's HTTP client (its own copy of the account's, made on first use when ``trace`` was given)."""
        if self._trace is not None:
            self._http, self._trace = self._http.for_call(self._trace), None
        return self._http

    def setting(self, name: str) -> Any:
        """The account's setting ``name``; a ConfigError when the manifest's ``enum`` for it does not allow its value."""
        value = self.account.settings.get(name)
        spec = self.manifest.settings.get(name) if self.manifest is not None else None
        if value is not None and spec is not None and spec.enum is not None and value not in spec.enum:
            from ._errors import ConfigError

            raise ConfigError(f"{self.integration}.{self.account.name}: {name} is {value!r}",
                              hint=f"set {name} to one of {', '.join(map(str, spec.enum))} in the accounts file")
        return value

    def table(self, name: str) -> dict[Any, Any]:
        """The manifest's constant table ``name`` (``tables:``), e.g. a code -> region map."""
        return self._manifest.tables[name]

    def path(self, template: str, **values: Any) -> str:
        """A path template filled as a declaration's is: ``{name}`` takes ``values``, else a setting,
        else the manifest's lookup of that name (asked once per account); each value is
        percent-encoded as one path segment."""
        from ._endpoint_headers import template_names
        from ._templates import fill_path

        filled = {**self.account.settings, **values}
        for name in template_names(template):
            if filled.get(name) is None and name in self.lookups:
                filled[name] = self.lookup(name)
        return fill_path(template, filled)

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
                headers: Mapping[str, str] | None = None, *, most: int | None = None) -> Iterator[Any]:
        """Every item of the list endpoint ``path``, fetched lazily page by page (``GET``); ``pagination``
        is a :class:`Pagination` or the name of one of the manifest's ``paginations``. With ``most``, at
        most that many items: pages no larger, none requested once they are in. Each page after the
        first counts as a call against the run's ``calls`` limit."""
        from ._paginate import collect

        if isinstance(pagination, str):
            pagination = self._manifest.paginations[pagination]
        if most is not None:
            if most < 1:
                return iter(())
            pagination = replace(pagination, size=min(pagination.size, most))
        items = collect(lambda query, url=None: self.http.page(url or path, params=None if url else query, headers=headers),
                        pagination, params, self.next_page)
        return items if most is None else islice(items, most)

    @overload
    def shape(self, name: str, value: dict[str, Any]) -> dict[str, Any]: ...
    @overload
    def shape(self, name: str, value: list[Any]) -> list[Any]: ...
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

        return Scope(self._manifest.shapes, args or {}, self.account.settings, self.account.name, self.account.label,
                     self.now)

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
            from ._expressions import Scope, evaluate

            scope = self.scope() if self.manifest is not None else Scope()
            found = evaluate(spec.extract, self.http.request(spec.request.method, spec.request.path), scope)
            if found is None:
                raise BadResponse(f"the service's answer to {spec.request.method} {spec.request.path} "
                                  f"has no {spec.extract}", hint="the service may have changed its API")
            if spec.one is not None:
                found = self._only(name, spec, found, scope)
            self.memo[name] = found
        return self.memo[name]

    def _only(self, name: str, spec: LookupSpec, found: Any, scope: Scope) -> Any:
        """The lookup's ``one`` rule: ``found`` must be a list of exactly one item (its ``take``); else an
        AccountError naming the candidates, as ``show`` renders each."""
        from ._errors import AccountError
        from ._expressions import evaluate

        one = spec.one
        assert one is not None
        items = found if isinstance(found, list) else [found]
        if len(items) != 1:
            setting = f"has no {spec.setting} setting and " if spec.setting else "has "
            shown = ", ".join(str(evaluate(one.show, item, scope)) for item in items) or "none"
            raise AccountError(
                f"account {self.account.name!r} {setting}{len(items)} {one.what}, so its {name} is not known",
                hint=(f"set {spec.setting} for this account in the accounts file; " if spec.setting else "")
                + f"{one.what}: {shown}")
        return evaluate(one.take, items[0], scope) if one.take else items[0]

    @property
    def label(self) -> str:
        """``integration.function``, for messages (the framework adds integration/function/account to errors)."""
        return f"{self.integration}.{self.function}"
