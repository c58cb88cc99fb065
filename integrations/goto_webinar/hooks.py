"""Handlers and transforms of the GoTo Webinar integration: G2W REST v2 plus the Admin API's ``/me``.

Every G2W path is rooted at ``/organizers/{organizerKey}``: the manifest's ``organizer_key``
lookup (the account's setting, else ``GET /admin/rest/v1/me`` asked once per account).

GoTo sends keys as strings in some objects and as int64 numbers in others; results
carry every ``key``/``...Key`` field as a string, so any key can be passed back as an ``id``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from kosmo_runtime.integration import CallContext, Pagination

LIST_WINDOW = timedelta(days=365)  # list_webinars covers starts from now - 1 year to now + 1 year
MAX_PAGE_SIZE = 200
DERIVED_STATUSES = ("ACTIVE", "IN_SESSION", "ENDED")


# -- shared helpers ---------------------------------------------------------------------


def _string_keys(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with every numeric ``key`` or ``...Key`` field as a string (``record`` itself when
    it has none: it is a fresh answer; the type test first, as most fields are not integers)."""
    numeric = {name: str(value) for name, value in record.items()
               if type(value) is int and name.lower().endswith("key")}
    return {**record, **numeric} if numeric else record


def _organizer_path(ctx: CallContext) -> str:
    """``/G2W/rest/v2/organizers/{organizerKey}`` for the call's account (the manifest's ``organizer_key`` lookup)."""
    return f"/G2W/rest/v2/organizers/{quote(str(ctx.lookup('organizer_key')), safe='')}"


def _webinar_path(ctx: CallContext, webinar_key: str) -> str:
    return f"{_organizer_path(ctx)}/webinars/{quote(webinar_key, safe='')}"


def _instant(value: str) -> datetime:
    """An ISO-8601 date-time from GoTo (UTC when it carries no offset)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(webinar: dict[str, Any], in_session: bool, now: datetime) -> str:
    """IN_SESSION when GoTo says so, ENDED when every time has passed, else ACTIVE."""
    if in_session:
        return "IN_SESSION"
    ended = all(_instant(slot["endTime"]) <= now for slot in webinar.get("times") or [])
    return "ENDED" if ended else "ACTIVE"


def _page_info(total: int, page: int, size: int) -> dict[str, int]:
    """A page object shaped like GoTo's own (Spring ``page``)."""
    return {"size": size, "totalElements": total, "totalPages": math.ceil(total / size), "number": page}


