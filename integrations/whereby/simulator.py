"""Loopback simulator of the Whereby REST API v1 (``https://api.whereby.dev/v1``).

Simulated (paths from the host root, as in ``shared/specs/whereby.json``):

* ``GET /v1/meetings`` (``cursor``, ``limit`` 1..100 default 50, ``fields``),
  ``POST /v1/meetings`` (201 ``Meeting``), ``GET /v1/meetings/{meetingId}``
  (``fields``; 404 when unknown), ``DELETE /v1/meetings/{meetingId}`` (204,
  idempotent: also for an unknown or already deleted id);
* ``GET /v1/insights/rooms`` (``roomName[exact|startsWith|contains]``,
  ``createdAt[from|to]``, ``sortBy``, ``cursor``, ``limit`` default 10),
  ``GET /v1/insights/room-sessions`` (``roomName`` required, ``roomSessionId``,
  ``sortBy``, ``cursor``, ``limit``), ``GET /v1/insights/participants``
  (``roomSessionId`` or ``externalId`` required, ``sortBy`` on
  ``joinedAt``/``leftAt``, ``cursor``, ``limit``).

Auth is ``Authorization: Bearer <api key>``; every demo key belongs to the same
organisation (``kosmo-demo.whereby.com``), as several keys of one Whereby
organisation share its data. Errors are JSON ``{"error": "<message>"}``; a 429
is Whereby's throttle body ``{"error": "Rate limit active for throttle key:
organization:<id>", "data": {"msLeft": <int>}}`` with ``Retry-After``,
``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``.
Lists are ``{"results": [...], "cursor": "<opaque>" | null}``.

Seeded data, in ``simulator_data.yaml`` beside this module (ids are stable; dates
are relative to midnight UTC of the simulator's day when it starts, per its clock
``Simulator.now``, except the January 2025 ones, which are absolute):

* 18 meetings, oldest first: four in January 2025 (``71234501``,
  ``71234588`` on 2025-01-15 10:00-11:00 UTC, ``71239012``, ``71240377``),
  ``84417203`` (room ``/my-meeting-room``, open from 60 days ago until 30 days
  ahead), ``abc123`` (room ``/product-review-<uuid>``, held 7 days ago), and
  twelve more whose ``endDate`` is in the past or the future.
* Insights for ``/my-meeting-room`` (3 sessions; one all-hands with 12
  participants, so participant lists page), for ``abc123``'s room (2 sessions
  on the same afternoon) and for ``71234588``'s room (1 session in January 2025).
* Cursors ``next_page_cursor`` (``GET /v1/meetings`` from position 10) and
  ``example_cursor`` (from position 1) are valid, as previously issued cursors.

Deliberate choices and spec quirks:

* ``cursor`` is ``null`` on the last page, as the endpoint docs say, although the
  spec types it as a non-nullable string.
* Invalid input (body, ``limit``, ``fields``, ``sortBy``, dates, a cursor this
  simulator never issued, a missing required filter) answers 400 with
  ``{"error": ...}``; the spec documents no 400 for these operations, and the
  exact wording of Whereby's messages is not published.
* ``startDate`` in a create body is ignored (deprecated upstream); a new meeting
  starts at request time, and its room expires (insights ``endAt``) an hour
  after ``endDate``. ``endDate`` before now is rejected, per the spec text.
* Room session items carry both ``startedAt``/``endedAt`` (documented
  properties) and ``createdAt``/``endAt`` (what the spec marks required).
* Insights list only rooms that have had a session (``firstSessionStartedAt``
  is required). Meetings whose ``endDate`` has passed stay listed so the demo
  has history; real Whereby deletes a transient room an hour after ``endDate``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from kosmo_runtime.integration import Simulator, route

__all__ = ["DEMO_ACCOUNTS", "WherebySimulator"]

_DATA = Simulator.read_data(__package__)  # simulator_data.yaml beside this module

DEMO_ACCOUNTS: dict[str, dict[str, str]] = _DATA["demo_accounts"]

SUBDOMAIN = "kosmo-demo"
ORGANIZATION_ID = "318724"
RATE_LIMIT_POINTS = 1000  # the Grow plan's budget per minute

MESSAGES = {
    401: "Access token is missing or invalid",
    404: "The requested resource doesn't exist",
}

FIELDS = ("hostRoomUrl", "viewerRoomUrl")
HUMAN_SHORT_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")

# Nested option objects of a create body: required keys, and enum-valued keys (``None`` = inherit).
_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    "recording": (
        ("type", "destination", "startTrigger"),
        {"type": ("none", "local", "cloud"), "startTrigger": ("none", "prompt", "automatic", "automatic-2nd-participant")},
    ),
    "liveTranscription": (
        ("destination", "startTrigger"),
        {"startTrigger": ("none", "manual", "automatic", "automatic-2nd-participant")},
    ),
    "streaming": (("destination", "startTrigger"), {"startTrigger": ("none", "prompt", "automatic")}),
}

ROOM_SORT_FIELDS = (
    "roomName", "createdAt", "endAt", "firstSessionStartedAt", "lastSessionStartedAt",
    "totalParticipantMinutes", "totalRecorderMinutes", "totalStreamerMinutes", "totalUniqueParticipants",
    "totalUniqueRecorders", "totalUniqueStreamers", "totalSessions", "rating", "totalRatings",
)
SESSION_SORT_FIELDS = (
    "roomSessionId", "roomName", "createdAt", "endAt", "startedAt", "endedAt",
    "totalParticipantMinutes", "totalRecorderMinutes", "totalStreamerMinutes", "totalUniqueParticipants",
    "totalUniqueRecorders", "totalUniqueStreamers", "rating", "totalRatings",
)
PARTICIPANT_SORT_FIELDS = ("joinedAt", "leftAt")

_NS = uuid.UUID("6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f")


def _uid(name: str) -> str:
    """A stable, realistic-looking UUID for the ids derived from seed data (sessions, participants)."""
    return str(uuid.uuid5(_NS, name))


# -- helpers -------------------------------------------------------------------


class _InvalidInput(Exception):
    """Raised by a handler to answer 400 with Whereby's error body."""


