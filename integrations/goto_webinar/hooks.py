"""Handlers and transforms of the GoTo Webinar integration: G2W REST v2 plus the Admin API's ``/me``.

Every G2W path is rooted at ``/organizers/{organizer_key}``: the manifest's lookup (the account's
setting, else ``GET /admin/rest/v1/me`` asked once per account). The manifest's ``string_keys``
turn GoTo's int64 keys into strings, on what these handlers return as on the declarations' answers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kosmo_runtime.integration import CallContext, Pagination

LIST_WINDOW = timedelta(days=365)  # list_webinars covers starts from now - 1 year to now + 1 year
MAX_PAGE_SIZE = 200
DERIVED_STATUSES = ("ACTIVE", "IN_SESSION", "ENDED")
ORGANIZER = "/G2W/rest/v2/organizers/{organizer_key}"


def _paged(ctx: CallContext, key: str, items: list[Any], args: dict[str, Any]) -> dict[str, Any]:
    """The 0-based page ``args`` ask for of a list filtered or sliced here, with a Spring page object as GoTo's own."""
    chosen, at = ctx.local_page(items, args["size"], args["page"] + 1)
    return {"_embedded": {key: chosen}, "page": {"size": at["itemsPerPage"], "totalElements": at["totalItems"],
                                                 "totalPages": at["totalPages"], "number": args["page"]}}


def _status(ctx: CallContext, webinar: dict[str, Any], in_session: bool, now: datetime) -> str:
    """IN_SESSION when GoTo says so, ACTIVE while one of its times is ahead, else ENDED (Python, not a
    shape: it is on get_webinar's path, where an expression's cost shows)."""
    if in_session:
        return "IN_SESSION"
    return "ACTIVE" if any(ctx.parse_time(slot["endTime"]) > now for slot in webinar.get("times") or []) else "ENDED"


def _status_warning(status: str) -> str:
    """Why ``status``, which is not a derivable status, matches no webinar."""
    if status.upper() == "CANCELED":
        return ("GoTo Webinar does not list cancelled webinars (getWebinar answers 404 for them), "
                "so no webinar can have status CANCELED")
    return f"unknown status {status!r}: use ACTIVE, IN_SESSION, ENDED or CANCELED; nothing matches it"


def list_webinars(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Webinars starting within a year either side of now, each with a derived ``status``.

    Without ``status`` one GoTo page is returned as is. With it, every page of the window
    is read (at the largest size) and filtered here, and ``page``/``size`` slice the filtered list.
    """
    status = args.get("status")
    wanted = status.upper() if status is not None else None
    if wanted is not None and wanted not in DERIVED_STATUSES:
        return {**_paged(ctx, "webinars", [], args), "warnings": [_status_warning(str(status))]}
    now = ctx.now()
    window = {"fromTime": ctx.format_time(now - LIST_WINDOW), "toTime": ctx.format_time(now + LIST_WINDOW)}
    live = {str(w["webinarKey"]) for w in ctx.http.get(ctx.path(f"{ORGANIZER}/insessionWebinars"), params=window) or []}
    path = ctx.path(f"{ORGANIZER}/webinars")
    if wanted is None:
        body = ctx.http.get(path, params={**window, "page": args["page"], "size": args["size"]}) or {}
        found = (body.get("_embedded") or {}).get("webinars") or []  # GoTo leaves _embedded out when empty
    else:
        pages = Pagination("page_size", items="_embedded.webinars", size=MAX_PAGE_SIZE, size_param="size")
        found = list(ctx.collect(path, pages, window))
    webinars = [{**w, "status": _status(ctx, w, str(w["webinarKey"]) in live, now)} for w in found]
    if wanted is None:
        return {**body, "_embedded": {"webinars": webinars}, "window": window}
    return {**_paged(ctx, "webinars", [w for w in webinars if w["status"] == wanted], args), "window": window}


def create_webinar(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Schedule a webinar: one slot is a ``single_session``, several a ``series``."""
    kind = "single_session" if len(args["times"]) == 1 else "series"  # times: checked by the manifest's properties
    body = {name: args[name] for name in ("subject", "description", "times") if args.get(name) is not None}
    return {**ctx.http.post(ctx.path(f"{ORGANIZER}/webinars"), json={**body, "type": kind}), "type": kind}


def webinar_with_status(ctx: CallContext, args: dict[str, Any], webinar: dict[str, Any]) -> dict[str, Any]:
    """Transform of ``get_webinar``: the webinar (``WebinarByKey``) with its derived ``status``."""
    return {**webinar, "status": _status(ctx, webinar, bool(webinar.get("inSession")), ctx.now())}


def panelist_page(ctx: CallContext, args: dict[str, Any], panelists: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Transform of ``list_panelists``: GoTo's one unpaged list, sliced by ``page``/``size``."""
    return _paged(ctx, "panelists", panelists or [], args)