def _embedded(body: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """The ``_embedded`` list of a paged answer (GoTo may leave ``_embedded`` out when empty)."""
    return ((body or {}).get("_embedded") or {}).get(key) or []


# -- webinars ---------------------------------------------------------------------------------


def _status_warning(status: str) -> str:
    """Why ``status``, which is not a derivable status, matches no webinar."""
    if status.upper() == "CANCELED":
        return ("GoTo Webinar does not list cancelled webinars (getWebinar answers 404 for them), "
                "so no webinar can have status CANCELED")
    return f"unknown status {status!r}: use ACTIVE, IN_SESSION, ENDED or CANCELED; nothing matches it"


def _all_webinars(ctx: CallContext, path: str, window: dict[str, str]) -> list[dict[str, Any]]:
    """Every webinar in ``window``, reading GoTo's pages at the maximum size."""
    pages = Pagination("page_size", items="_embedded.webinars", size=MAX_PAGE_SIZE, size_param="size")
    return list(ctx.collect(path, pages, window))


def _with_status(webinars: list[dict[str, Any]], live: set[str], now: datetime) -> list[dict[str, Any]]:
    """List items with string keys and a derived ``status`` (``live``: keys in session now)."""
    return [{**w, "status": _status(w, w["webinarKey"] in live, now)} for w in map(_string_keys, webinars)]


def list_webinars(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Webinars starting within a year either side of now, each with a derived ``status``.

    Without ``status`` one GoTo page is returned as is. With it, every page of the window
    is read and filtered here, and ``page``/``size`` slice the filtered list.
    """
    page, size, status = args["page"], args["size"], args.get("status")
    wanted = status.upper() if status is not None else None
    if wanted is not None and wanted not in DERIVED_STATUSES:
        return {"_embedded": {"webinars": []}, "page": _page_info(0, page, size), "warnings": [_status_warning(str(status))]}
    now = ctx.now()
    window = {"fromTime": _iso(now - LIST_WINDOW), "toTime": _iso(now + LIST_WINDOW)}
    base = _organizer_path(ctx)
    live = {str(w["webinarKey"]) for w in ctx.http.get(f"{base}/insessionWebinars", params=window) or []}
    if wanted is None:
        body = ctx.http.get(f"{base}/webinars", params={**window, "page": page, "size": size}) or {}
        webinars = _with_status(_embedded(body, "webinars"), live, now)
        return {**body, "_embedded": {"webinars": webinars}, "window": window}
    webinars = _with_status(_all_webinars(ctx, f"{base}/webinars", window), live, now)
    matching = [w for w in webinars if w["status"] == wanted]
    return {
        "_embedded": {"webinars": matching[page * size:(page + 1) * size]},
        "page": _page_info(len(matching), page, size),
        "window": window,
    }


def webinar_with_status(ctx: CallContext, args: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Transform of ``get_webinar``: one webinar (``WebinarByKey``) with string keys and a derived ``status``."""
    webinar = _string_keys(data)
    return {**webinar, "status": _status(webinar, bool(webinar.get("inSession")), ctx.now())}


def create_webinar(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Schedule a webinar: one slot is a ``single_session``, several a ``series``."""
    times = args["times"]  # each {startTime, endTime}: checked by the manifest's properties
    body: dict[str, Any] = {
        "subject": args["subject"],
        "times": times,
        "type": "single_session" if len(times) == 1 else "series",
    }
    if args.get("description") is not None:
        body["description"] = args["description"]
    created = ctx.http.post(f"{_organizer_path(ctx)}/webinars", json=body)
    return {**_string_keys(created), "type": body["type"]}


# -- sessions and panelists ---------------------------------------------------------------


def session_page(ctx: CallContext, args: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
    """Transform of ``list_sessions``: the page with string keys, under ``sessions`` as well as GoTo's own key."""
    sessions = [_string_keys(s) for s in _embedded(data, "sessionInfoResources")]
    return {**(data or {}), "_embedded": {"sessionInfoResources": sessions, "sessions": sessions}}


def get_session(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """A past session: its attendee list and performance, with ``attendees`` (count) and
    ``duration`` (seconds from the session's start to its end)."""
    path = f"{_webinar_path(ctx, args['webinar_id'])}/sessions/{quote(args['id'], safe='')}"
    attendees = [_string_keys(a) for a in ctx.http.get(path) or []]
    performance = ctx.http.get(f"{path}/performance")
    info = performance["sessionInfo"]
    duration = _instant(info["endTime"]) - _instant(info["startTime"])
    return {
        **performance,
        "sessionKey": str(info["sessionKey"]),
        "webinarKey": args["webinar_id"],
        "startTime": info["startTime"],
        "endTime": info["endTime"],
        "duration": int(duration.total_seconds()),
        "attendees": len(attendees),
        "attendeeList": attendees,
    }


def panelist_page(ctx: CallContext, args: dict[str, Any], data: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Transform of ``list_panelists``: GoTo's one unpaged list, sliced by ``page``/``size``."""
    panelists, page, size = data or [], args["page"], args["size"]
    return {
        "_embedded": {"panelists": panelists[page * size:(page + 1) * size]},
        "page": _page_info(len(panelists), page, size),
    }


# -- identity -------------------------------------------------------------------------------


def current_user(ctx: CallContext, args: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Transform of ``get_current_user``: string keys; ``organizerKey`` repeats ``key``, the key G2W paths use."""
    me = _string_keys(data)
    ctx.memo["organizer_key"] = me["key"]
    return {**me, "organizerKey": me["key"]}
