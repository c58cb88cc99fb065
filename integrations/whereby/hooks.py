"""Whereby handlers: the Lua contract (rooms, meetings, a current user) over Whereby's REST API v1.

Whereby's API has no rooms resource: a room made through the API is a *meeting*
(``/v1/meetings``), a transient room with a ``meetingId``, ``roomUrl``, ``roomName``
(with a leading ``/``) and start and end dates. So rooms and meetings are the same
records here; what a meeting "was like" (sessions, participants) comes from the
insights endpoints. Every item keeps Whereby's fields and gains the documented keys
(the manifest's ``room`` shape): ``id`` (= ``meetingId``), ``meetingUrl`` (= ``roomUrl``),
``roomName`` without the slash, and ``roomPath`` (Whereby's ``roomName``, with it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kosmo_runtime.integration import CallContext, InvalidArgument, UpstreamNotFound

MEETINGS = "/v1/meetings"
DEFAULT_LENGTH = timedelta(hours=1)


def _room_path(name: str) -> str:
    """Whereby's form of a room name: with exactly one leading slash."""
    return "/" + name.lstrip("/")


# -- dates ------------------------------------------------------------------------------


def _end_date(ctx: CallContext, now: datetime, start: datetime | None, end: datetime | None,
              requested: str | None) -> tuple[str, str | None]:
    """The ``endDate`` to send, and a note when the requested end had passed (at ``now``) and was moved."""
    now = now.replace(microsecond=0)
    if end is None:
        return ctx.format_time(max(now, start or now) + DEFAULT_LENGTH), None
    if end > now:
        return str(requested), None
    length = end - start if start else DEFAULT_LENGTH
    end_date = ctx.format_time(now + length)
    return end_date, (f"end_date {requested} has passed and Whereby only accepts a future end date, so the room "
                      f"ends at {end_date} instead ({length.total_seconds() / 60:g} minutes from now)")


# -- upstream access --------------------------------------------------------------------


def _find_meeting(ctx: CallContext, room_name: str) -> dict[str, Any]:
    """The meeting whose room is ``room_name`` (shaped as a room); UpstreamNotFound when no meeting has it."""
    wanted = _room_path(room_name)
    for meeting in ctx.collect(MEETINGS, "pages"):
        room: dict[str, Any] = ctx.shape("room", meeting)
        if room["roomPath"] == wanted:
            return room
    raise UpstreamNotFound(
        f"Whereby has no room named {wanted.lstrip('/')!r} "
        f"(searched every meeting of the organization)",
        hint="list_rooms shows the rooms that exist; Whereby deletes a room an hour after its end date",
    )


# -- handlers and transforms ----------------------------------------------------------------


def room_page(ctx: CallContext, args: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
    """A list result: Whereby's page (``results``, ``cursor``) plus ``data`` (rooms) and ``meta.nextCursor``."""
    return {**page, "data": ctx.shape("room", page["results"]), "meta": {"nextCursor": page.get("cursor")}}


def meeting_page(ctx: CallContext, args: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
    """One page of meetings, filtered here by date window and room (Whereby has no such filters)."""
    since, until = ctx.parse_time(args.get("from_date")), ctx.parse_time(args.get("to_date"))
    room = _room_path(args["room_name"]) if args.get("room_name") else None

    def keep(meeting: dict[str, Any]) -> bool:
        started = meeting.get("startDate")
        return ((since is None or ctx.parse_time(meeting["endDate"]) >= since)
                and (until is None or started is None or ctx.parse_time(started) <= until)
                and (room is None or meeting["roomPath"] == room))

    listing = room_page(ctx, args, page)
    return {**listing, "data": [m for m in listing["data"] if keep(m)]}


def get_room(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """The room named ``room_name``, found by paging the meeting list."""
    return _find_meeting(ctx, args["room_name"])


def create_room(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Create a meeting; ``endDate`` defaults to an hour from now, and a past end date is moved to the future.

    Whereby requires an ``endDate`` that has not passed and ignores ``startDate`` (rooms open on
    creation). A requested end that has passed keeps the requested length (or an hour) from now,
    and the result carries ``requestedEndDate`` and a ``note`` saying so.
    """
    start, end = ctx.parse_time(args.get("start_date")), ctx.parse_time(args.get("end_date"))
    if start and end and end <= start:
        raise InvalidArgument("end_date must be after start_date", param="end_date",
                              hint="give an end_date later than start_date")
    end_date, note = _end_date(ctx, ctx.now(), start, end, args.get("end_date"))
    body: dict[str, Any] = {"endDate": end_date}
    if args.get("room_mode"):
        body["roomMode"] = args["room_mode"]
    if prefix := (args.get("room_name_prefix") or "").replace(" ", "").lower():
        body["roomNamePrefix"] = prefix
    if args.get("fields"):
        body["fields"] = args["fields"]
    room: dict[str, Any] = ctx.shape("room", ctx.http.post(MEETINGS, json=body))
    return {**room, "requestedEndDate": args["end_date"], "note": note} if note else room


def delete_room(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Delete the meeting whose room is ``room_name``."""
    room = _find_meeting(ctx, args["room_name"])
    ctx.http.delete(ctx.path(MEETINGS + "/{id}", id=room["meetingId"]))
    return {**room, "deleted": True}


def get_meeting(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """A meeting plus its room's session insights, in the manifest's ``meeting`` shape: ``sessions``,
    ``duration`` (s) and ``participants`` (each session's connections)."""
    meeting = ctx.shape("room", ctx.http.get(ctx.path(MEETINGS + "/{meeting_id}", **args)))
    sessions = list(ctx.collect("/v1/insights/room-sessions", "pages", {"roomName": meeting["roomPath"]}))
    participants = [person for session in sessions for person in ctx.collect(
        "/v1/insights/participants", "pages", {"roomSessionId": session["roomSessionId"], "sortBy": "joinedAt:asc"})]
    return ctx.shape("meeting", {**meeting, "sessions": sessions, "participants": participants})
