"""Cal.com API v2 handlers.

Each handler unwraps v2's ``{"status": "success", "data": ...}`` envelope into the
product's result key (``event_types``, ``booking``...), keeps every field Cal.com
returned, and adds the v1-era names the product documents next to the v2 ones:
``length`` (= ``lengthInMinutes``) on event types, ``startTime``/``endTime`` (=
``start``/``end``) on bookings. Versioned endpoints get their ``cal-api-version``
header from the manifest's ``endpoint_headers`` (the account's settings), on every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kosmo_runtime.integration import BadResponse, CallContext, InvalidArgument, Pagination, UpstreamNotFound

_SCAN = Pagination("skip_take", items="data", size=250, size_param="take")  # 250: GET /v2/bookings' largest page
_DEFAULT_TAKE = 100  # GET /v2/bookings' own default page size
# list_bookings status -> (upstream `status` filter, a comma-separated list; booking status kept client-side or None)
_STATUS_FILTERS: dict[str, tuple[str, str | None]] = {
    "pending": ("unconfirmed", None),
    "confirmed": ("upcoming,past", "accepted"),
    "cancelled": ("cancelled", "cancelled"),
    "rejected": ("cancelled", "rejected"),
}
# create_booking responses keys that become CreateBookingInput_2024_08_13.attendee fields
_ATTENDEE_FIELDS = {"name": "name", "email": "email", "timeZone": "timeZone",
                    "attendeePhoneNumber": "phoneNumber", "language": "language"}
_BOOKING_LEVEL_FIELDS = ("guests", "location")


def list_event_types(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """The user's (or a team's) event types, sliced to ``limit``/``page`` here (upstream has no paging)."""
    team_id = args.get("teamId")
    if team_id is None:
        body = ctx.http.get("/v2/event-types")
    else:
        body = ctx.http.get(f"/v2/teams/{team_id}/event-types")
    event_types = [_event_type(item) for item in body["data"]]
    return {"event_types": _slice(event_types, args.get("limit"), args["page"])}


def create_booking(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Translate the v1-style ``start``/``end``/``responses`` into ``CreateBookingInput_2024_08_13`` and book."""
    start, end = ctx.parse_time(args["start"]), ctx.parse_time(args["end"])
    minutes = (end - start).total_seconds() / 60
    if minutes <= 0 or not minutes.is_integer():
        raise InvalidArgument(f"{ctx.label}: end must be a whole number of minutes after start, got {minutes:g} minutes",
                              param="end", hint="e.g. start = \"2026-04-10T09:00:00Z\", [\"end\"] = \"2026-04-10T09:30:00Z\"")
    fields = dict(args["responses"])
    for required in ("name", "email"):
        if not isinstance(fields.get(required), str) or not fields[required].strip():
            raise InvalidArgument(f"{ctx.label}: responses.{required} is required (a non-empty string)",
                                  param="responses", hint='responses = {name = "John Doe", email = "john@example.com"}')
    attendee = {target: fields.pop(source) for source, target in _ATTENDEE_FIELDS.items() if source in fields}
    attendee.setdefault("timeZone", ctx.setting("attendee_time_zone"))
    body: dict[str, Any] = {"start": ctx.format_time(start), "eventTypeId": args["eventTypeId"], "attendee": attendee}
    body |= {key: fields.pop(key) for key in _BOOKING_LEVEL_FIELDS if key in fields}
    if fields:
        body["bookingFieldsResponses"] = fields
    length = _booking_length(ctx, _fetch_event_type(ctx, args["eventTypeId"]), int(minutes))
    if length is not None:
        body["lengthInMinutes"] = length
    created = ctx.http.post("/v2/bookings", json=body)["data"]
    _remember_uids(ctx, created if isinstance(created, list) else [created])
    return _booking_result(ctx, created)


