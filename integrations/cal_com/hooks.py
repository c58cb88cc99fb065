"""Cal.com API v2 handlers.

Each handler unwraps v2's ``{"status": "success", "data": ...}`` envelope into the
product's result key (``booking``, ``bookings``...), keeps every field Cal.com
returned, and adds the v1-era names the product documents next to the v2 ones (the
manifest's shapes): ``length`` (= ``lengthInMinutes``) on event types,
``startTime``/``endTime`` (= ``start``/``end``) on bookings. Versioned endpoints get
their ``cal-api-version`` header from the manifest's ``endpoint_headers``, on every request.
"""

from __future__ import annotations

from typing import Any

from kosmo_runtime.integration import BadResponse, CallContext, InvalidArgument, UpstreamNotFound

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


def create_booking(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Translate the v1-style ``start``/``end``/``responses`` into ``CreateBookingInput_2024_08_13`` and book."""
    start, end = ctx.parse_time(args["start"]), ctx.parse_time(args["end"])
    minutes = (end - start).total_seconds() / 60
    if minutes <= 0 or not minutes.is_integer():
        raise InvalidArgument(f"end must be a whole number of minutes after start, got {minutes:g} minutes",
                              param="end", hint="e.g. start = \"2026-04-10T09:00:00Z\", [\"end\"] = \"2026-04-10T09:30:00Z\"")
    fields = dict(args["responses"])
    for required in ("name", "email"):
        if not isinstance(fields.get(required), str) or not fields[required].strip():
            raise InvalidArgument(f"responses.{required} is required (a non-empty string)",
                                  param="responses", hint='responses = {name = "John Doe", email = "john@example.com"}')
    attendee = {target: fields.pop(source) for source, target in _ATTENDEE_FIELDS.items() if source in fields}
    attendee.setdefault("timeZone", ctx.setting("attendee_time_zone"))
    body: dict[str, Any] = {"start": ctx.format_time(start), "eventTypeId": args["eventTypeId"], "attendee": attendee}
    body |= {key: fields.pop(key) for key in _BOOKING_LEVEL_FIELDS if key in fields}
    if fields:
        body["bookingFieldsResponses"] = fields
    event_type = ctx.http.get(ctx.path("/v2/event-types/{id}", id=args["eventTypeId"]))["data"]
    length = _booking_length(ctx, event_type, int(minutes))
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
        matching = [item for item in ctx.collect("/v2/bookings", "bookings", query) if item.get("status") == keep]
        bookings, pagination = ctx.local_page(matching, limit, page)
    _remember_uids(ctx, bookings)
    return {"bookings": ctx.shape("booking", bookings), "pagination": pagination}


def get_booking(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """One booking: its uid is looked up by id in the user's bookings, then the booking is read by uid."""
    uid = _uid_of(ctx, args["id"])
    body = ctx.http.get(ctx.path("/v2/bookings/{uid}", uid=uid))
    return _booking_result(ctx, body["data"], args["id"])


# -- helpers ------------------------------------------------------------------------------------


def _booking_result(ctx: CallContext, data: Any, booking_id: int | None = None) -> dict[str, Any]:
    """``{booking}`` for one booking (``data`` an object); for a recurring series (an array of occurrences)
    also ``bookings``, every occurrence, with ``booking`` the one asked for or else the first."""
    if not isinstance(data, list):
        return {"booking": ctx.shape("booking", data)}
    if not data:
        raise BadResponse("Cal.com answered an empty list of bookings",
                          hint="the service may be having problems; list_bookings shows what was booked")
    bookings: list[dict[str, Any]] = ctx.shape("booking", data)
    chosen = next((item for item in bookings if item["id"] == booking_id), bookings[0])
    return {"booking": chosen, "bookings": bookings}


def _booking_length(ctx: CallContext, event_type: dict[str, Any], minutes: int) -> int | None:
    """``lengthInMinutes`` to send: none for the default length, the length when it is an allowed option."""
    if minutes == event_type.get("lengthInMinutes"):
        return None
    options = event_type.get("lengthInMinutesOptions") or []
    if minutes in options:
        return minutes
    allowed = ", ".join(str(m) for m in sorted({event_type.get("lengthInMinutes"), *options} - {None}))
    raise InvalidArgument(
        f"event type {event_type.get('id')} cannot be booked for {minutes} minutes (end - start); "
        f"its allowed length(s): {allowed}",
        param="end", hint="set end so that end - start is one of the event type's lengths",
    )


def _remember_uids(ctx: CallContext, bookings: list[dict[str, Any]]) -> None:
    ctx.memo.setdefault("booking_uids", {}).update({item["id"]: item["uid"] for item in bookings})


def _uid_of(ctx: CallContext, booking_id: int) -> str:
    """The uid of booking ``booking_id``: remembered, or found by paging through GET /v2/bookings."""
    uids: dict[int, str] = ctx.memo.setdefault("booking_uids", {})
    if booking_id not in uids:
        for item in ctx.collect("/v2/bookings", "bookings"):
            uids[item["id"]] = item["uid"]
            if item["id"] == booking_id:
                break
        else:
            raise UpstreamNotFound(
                f"no booking with id {booking_id} among the bookings this account can list",
                hint="list_bookings shows the ids this account can see (as organizer, attendee or team admin)",
            )
    return uids[booking_id]