def _answers_invalid_input(handler: Callable[..., httpx.Response]) -> Callable[..., httpx.Response]:
    """Turn an ``_InvalidInput`` raised by ``handler`` into a 400 response."""

    @functools.wraps(handler)
    def wrapper(self: WherebySimulator, request: httpx.Request, **params: str) -> httpx.Response:
        try:
            return handler(self, request, **params)
        except _InvalidInput as exc:
            return self.error(400, str(exc))

    return wrapper


def _iso(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds, as Whereby (and JavaScript's ``toISOString``) writes it."""
    return Simulator.format_iso(moment, milliseconds=True)


def _parse_date_time(value: Any, name: str) -> datetime:
    """Parse an ISO-8601 date-time; no offset means UTC."""
    moment = Simulator.parse_iso(value) if isinstance(value, str) and _ISO_DATE_TIME.match(value) else None
    if moment is None:
        raise _InvalidInput(f"{name} must be a valid ISO 8601 date-time")
    return moment


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _room_key(meeting_id: str, room_name: str, kind: str) -> str:
    """A JWT-shaped room key like the ``roomKey`` Whereby appends to host and viewer URLs (fake signature)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({
        "meetingId": meeting_id,
        "roomReference": {"roomName": room_name, "organizationId": ORGANIZATION_ID},
        "iss": "https://accounts.srv.whereby.com",
        "roomKeyType": kind,
    }).encode())
    signature = _b64url(hashlib.sha256(f"{header}.{payload}.{kind}".encode()).digest())
    return f"{header}.{payload}.{signature}"


def _meeting(meeting_id: str, room_name: str, start: datetime, end: datetime) -> dict[str, str]:
    """The stored form of a meeting: every field the API can return."""
    room_url = f"https://{SUBDOMAIN}.whereby.com{room_name}"
    return {
        "meetingId": meeting_id,
        "roomName": room_name,
        "roomUrl": room_url,
        "startDate": _iso(start),
        "endDate": _iso(end),
        "hostRoomUrl": f"{room_url}?roomKey={_room_key(meeting_id, room_name, 'meetingHost')}",
        "viewerRoomUrl": f"{room_url}?roomKey={_room_key(meeting_id, room_name, 'meetingViewer')}",
    }


def _query_values(request: httpx.Request, name: str) -> list[str]:
    """All values of a query parameter, splitting comma-separated lists (``style: form, explode: false``)."""
    return [part for value in request.url.params.get_list(name) for part in value.split(",") if part]


def _fields(values: Iterable[Any]) -> list[str]:
    """Validate a ``fields`` list (query or body)."""
    fields = list(values)
    for field in fields:
        if field not in FIELDS:
            raise _InvalidInput(f"fields must only contain {' and '.join(FIELDS)}")
    return fields


def _enum(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> None:
    if name in body and body[name] not in allowed:
        raise _InvalidInput(f"{name} must be one of: {', '.join(allowed)}")


def _check_options(name: str, value: Any) -> None:
    """Validate a ``recording``, ``liveTranscription`` or ``streaming`` object of a create body."""
    required, enums = _OPTIONS[name]
    if not isinstance(value, dict):
        raise _InvalidInput(f"{name} must be an object")
    missing = [key for key in required if key not in value]
    if missing:
        raise _InvalidInput(f"{name}.{missing[0]} is required")
    if value["destination"] is not None and not isinstance(value["destination"], dict):
        raise _InvalidInput(f"{name}.destination must be an object or null")
    for key, allowed in enums.items():
        if value.get(key) is not None and value[key] not in allowed:
            raise _InvalidInput(f"{name}.{key} must be one of: {', '.join(allowed)}")


def _room_name_prefix(value: Any) -> str:
    """Validate ``roomNamePrefix``: lowercase, spaces removed, at most 39 characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _InvalidInput("roomNamePrefix must be a string")
    prefix = value.replace(" ", "")
    if len(prefix) > 39 or not re.fullmatch(r"[a-z0-9-]*", prefix):
        raise _InvalidInput("roomNamePrefix must be at most 39 lowercase letters, digits or dashes")
    return prefix


def _sorted(items: list[dict[str, Any]], sort_by: str | None, allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    """Apply a ``sortBy=<field>:<asc|desc>`` parameter; nulls sort first ascending."""
    if sort_by is None:
        return items
    field, _, direction = sort_by.partition(":")
    if field not in allowed or direction not in ("", "asc", "desc"):
        raise _InvalidInput(f"sortBy must be <field>:<asc|desc> with field one of: {', '.join(allowed)}")
    return sorted(items, key=lambda item: (item[field] is not None, item[field]), reverse=direction == "desc")


def _average_rating(participants: list[dict[str, Any]]) -> tuple[float | None, int]:
    ratings = [p["rating"] for p in participants if p["rating"] is not None]
    return (round(sum(ratings) / len(ratings), 2) if ratings else None), len(ratings)


def _participant_minutes(participants: list[dict[str, Any]]) -> int:
    """Minutes in the session, rounded up per individual connection."""
    return sum(math.ceil((p["leftAt"] - p["joinedAt"]).total_seconds() / 60) for p in participants)


class WherebySimulator(Simulator):
    """The Whereby REST API v1: meetings (transient rooms) and usage insights."""

    service = "whereby"

    demo_accounts = DEMO_ACCOUNTS
    credential_fields = ("api_key",)

    # -- state -------------------------------------------------------------------

    def seed(self) -> None:
        """Meetings, insights for the rooms that had sessions and previously issued cursors, from the data file."""
        data = self.seed_data()
        self._meetings: dict[str, dict[str, str]] = {}
        self._rooms: dict[str, dict[str, datetime]] = {}
        for seeded in data["meetings"]:
            meeting_id, room_name = seeded["meetingId"], seeded["roomName"]
            start, end = self.at(seeded["startDate"]), self.at(seeded["endDate"])
            self._meetings[meeting_id] = _meeting(meeting_id, room_name, start, end)
            self._rooms[room_name] = {"createdAt": start, "endAt": end + timedelta(hours=1)}

        people = data["people"]
        position_of = {person["externalId"]: position for position, person in enumerate(people)}
        self._sessions: list[dict[str, Any]] = []
        self._participants: list[dict[str, Any]] = []
        for seeded in data["sessions"]:
            key, started = seeded["key"], self.at(seeded["start"])
            session_id = _uid(f"session:{key}")
            self._sessions.append({
                "roomSessionId": session_id, "roomName": self._meetings[seeded["meeting"]]["roomName"],
                "startedAt": started, "endedAt": started + timedelta(minutes=seeded["minutes"]),
                "recorderMinutes": seeded["recorder_minutes"], "streamerMinutes": seeded["streamer_minutes"],
            })
            for order, joined in enumerate(seeded["participants"]):
                external_id = joined["person"]
                person = position_of[external_id]
                self._participants.append({
                    "roomSessionId": session_id,
                    "participantId": f"/{_uid(f'participant:{key}:{person}')}",
                    "deviceId": _uid(f"device:{external_id}"),
                    "userId": _uid(f"user:{external_id}"),
                    "roleName": "host" if order == 0 else "visitor",
                    "displayName": people[person]["displayName"],
                    "joinedAt": started + timedelta(minutes=joined["joined"], seconds=7 * person % 50),
                    "leftAt": started + timedelta(minutes=joined["left"], seconds=-(3 * person % 40)),
                    "externalId": external_id,
                    "rating": joined["rating"],
                })

        self._cursors: dict[str, tuple[str, int]] = {
            cursor: (issued["path"], issued["offset"]) for cursor, issued in data["cursors"].items()
        }
        self._next_meeting_id: int = data["next_meeting_id"]

    # -- what the base class asks for ----------------------------------------------

    def authenticate(self, request: httpx.Request) -> httpx.Response | None:
        """Accept ``Authorization: Bearer <key>`` for a known key."""
        if self.accepts(self.bearer_token(request)):
            return None
        return self.error(401, MESSAGES[401])

    def error(self, status: int, message: str, **extra: Any) -> httpx.Response:
        """Whereby's ``{"error": ...}`` body; a 429 is its throttle body and rate-limit headers."""
        if status == 429:
            return self._throttled()
        return self.json(status, {"error": message, **extra})

    def _throttled(self) -> httpx.Response:
        """The ``ThrottleError`` response: the point budget refills at the next minute."""
        now = self.now()
        reset = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        ms_left = max(1, int((reset - now).total_seconds() * 1000))
        return self.json(
            429,
            {"error": f"Rate limit active for throttle key: organization:{ORGANIZATION_ID}", "data": {"msLeft": ms_left}},
            headers={
                "Retry-After": str(math.ceil(ms_left / 1000)),
                "X-RateLimit-Limit": str(RATE_LIMIT_POINTS),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": format_datetime(reset, usegmt=True),
            },
        )

    # -- pagination ------------------------------------------------------------------

    @staticmethod
    def _scope(request: httpx.Request) -> str:
        """What a cursor is bound to: the path and its filters (not ``cursor``, ``limit`` or ``fields``)."""
        filters = sorted((k, v) for k, v in request.url.params.multi_items() if k not in ("cursor", "limit", "fields"))
        return f"{request.url.path}?{urlencode(filters)}" if filters else request.url.path

    def _page(self, request: httpx.Request, items: list[dict[str, Any]], default_limit: int) -> httpx.Response:
        """One page of ``items``: ``{"results": [...], "cursor": <next cursor or null>}``."""
        raw_limit = request.url.params.get("limit")
        if raw_limit is None:
            limit = default_limit
        elif raw_limit.isdigit() and 1 <= int(raw_limit) <= 100:
            limit = int(raw_limit)
        else:
            raise _InvalidInput("limit must be an integer between 1 and 100")
        scope = self._scope(request)
        offset = 0
        token = request.url.params.get("cursor")
        if token:
            issued = self._cursors.get(token)
            if issued is None or issued[0] != scope:
                raise _InvalidInput("Invalid cursor")
            offset = issued[1]
        page = self.page(items, offset, limit)
        cursor = None
        if page.has_next:
            cursor = hashlib.blake2b(f"{scope}#{page.end}".encode(), digest_size=16).hexdigest()
            self._cursors[cursor] = (scope, page.end)
        return self.json(200, {"results": page.items, "cursor": cursor})

    # -- meetings --------------------------------------------------------------------

    @staticmethod
    def _shown(meeting: dict[str, str], fields: Iterable[str]) -> dict[str, str]:
        """A meeting as returned: the base fields plus the requested ``fields``."""
        shown = {key: meeting[key] for key in ("meetingId", "roomName", "roomUrl", "startDate", "endDate")}
        shown.update({field: meeting[field] for field in fields})
        return shown

    @route("GET", "/v1/meetings")
    @_answers_invalid_input
    def list_meetings(self, request: httpx.Request) -> httpx.Response:
        """Meetings, oldest first, a page at a time."""
        fields = _fields(_query_values(request, "fields"))
        return self._page(request, [self._shown(m, fields) for m in self._meetings.values()], default_limit=50)

    @route("POST", "/v1/meetings")
    @_answers_invalid_input
    def create_meeting(self, request: httpx.Request) -> httpx.Response:
        """Create a transient room open from now until an hour after ``endDate``."""
        body = self.body(request)
        if not isinstance(body, dict):
            raise _InvalidInput("Request body must be a JSON object")
        if "endDate" not in body:
            raise _InvalidInput("endDate is required")
        now = self.now()
        end = _parse_date_time(body["endDate"], "endDate")
        if end < now:
            raise _InvalidInput("endDate must be the same or after the current date")
        _enum(body, "roomMode", ("group", "normal"))
        _enum(body, "roomNamePattern", ("uuid", "human-short"))
        _enum(body, "templateType", ("viewerMode",))
        if "isLocked" in body and not isinstance(body["isLocked"], bool):
            raise _InvalidInput("isLocked must be a boolean")
        for name in _OPTIONS:
            if name in body:
                _check_options(name, body[name])
        raw_fields = body.get("fields", [])
        if not isinstance(raw_fields, list):
            raise _InvalidInput("fields must be an array")
        fields = _fields(raw_fields)
        if body.get("templateType") == "viewerMode":
            fields = list(FIELDS)
        prefix = _room_name_prefix(body.get("roomNamePrefix"))
        if body.get("roomNamePattern") == "human-short":
            suffix = "".join(secrets.choice(HUMAN_SHORT_ALPHABET) for _ in range(6))
        else:
            suffix = str(uuid.uuid4())
        meeting_id = str(self._next_meeting_id)
        self._next_meeting_id += 1
        meeting = _meeting(meeting_id, f"/{prefix}{suffix}", now, end)
        self._meetings[meeting_id] = meeting
        return self.json(201, self._shown(meeting, fields))

    @route("GET", "/v1/meetings/{meetingId}")
    @_answers_invalid_input
    def get_meeting(self, request: httpx.Request, meetingId: str) -> httpx.Response:
        """One meeting, 404 when unknown or deleted."""
        fields = _fields(_query_values(request, "fields"))
        meeting = self._meetings.get(meetingId)
        if meeting is None:
            return self.error(404, MESSAGES[404])
        return self.json(200, self._shown(meeting, fields))

    @route("DELETE", "/v1/meetings/{meetingId}")
    def delete_meeting(self, request: httpx.Request, meetingId: str) -> httpx.Response:
        """Delete a meeting; idempotent, so an unknown id is 204 too."""
        self._meetings.pop(meetingId, None)
        return httpx.Response(204)

    # -- insights --------------------------------------------------------------------

    def _session_participants(self, session_id: str) -> list[dict[str, Any]]:
        return [p for p in self._participants if p["roomSessionId"] == session_id]

    def _session_insight(self, session: dict[str, Any]) -> dict[str, Any]:
        """A ``/insights/room-sessions`` item."""
        people = self._session_participants(session["roomSessionId"])
        rating, total_ratings = _average_rating(people)
        started, ended = _iso(session["startedAt"]), _iso(session["endedAt"])
        return {
            "roomSessionId": session["roomSessionId"],
            "roomName": session["roomName"],
            "createdAt": started,
            "endAt": ended,
            "startedAt": started,
            "endedAt": ended,
            "totalParticipantMinutes": _participant_minutes(people),
            "totalRecorderMinutes": session["recorderMinutes"],
            "totalStreamerMinutes": session["streamerMinutes"],
            "totalUniqueParticipants": len({p["userId"] for p in people}),
            "totalUniqueRecorders": int(session["recorderMinutes"] > 0),
            "totalUniqueStreamers": int(session["streamerMinutes"] > 0),
            "rating": rating,
            "totalRatings": total_ratings,
        }

    def _room_insight(self, room_name: str, sessions: list[dict[str, Any]]) -> dict[str, Any]:
        """A ``/insights/rooms`` item, aggregated over the room's sessions (ratings: the last session's)."""
        items = [self._session_insight(s) for s in sessions]
        people = [p for s in sessions for p in self._session_participants(s["roomSessionId"])]
        room = self._rooms[room_name]
        return {
            "roomName": room_name,
            "createdAt": _iso(room["createdAt"]),
            "endAt": _iso(room["endAt"]),
            "firstSessionStartedAt": items[0]["startedAt"],
            "lastSessionStartedAt": items[-1]["startedAt"],
            "totalParticipantMinutes": sum(i["totalParticipantMinutes"] for i in items),
            "totalRecorderMinutes": sum(i["totalRecorderMinutes"] for i in items),
            "totalStreamerMinutes": sum(i["totalStreamerMinutes"] for i in items),
            "totalUniqueParticipants": len({p["userId"] for p in people}),
            "totalUniqueRecorders": max(i["totalUniqueRecorders"] for i in items),
            "totalUniqueStreamers": max(i["totalUniqueStreamers"] for i in items),
            "totalSessions": len(items),
            "rating": items[-1]["rating"],
            "totalRatings": items[-1]["totalRatings"],
        }

    @route("GET", "/v1/insights/rooms")
    @_answers_invalid_input
    def room_insights(self, request: httpx.Request) -> httpx.Response:
        """Usage per room that has had a session, with bracketed ``roomName``/``createdAt`` filters."""
        params = request.url.params
        by_room: dict[str, list[dict[str, Any]]] = {}
        for session in sorted(self._sessions, key=lambda s: s["startedAt"]):
            by_room.setdefault(session["roomName"], []).append(session)
        created_from = _parse_date_time(params["createdAt[from]"], "createdAt[from]") if "createdAt[from]" in params else None
        created_to = _parse_date_time(params["createdAt[to]"], "createdAt[to]") if "createdAt[to]" in params else None
        matches: list[tuple[str, Callable[[str, str], bool]]] = [
            ("exact", str.__eq__), ("startsWith", str.startswith), ("contains", str.__contains__),
        ]
        items = []
        for room_name, sessions in sorted(by_room.items(), key=lambda entry: self._rooms[entry[0]]["createdAt"]):
            created = self._rooms[room_name]["createdAt"]
            if any(f"roomName[{op}]" in params and not test(room_name, params[f"roomName[{op}]"]) for op, test in matches):
                continue
            if (created_from and created < created_from) or (created_to and created > created_to):
                continue
            items.append(self._room_insight(room_name, sessions))
        return self._page(request, _sorted(items, params.get("sortBy"), ROOM_SORT_FIELDS), default_limit=10)

    @route("GET", "/v1/insights/room-sessions")
    @_answers_invalid_input
    def room_session_insights(self, request: httpx.Request) -> httpx.Response:
        """Usage per session of one room (``roomName`` required, with its leading slash)."""
        params = request.url.params
        room_name = params.get("roomName")
        if not room_name:
            raise _InvalidInput("roomName is required")
        session_id = params.get("roomSessionId")
        sessions = sorted(
            (s for s in self._sessions if s["roomName"] == room_name and session_id in (None, s["roomSessionId"])),
            key=lambda s: s["startedAt"],
        )
        items = [self._session_insight(s) for s in sessions]
        return self._page(request, _sorted(items, params.get("sortBy"), SESSION_SORT_FIELDS), default_limit=10)

    @route("GET", "/v1/insights/participants")
    @_answers_invalid_input
    def participant_insights(self, request: httpx.Request) -> httpx.Response:
        """Participants of a session, or everyone who joined with an ``externalId``; by ``joinedAt``."""
        params = request.url.params
        session_id, external_id = params.get("roomSessionId"), params.get("externalId")
        if not session_id and not external_id:
            raise _InvalidInput("Either roomSessionId or externalId is required")
        people = [
            p for p in self._participants
            if (not session_id or p["roomSessionId"] == session_id) and (not external_id or p["externalId"] == external_id)
        ]
        items = [
            {**p, "joinedAt": _iso(p["joinedAt"]), "leftAt": _iso(p["leftAt"])}
            for p in sorted(people, key=lambda p: p["joinedAt"])
        ]
        return self._page(request, _sorted(items, params.get("sortBy"), PARTICIPANT_SORT_FIELDS), default_limit=10)