def list_bookings(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Bookings with Cal.com's take/skip paging, or client-side paging when the status needs a client-side filter."""
    limit, page = args.get("limit") or _DEFAULT_TAKE, args["page"]
    upstream_status, keep = _STATUS_FILTERS[args["status"]] if "status" in args else (None, None)
    query = {"status": upstream_status, "eventTypeId": args.get("eventTypeId")}
    if keep is None:
        body = ctx.http.get("/v2/bookings", params={**query, "take": limit, "skip": (page - 1) * limit})
        bookings, pagination = body["data"], body.get("pagination")
    else:
        matching = [item for item in _scan_bookings(ctx, query) if item.get("status") == keep]
        bookings = _slice(matching, limit, page)
        pagination = _pagination(len(matching), len(bookings), limit, page)
    _remember_uids(ctx, bookings)
    return {"bookings": [_booking(item) for item in bookings], "pagination": pagination}


def get_booking(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """One booking: its uid is looked up by id in the user's bookings, then the booking is read by uid."""
    uid = _uid_of(ctx, args["id"])
    body = ctx.http.get(f"/v2/bookings/{uid}")
    return _booking_result(ctx, body["data"], args["id"])


def page_slice(ctx: CallContext, args: dict[str, Any], items: list[Any]) -> list[Any]:
    """A list the service returns whole, sliced to ``limit``/``page`` here (upstream has no paging)."""
    return _slice(items, args.get("limit"), args["page"])


# -- helpers ------------------------------------------------------------------------------------


def _event_type(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "length": item.get("lengthInMinutes")}


def _booking(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "startTime": item.get("start"), "endTime": item.get("end")}


def _booking_result(ctx: CallContext, data: Any, booking_id: int | None = None) -> dict[str, Any]:
    """``{booking}`` for one booking (``data`` an object); for a recurring series (an array of occurrences)
    also ``bookings``, every occurrence, with ``booking`` the one asked for or else the first."""
    if not isinstance(data, list):
        return {"booking": _booking(data)}
    if not data:
        raise BadResponse(f"{ctx.label}: Cal.com answered an empty list of bookings",
                          hint="the service may be having problems; list_bookings shows what was booked")
    bookings = [_booking(item) for item in data]
    chosen = next((item for item in bookings if item["id"] == booking_id), bookings[0])
    return {"booking": chosen, "bookings": bookings}


def _slice(items: list[Any], limit: int | None, page: int) -> list[Any]:
    """Page ``page`` (1-based) of ``limit`` items; without a limit everything is page 1."""
    if limit is None:
        return items if page == 1 else []
    return items[(page - 1) * limit : page * limit]


def _pagination(total: int, returned: int, limit: int, page: int) -> dict[str, Any]:
    """Cal.com's ``PaginationMetaDto`` fields, computed over a client-side filtered list."""
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


def _fetch_event_type(ctx: CallContext, event_type_id: int) -> dict[str, Any]:
    body = ctx.http.get(f"/v2/event-types/{event_type_id}")
    event_type: dict[str, Any] = body["data"]
    return event_type


def _booking_length(ctx: CallContext, event_type: dict[str, Any], minutes: int) -> int | None:
    """``lengthInMinutes`` to send: none for the default length, the length when it is an allowed option."""
    if minutes == event_type.get("lengthInMinutes"):
        return None
    options = event_type.get("lengthInMinutesOptions") or []
    if minutes in options:
        return minutes
    allowed = ", ".join(str(m) for m in sorted({event_type.get("lengthInMinutes"), *options} - {None}))
    raise InvalidArgument(
        f"{ctx.label}: event type {event_type.get('id')} cannot be booked for {minutes} minutes (end - start); "
        f"its allowed length(s): {allowed}",
        param="end", hint="set end so that end - start is one of the event type's lengths",
    )


def _scan_bookings(ctx: CallContext, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every booking matching ``query``, fetched lazily in pages of 250."""
    return ctx.collect("/v2/bookings", _SCAN, query)


def _remember_uids(ctx: CallContext, bookings: list[dict[str, Any]]) -> None:
    ctx.memo.setdefault("booking_uids", {}).update({item["id"]: item["uid"] for item in bookings})


def _uid_of(ctx: CallContext, booking_id: int) -> str:
    """The uid of booking ``booking_id``: remembered, or found by paging through GET /v2/bookings."""
    uids: dict[int, str] = ctx.memo.setdefault("booking_uids", {})
    if booking_id not in uids:
        for item in _scan_bookings(ctx, {}):
            uids[item["id"]] = item["uid"]
            if item["id"] == booking_id:
                break
        else:
            raise UpstreamNotFound(
                f"{ctx.label}: no booking with id {booking_id} among the bookings this account can list",
                hint="list_bookings shows the ids this account can see (as organizer, attendee or team admin)",
            )
    return uids[booking_id]
