"""Loopback simulator of the Cal.com API v2 (``https://api.cal.com``; every path starts with ``/v2``).

Simulated, as in ``shared/specs/calcom.json`` and Cal.com's own ``apps/api/v2`` sources:

* ``GET /v2/me`` and ``GET /v2/teams``: API key required, unversioned;
* ``GET /v2/teams/{teamId}/event-types`` (``eventSlug``, ``hostsLimit``, ``sortCreatedAt``):
  public, like the real controller, which has no auth guard (any team id; unknown -> ``[]``);
* ``GET /v2/event-types`` (``username``, ``eventSlug``, ``orgSlug``, ``orgId``,
  ``sortCreatedAt``; key optional) and ``GET /v2/event-types/{eventTypeId}`` (key required),
  served for ``cal-api-version: 2024-06-14``;
* ``GET /v2/bookings`` (key required; ``status``, ``attendeeEmail``, ``attendeeName``,
  ``bookingUid``, ``eventTypeId``/``eventTypeIds``, ``teamId``/``teamsIds``, ``afterStart``,
  ``beforeEnd``, ``after/beforeCreatedAt``, ``after/beforeUpdatedAt``, ``sortStart``,
  ``sortEnd``, ``sortCreated``, ``sortUpdatedAt``, ``take`` 1..250 default 100, ``skip``),
  ``POST /v2/bookings`` (201; key optional, as anyone may book) and
  ``GET /v2/bookings/{bookingUid}`` (key optional), served for ``cal-api-version: 2024-08-13``
  and ``2026-02-25`` (same shapes).

Auth is ``Authorization: Bearer <key>``; like Cal.com the server strips the first
``"Bearer "`` only, so a bare key works too. A missing key on a guarded route, or an unknown
key on any route but the public one, is 401. Errors use the v2 exception filter body
``{"status": "error", "timestamp", "path" (URL with query), "error": {"code": "<Nest
exception>", "message", "details"}}``; ``details`` is Nest's ``{"message", "error",
"statusCode"}``, or ``{"errors": [ValidationError, ...]}`` for an invalid query (``message``
then is ``"Bad Request Exception"``). A 500 is Nest's bare ``{"statusCode": 500, "message":
"Internal server error"}``; a 429 is a ``ThrottlerException`` with
``X-RateLimit-{Limit,Remaining,Reset}-Default`` (and ``Retry-After`` when the fault sets it).

Seeded data, in ``simulator_data.yaml`` beside this module (times are relative to midnight
UTC of the simulator's day when it starts, per its clock, ``Simulator.now``):

* users 1047 ``alex-morgan`` (the ``default`` account's key; any other accepted key is Alex
  too), 1048 ``jordan-lee`` (``work``), 1063 ``sam-rivera`` (``personal``);
* teams 1 "Design Guild" (Alex admin), 5 "Acme Sales" (Alex owner, Jordan member),
  9 "Growth Lab" (Jordan owner);
* event types: Alex's 7 "Strategy Consultation" (45 min; 30/45/60 allowed; requires
  confirmation; required ``company`` field; Google Meet), 42 "Product Demo" (30 min, Cal
  Video), 43 "Internal Sync" (hidden); Jordan's 55; Sam's 61 and 62 "Weekly Mentoring" (30 min,
  recurring weekly, 4 occurrences); team 5's 311 (round robin) and
  312 (collective); team 1's 14; team 9's 90;
* bookings 118 (42, past, accepted), 121 (7, past, accepted), 122 (42, past, cancelled),
  123 (42, upcoming, accepted, uid ``bk3Xq9TzR7mNwP2vLc8HdA``, Jane Smith plus a guest),
  124 (7, upcoming, pending), 125 (42, upcoming, cancelled), 126 (7, upcoming, rejected),
  127 (311, upcoming), 130 (Jordan's 55, upcoming). New bookings are numbered from 131.

Deliberate choices and deviations:

* ``cal-api-version`` is resolved as upstream does: a value outside Cal.com's version list
  falls back to ``2024-04-15``. When the resolved version has no controller here the answer
  is Nest's ``404 Cannot GET /v2/...``, which is the real answer for, e.g., ``2024-09-04`` on
  ``/v2/bookings``. Upstream, a missing or unknown header (and ``2024-04-15``,
  ``2024-06-11``, or ``2024-06-14`` on bookings) reaches deprecated, undocumented
  controllers with other shapes; those are not simulated, and the same 404 makes a
  forgotten header fail loudly.
* ``/v1/...`` answers 410 Gone: API v1 was shut down in 2026 and clients report HTTP 410 on
  every call. The body is not published; ours is a guess.
* No availability schedules: a booking is refused only in the past, inside the 2-hour
  minimum notice, or when it overlaps an accepted or pending booking of the host(s).
* Recurring event types (Sam's 62, weekly, 4 occurrences): ``POST /v2/bookings`` books every
  occurrence (``recurrenceCount`` may ask for fewer) and answers ``data`` as an array of
  ``RecurringBookingOutput_2024_08_13``, one per occurrence, sharing ``recurringBookingUid``;
  ``GET /v2/bookings/{uid}`` answers one occurrence's uid with that occurrence (an object) and
  the ``recurringBookingUid`` with the whole series (an array), as Cal.com's ``getBooking`` does.
* Not simulated: ``usernames`` (dynamic group events, answered ``[]``), seated and
  instant bookings, OAuth client credentials (``x-cal-client-id``/``x-cal-secret-key``).
* Faithful to the real output where the spec disagrees (see the quirks in the spec test):
  event type ``users``/``hosts`` are objects, ``seats``/``bookingWindow`` are
  ``{"disabled": true}``, booking fields' ``isDefault`` is a boolean, teams keep ``null``s,
  and ``pagination.currentPage`` is 0 for an empty result.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from calendar import monthrange
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from kosmo_runtime.integration import Clock, Simulator, route

__all__ = ["BOOKINGS_VERSIONS", "DEMO_ACCOUNTS", "EVENT_TYPES_VERSIONS", "CalComSimulator"]

_DATA = Simulator.read_data(__package__)  # simulator_data.yaml beside this module

DEMO_ACCOUNTS: dict[str, dict[str, str]] = _DATA["demo_accounts"]

EVENT_TYPES_VERSIONS = frozenset({"2024-06-14"})
"""``cal-api-version`` values the event types endpoints are served for."""
BOOKINGS_VERSIONS = frozenset({"2024-08-13", "2026-02-25"})
"""``cal-api-version`` values the bookings endpoints are served for."""

WEBSITE = "https://cal.com"
APP = "https://app.cal.com"

# Cal.com's version list (platform-constants API_VERSIONS) and the version it falls back to.
_API_VERSIONS = frozenset({"2024-04-15", "2024-06-11", "2024-06-14", "2024-08-13", "2024-09-04", "2026-02-25"})
_FALLBACK_VERSION = "2024-04-15"

_NO_AUTH = (
    "ApiAuthStrategy - No authentication method provided. Either pass an API key as 'Bearer' header "
    "or OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers"
)
_BAD_API_KEY = "ApiAuthStrategy - api key - Your api key is not valid"
_BAD_ACCESS_TOKEN = "ApiAuthStrategy - access token - Invalid Access Token."
_V1_GONE = "API v1 has been discontinued. Please use API v2: https://cal.com/docs/api-reference/v2/introduction"
_THROTTLED = "ThrottlerException: Too Many Requests"
_RATE_LIMIT_PER_MINUTE = 120
_MINIMUM_NOTICE = timedelta(minutes=120)

_EXCEPTIONS: dict[int, tuple[str, str]] = {
    400: ("BadRequestException", "Bad Request"),
    401: ("UnauthorizedException", "Unauthorized"),
    403: ("ForbiddenException", "Forbidden"),
    404: ("NotFoundException", "Not Found"),
    409: ("ConflictException", "Conflict"),
    422: ("UnprocessableEntityException", "Unprocessable Entity"),
    502: ("BadGatewayException", "Bad Gateway"),
    503: ("ServiceUnavailableException", "Service Unavailable"),
    504: ("GatewayTimeoutException", "Gateway Timeout"),
}

_LANGUAGES = (
    "ar", "ca", "de", "es", "eu", "he", "id", "ja", "lv", "pl", "ro", "sr", "th", "vi", "az", "cs",
    "el", "es-419", "fi", "hr", "it", "km", "nl", "pt", "ru", "sv", "tr", "zh-CN", "bg", "da", "en",
    "et", "fr", "hu", "iw", "ko", "no", "pt-BR", "sk", "ta", "uk", "zh-TW", "bn",
)
_STATUS_FILTERS = ("upcoming", "recurring", "past", "cancelled", "unconfirmed")
_BOOKING_INPUT_KEYS = (
    "start", "attendee", "bookingFieldsResponses", "eventTypeId", "eventTypeSlug", "username", "teamSlug",
    "organizationSlug", "guests", "meetingUrl", "location", "metadata", "lengthInMinutes", "routing",
    "emailVerificationCode",
)
_ATTENDEE_KEYS = ("name", "email", "timeZone", "phoneNumber", "language")
_IDENTIFY_EVENT_TYPE = "Either eventTypeId or eventTypeSlug + username or eventTypeSlug + teamSlug must be provided"
_SORT_CREATED_AT = "sortCreatedAt must be one of the following values: asc, desc"
_SORT_MESSAGES = {
    "sortStart": 'SortStart must be either "asc" or "desc".',
    "sortEnd": 'SortEnd must be either "asc" or "desc".',
    "sortCreated": 'SortCreated must be either "asc" or "desc".',
    "sortUpdatedAt": 'SortCreated must be either "asc" or "desc".',  # sic: Cal.com reuses the message
}
_DATE_FILTERS = {
    "afterStart": "fromDate",
    "beforeEnd": "toDate",
    "afterCreatedAt": "fromDate",
    "beforeCreatedAt": "toDate",
    "afterUpdatedAt": "fromDate",
    "beforeUpdatedAt": "toDate",
}
_INTEGRATIONS = {
    "cal-video": "integrations:daily",
    "google-meet": "integrations:google:meet",
    "zoom": "integrations:zoom",
}
_UID_ALPHABET = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"  # flickrBase58 (short-uuid)

_DEFAULT_BOOKING_FIELDS: tuple[dict[str, Any], ...] = (
    {"isDefault": True, "type": "name", "slug": "name", "required": True, "label": "Your name", "placeholder": "",
     "disableOnPrefill": False},
    {"isDefault": True, "type": "email", "slug": "email", "required": True, "label": "Email address",
     "placeholder": "", "disableOnPrefill": False, "hidden": False},
    {"isDefault": True, "type": "phone", "slug": "attendeePhoneNumber", "required": False,
     "label": "Phone number", "placeholder": "", "disableOnPrefill": False, "hidden": True},
    {"isDefault": True, "type": "radioInput", "slug": "location", "required": False, "hidden": False,
     "label": "Location"},
    {"isDefault": True, "type": "text", "slug": "title", "required": True, "label": "What is this meeting about?",
     "placeholder": "", "disableOnPrefill": False, "hidden": True},
    {"isDefault": True, "type": "textarea", "slug": "notes", "required": False, "label": "Additional notes",
     "placeholder": "Please share anything that will help prepare for our meeting.", "disableOnPrefill": False,
     "hidden": False},
    {"isDefault": True, "type": "multiemail", "slug": "guests", "required": False, "label": "Add guests",
     "placeholder": "", "disableOnPrefill": False, "hidden": False},
    {"isDefault": True, "type": "textarea", "slug": "rescheduleReason", "required": False,
     "label": "Reason for reschedule", "placeholder": "Let others know why you need to reschedule",
     "disableOnPrefill": False, "hidden": False},
)

Auth = Literal["required", "optional", "public"]
Handler = Callable[..., httpx.Response]


# -- records ----------------------------------------------------------------------------------------


@dataclass
class _User:
    id: int
    username: str
    email: str
    name: str
    time_zone: str
    week_start: str = "Monday"
    time_format: int = 24
    default_schedule_id: int | None = None
    bio: str | None = None
    avatar_url: str | None = None


@dataclass
class _Team:
    id: int
    name: str
    slug: str
    bio: str | None
    members: dict[int, str]  # user id -> OWNER | ADMIN | MEMBER
    logo_url: str | None = None
    time_zone: str = "Europe/London"
    week_start: str = "Monday"


@dataclass
class _EventType:
    id: int
    title: str
    slug: str
    length: int
    description: str
    owner_id: int | None = None  # a user's event type
    team_id: int | None = None  # a team's event type, with a scheduling type and hosts
    scheduling_type: str | None = None  # roundRobin | collective
    hosts: list[int] = field(default_factory=list)
    integration: str = "cal-video"
    length_options: list[int] | None = None
    requires_confirmation: bool = False
    hidden: bool = False
    custom_fields: list[dict[str, Any]] = field(default_factory=list)  # booking field outputs
    recurrence: dict[str, Any] | None = None  # Recurrence_2024_06_14: interval, occurrences, frequency


@dataclass
class _Attendee:
    name: str
    email: str
    time_zone: str
    language: str = "en"
    phone: str | None = None


@dataclass
class _Booking:
    id: int
    uid: str
    event_type_id: int
    host_id: int
    title: str
    description: str
    status: str  # accepted | pending | cancelled | rejected
    start: datetime
    end: datetime
    attendees: list[_Attendee]
    location: str
    responses: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    cancellation_reason: str | None = None
    cancelled_by: str | None = None
    recurring_uid: str | None = None  # the series' recurringBookingUid (recurringEventId)


@dataclass
class _Invalid:
    """One class-validator ``ValidationError``: a property, its failed constraints, its children's errors."""

    property: str
    constraints: dict[str, str] = field(default_factory=dict)
    children: list[_Invalid] = field(default_factory=list)
    value: Any = None


class _HttpError(Exception):
    """A Nest ``HttpException`` thrown by a handler; ``extra`` may override the body's ``code``/``details``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


# -- helpers ----------------------------------------------------------------------------------------


def _endpoint(
    method: str, template: str, *, auth: Auth, versions: frozenset[str] = frozenset()
) -> Callable[[Handler], Handler]:
    """``@route`` plus the endpoint's guard: its auth policy and the ``cal-api-version`` values it serves."""

    def mark(handler: Handler) -> Handler:
        handler.__dict__.update(_auth=auth, _versions=versions)
        return route(method, template)(handler)

    return mark


def _iso(moment: datetime) -> str:
    """A JavaScript ``Date.toISOString()``: UTC with milliseconds."""
    return Simulator.format_iso(moment, milliseconds=True)


def _new_uid() -> str:
    """A 22-character flickrBase58 id, the shape of Cal.com booking uids."""
    return "".join(secrets.choice(_UID_ALPHABET) for _ in range(22))


def _bearer_token(request: httpx.Request) -> str | None:
    """``Authorization`` without its first ``"Bearer "``, as Cal.com reads it; ``None`` when empty."""
    return request.headers.get("authorization", "").replace("Bearer ", "", 1) or None


def _api_version(request: httpx.Request) -> str:
    """What Cal.com's versioning extractor resolves: the header if it is a known version, else the fallback."""
    value = request.headers.get("cal-api-version")
    return value if value in _API_VERSIONS else _FALLBACK_VERSION


def _parse_iso(value: Any) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC datetime (naive means UTC), or ``None``."""
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}.*)?$", value):
        return None
    return Simulator.parse_iso(value)


def _parse_int(value: str) -> int | None:
    """JavaScript ``parseInt``: the leading integer of a string, or ``None`` for NaN."""
    match = re.match(r"\s*([+-]?\d+)", value)
    return int(match.group(1)) if match else None


def _to_number(value: str) -> float | None:
    """JavaScript ``Number(value)`` of a query string, or ``None`` for NaN."""
    text = value.strip()
    if not text:
        return 0.0
    return float(text) if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text) else None


def _is_int(value: Any) -> bool:
    """class-validator ``IsInt`` on a JSON value (``42.0`` is an integer in JavaScript)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()


def _js_type(value: Any) -> str:
    """JavaScript ``typeof`` of a JSON value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else "object"


def _js_number_text(value: Any) -> str:
    """How JavaScript prints a JSON number in a template string (``42.0`` prints as ``42``)."""
    return str(int(value)) if _is_int(value) else str(value)


def _is_time_zone(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is not None


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"(https?://)?[\w.-]+\.[a-z]{2,}(:\d+)?(/\S*)?", value) is not None


def _is_phone(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"\+[1-9]\d{7,14}", re.sub(r"[\s().-]", "", value)) is not None


def _occurrences(start: datetime, recurrence: dict[str, Any], count: int) -> list[datetime]:
    """The first ``count`` starts of a ``Recurrence_2024_06_14`` (every ``interval`` weeks, months or years)."""
    interval, frequency = int(recurrence["interval"]), recurrence["frequency"]
    if frequency == "weekly":
        return [start + timedelta(weeks=interval * n) for n in range(count)]
    months = interval * (12 if frequency == "yearly" else 1)
    starts = []
    for n in range(count):
        year, month = divmod(start.month - 1 + months * n, 12)
        year, month = start.year + year, month + 1
        starts.append(start.replace(year=year, month=month, day=min(start.day, monthrange(year, month)[1])))
    return starts


def _overlaps(booking: _Booking, start: datetime, end: datetime) -> bool:
    return booking.status in ("accepted", "pending") and booking.start < end and start < booking.end


# -- validation, as class-validator reports it ------------------------------------------------------


def _pipe_message(errors: list[_Invalid]) -> str:
    """``CreateBookingInputPipe.formatErrors``: ``<property> property is wrong,<constraints> <children>``."""
    return ", ".join(
        f"{error.property} property is wrong,{', '.join(error.constraints.values())} "
        f"{_pipe_message(error.children) if error.children else ''}"
        for error in errors
    )


def _validation_failed(errors: list[_Invalid], target: dict[str, Any]) -> _HttpError:
    """The global ValidationPipe's 400: ``BadRequestException({errors})``, each error with its target and value."""
    serialised = [
        {"target": target, "value": e.value, "property": e.property, "children": [], "constraints": e.constraints}
        for e in errors
    ]
    return _HttpError(400, "Bad Request Exception", details={"errors": serialised})


def _sort_order(
    params: httpx.QueryParams, name: str, message: str, query: dict[str, Any], errors: list[_Invalid]
) -> str | None:
    """An optional ``asc``/``desc`` query parameter, recording a validation error when it is neither."""
    value: str | None = params.get(name)
    if value is None:
        return None
    query[name] = value
    if value not in ("asc", "desc"):
        errors.append(_Invalid(name, {"isEnum": message}, value=value))
    return value


def _page_size_errors(name: str, raw: str, low: int, high: int | None, query: dict[str, Any]) -> list[_Invalid]:
    """``take``/``skip``: ``value && parseInt(value)``, then ``Max``, ``Min``, ``IsNumber`` in that order."""
    value = _parse_int(raw) if raw else None
    query[name] = value
    constraints = {}
    if high is not None and not (value is not None and value <= high):
        constraints["max"] = f"{name} must not be greater than {high}"
    if not (value is not None and value >= low):
        constraints["min"] = f"{name} must not be less than {low}"
    if value is None:
        constraints["isNumber"] = f"{name} must be a number conforming to the specified constraints"
    return [_Invalid(name, constraints, value=value)] if constraints else []


def _unknown_property(key: str) -> _Invalid:
    """``forbidNonWhitelisted``: a property the input class does not declare."""
    return _Invalid(key, {"whitelistValidation": f"property {key} should not exist"})


def _booking_input_errors(body: dict[str, Any]) -> list[_Invalid]:
    """class-validator on ``CreateBookingInput_2024_08_13`` (whitelist, forbidNonWhitelisted)."""
    allowed = list(_BOOKING_INPUT_KEYS)
    if "recurrenceCount" in body:
        allowed.append("recurrenceCount")
    elif body.get("instant") is True:
        allowed.append("instant")
    errors = [_unknown_property(key) for key in body if key not in allowed]
    if _parse_iso(body.get("start")) is None:
        errors.append(_Invalid("start", {"isDateString": "start must be a valid ISO 8601 date string"}))
    errors += _attendee_errors(body.get("attendee"))
    if body.get("bookingFieldsResponses") is not None and not isinstance(body["bookingFieldsResponses"], dict):
        errors.append(_Invalid("bookingFieldsResponses", {"isObject": "bookingFieldsResponses must be an object"}))
    if body.get("eventTypeId") is not None and not _is_int(body["eventTypeId"]):
        errors.append(_Invalid("eventTypeId", {"isInt": "eventTypeId must be an integer number"}))
    for key in ("eventTypeSlug", "username", "teamSlug", "organizationSlug", "emailVerificationCode"):
        if body.get(key) is not None and not isinstance(body[key], str):
            errors.append(_Invalid(key, {"isString": f"{key} must be a string"}))
    errors += _guests_errors(body.get("guests"))
    if body.get("meetingUrl") is not None and not _is_url(body["meetingUrl"]):
        errors.append(_Invalid("meetingUrl", {"isUrl": "meetingUrl must be a URL address"}))
    errors += _metadata_errors(body.get("metadata"))
    for key in ("lengthInMinutes", "recurrenceCount"):
        errors += _positive_int_errors(key, body.get(key))
    slug = body.get("eventTypeSlug")
    if not (body.get("eventTypeId") or (slug and (body.get("username") or body.get("teamSlug")))):
        identify = {"requireEventTypeIdentification": _IDENTIFY_EVENT_TYPE}
        errors.append(_Invalid("eventTypeId or eventTypeSlug + username", identify))
    return errors


def _attendee_errors(attendee: Any) -> list[_Invalid]:
    """``attendee``: ``IsDefined`` and ``ValidateNested`` of ``CreateBookingAttendee``."""
    nested = "nested property attendee must be either object or array"
    if attendee is None:
        missing = "attendee should not be null or undefined"
        return [_Invalid("attendee", {"isDefined": missing, "nestedValidation": nested})]
    if not isinstance(attendee, dict):
        return [_Invalid("attendee", {"nestedValidation": nested})]
    children = [_unknown_property(key) for key in attendee if key not in _ATTENDEE_KEYS]
    if not isinstance(attendee.get("name"), str):
        children.append(_Invalid("name", {"isString": "name must be a string"}))
    email, phone = attendee.get("email"), attendee.get("phoneNumber")
    if email and not _is_email(email):
        children.append(_Invalid("email", {"customValidation": "Invalid email format"}))
    if not _is_time_zone(attendee.get("timeZone")):
        children.append(_Invalid("timeZone", {"isTimeZone": "timeZone must be a valid IANA time-zone"}))
    if phone and not _is_phone(phone):
        message = "Invalid phone number format. Please use international format."
        children.append(_Invalid("phoneNumber", {"customValidation": message}))
    if attendee.get("language") is not None and attendee["language"] not in _LANGUAGES:
        message = f"language must be one of the following values: {', '.join(_LANGUAGES)}"
        children.append(_Invalid("language", {"isEnum": message}))
    if not (email or phone):
        message = "Attendee must have at least one contact method (email or phone number)"
        children.append(_Invalid("attendee email or phone", {"requireEmailOrPhone": message}))
    return [_Invalid("attendee", children=children)] if children else []


def _guests_errors(guests: Any) -> list[_Invalid]:
    if guests is None:
        return []
    if not isinstance(guests, list):
        return [_Invalid("guests", {"isArray": "guests must be an array"})]
    if not all(isinstance(guest, str) for guest in guests):
        return [_Invalid("guests", {"isString": "each value in guests must be a string"})]
    return []


def _metadata_errors(metadata: Any) -> list[_Invalid]:
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        return [_Invalid("metadata", {"isObject": "metadata must be an object"})]
    too_big = len(metadata) > 50 or any(
        len(key) > 40 or (isinstance(value, str) and len(value) > 500) for key, value in metadata.items()
    )
    message = (
        "Metadata must have at most 50 keys, each key up to 40 characters, and string values up to 500 characters."
    )
    return [_Invalid("metadata", {"validateMetadata": message})] if too_big else []


def _positive_int_errors(key: str, value: Any) -> list[_Invalid]:
    """``IsOptional``, ``IsInt``, ``Min(1)`` (class-validator reports ``min`` first)."""
    if value is None:
        return []
    constraints = {}
    if not (_js_type(value) == "number" and value >= 1):
        constraints["min"] = f"{key} must not be less than 1"
    if not _is_int(value):
        constraints["isInt"] = f"{key} must be an integer number"
    return [_Invalid(key, constraints)] if constraints else []


# -- bookings: filters and output pieces ---------------------------------------------------------


def _has_status(booking: _Booking, status: str, now: datetime) -> bool:
    """One ``status`` filter of Cal.com's ``addStatusesQueryFilters``."""
    live = booking.status not in ("cancelled", "rejected")
    return {
        "upcoming": booking.end >= now and live,
        "recurring": booking.end >= now and live and booking.recurring_uid is not None,
        "past": booking.end <= now and live,
        "cancelled": not live,
        "unconfirmed": booking.end >= now and booking.status == "pending",
    }[status]


def _matches_filters(booking: _Booking, query: dict[str, Any]) -> bool:
    """The attendee, uid and date-range filters of ``GET /v2/bookings`` (the query is validated)."""

    def since(name: str, moment: datetime) -> bool:
        return name not in query or moment >= _parse_iso(query[name])  # type: ignore[operator]

    def until(name: str, moment: datetime) -> bool:
        return name not in query or moment <= _parse_iso(query[name])  # type: ignore[operator]

    checks: Iterable[bool] = (
        "attendeeEmail" not in query or any(a.email == query["attendeeEmail"].strip() for a in booking.attendees),
        "attendeeName" not in query or any(a.name == query["attendeeName"].strip() for a in booking.attendees),
        "bookingUid" not in query or booking.uid == query["bookingUid"].strip(),
        since("afterStart", booking.start),
        until("beforeEnd", booking.end),
        since("afterCreatedAt", booking.created_at),
        until("beforeCreatedAt", booking.created_at),
        since("afterUpdatedAt", booking.updated_at),
        until("beforeUpdatedAt", booking.updated_at),
    )
    return all(checks)


def _pagination(skip: int, take: int, total: int) -> dict[str, Any]:
    """Cal.com's ``getPagination`` (``PaginationMetaDto``)."""
    safe_skip = max(0, min(skip, total))
    total_pages = -(-total // take) if take else 0
    return {
        "returnedItems": max(0, min(total - safe_skip, take)),
        "totalItems": total,
        "itemsPerPage": take,
        "remainingItems": max(0, min(total - (safe_skip + take), total)),
        "currentPage": 0 if total_pages == 0 else max(1, min(safe_skip // take + 1, total_pages)),
        "totalPages": total_pages,
        "hasNextPage": safe_skip + take < total,
        "hasPreviousPage": safe_skip > 0,
    }


def _conference(integration: str, uid: str) -> tuple[str, dict[str, str]]:
    """The video link a conferencing app issues for a booking, and the booking's ``responses.location``."""
    code = "".join(secrets.choice("abcdefghijkmnopqrstuvwxyz") for _ in range(10))
    links = {
        "cal-video": f"{APP}/video/{uid}",
        "google-meet": f"https://meet.google.com/{code[:3]}-{code[3:7]}-{code[7:]}",
        "zoom": f"https://us06web.zoom.us/j/8{secrets.randbelow(10**10):010d}",
    }
    return links[integration], {"value": _INTEGRATIONS[integration], "optionValue": ""}


def _attendee_output(attendee: _Attendee) -> dict[str, Any]:
    return {
        "name": attendee.name,
        "email": attendee.email,
        "displayEmail": attendee.email,
        "timeZone": attendee.time_zone,
        "language": attendee.language,
        "absent": False,
        **({"phoneNumber": attendee.phone} if attendee.phone else {}),
    }


# -- request handling pieces ----------------------------------------------------------


def _event_type_fields(event_type: _EventType) -> dict[str, Any]:
    """The fields user and team event types share (``OutputEventTypesService.getResponseEventType``)."""
    options = event_type.length_options
    confirmation = {"type": "always", "blockUnconfirmedBookingsInBooker": False}
    return {
        "id": event_type.id,
        "lengthInMinutes": event_type.length,
        **({"lengthInMinutesOptions": options} if options else {}),
        "title": event_type.title,
        "slug": event_type.slug,
        "description": event_type.description,
        "locations": [{"type": "integration", "integration": event_type.integration}],
        "bookingFields": [*_DEFAULT_BOOKING_FIELDS, *event_type.custom_fields],
        "recurrence": event_type.recurrence,
        "disableGuests": False,
        "slotInterval": None,
        "minimumBookingNotice": int(_MINIMUM_NOTICE.total_seconds() // 60),
        "beforeEventBuffer": 0,
        "afterEventBuffer": 0,
        "metadata": {"multipleDuration": options} if options else {},
        "price": 0,
        "currency": "usd",
        "lockTimeZoneToggleOnBookingPage": False,
        "forwardParamsSuccessRedirect": True,
        "successRedirectUrl": None,
        "isInstantEvent": False,
        "scheduleId": None,
        "onlyShowFirstAvailableSlot": False,
        "offsetStart": 0,
        "bookingWindow": {"disabled": True},
        "confirmationPolicy": confirmation if event_type.requires_confirmation else {"disabled": True},
        "requiresBookerEmailVerification": False,
        "hideCalendarNotes": False,
        "seats": {"disabled": True},
        "useDestinationCalendarEmail": False,
        "hideCalendarEventDetails": False,
        "hideOrganizerEmail": False,
        "hidden": event_type.hidden,
        "bookingRequiresAuthentication": False,
        "bookerActiveBookingsLimit": {"disabled": True},
        "disableCancelling": {"disabled": False},
        "disableRescheduling": {"disabled": False},
        "interfaceLanguage": None,
        "allowReschedulingPastBookings": False,
        "allowReschedulingCancelledBookings": False,
        "showOptimizedSlots": False,
    }


def _bookings_query(params: httpx.QueryParams) -> dict[str, Any]:
    """``GetBookingsInput_2024_08_13`` through the global ValidationPipe: unknown parameters are stripped."""
    query: dict[str, Any] = {}
    errors: list[_Invalid] = []
    if "status" in params:
        query["status"] = [s.strip() for value in params.get_list("status") for s in value.split(",")]
        if any(status not in _STATUS_FILTERS for status in query["status"]):
            message = "Invalid status. Allowed are upcoming, recurring, past, cancelled, unconfirmed"
            errors.append(_Invalid("status", {"isEnum": message}, value=query["status"]))
    query |= {name: params[name] for name in ("attendeeEmail", "attendeeName", "bookingUid") if name in params}
    if "attendeeEmail" in query:  # managed users' "+" arrives as a space when not URL-encoded
        query["attendeeEmail"] = re.sub(r"\s+", "+", query["attendeeEmail"].strip())
    for name in ("eventTypeIds", "teamsIds"):
        if name in params:
            query[name] = [_parse_int(part) for part in params[name].split(",")]
            if None in query[name]:
                message = f"each value in {name} must be a number conforming to the specified constraints"
                errors.append(_Invalid(name, {"isNumber": message}, value=query[name]))
    for name in ("eventTypeId", "teamId"):
        if name in params:
            query[name] = _to_number(params[name])
            if query[name] is None or not query[name].is_integer():
                errors.append(_Invalid(name, {"isInt": f"{name} must be an integer number"}, value=query[name]))
    for name, label in _DATE_FILTERS.items():
        if name in params:
            query[name] = params[name]
            if _parse_iso(params[name]) is None:
                message = f"{label} must be a valid ISO 8601 date."
                errors.append(_Invalid(name, {"isIso8601": message}, value=params[name]))
    for name, message in _SORT_MESSAGES.items():
        _sort_order(params, name, message, query, errors)
    for name, low, high in (("take", 1, 250), ("skip", 0, None)):
        if name in params:
            errors += _page_size_errors(name, params[name], low, high, query)
    if errors:
        raise _validation_failed(errors, query)
    return query


def _check_booking_fields(body: dict[str, Any], event_type: _EventType) -> None:
    """The event type's required custom booking fields must be answered, with a string (all are text here)."""
    responses = body.get("bookingFieldsResponses") or {}
    for booking_field in event_type.custom_fields:
        slug, value = booking_field["slug"], responses.get(booking_field["slug"])
        if booking_field["required"] and value is None:
            raise _HttpError(
                400,
                f"Missing required booking field response: {slug} - it is required by the event type booking "
                "fields, but missing in the bookingFieldsResponses. You can fetch the event type with ID "
                f"{event_type.id} to see the required fields.",
            )
        if value is not None and _js_type(value) != "string":
            raise _HttpError(
                400,
                f"Invalid type for booking field '{slug}'. Expected type string (compatible with field type "
                f"'{booking_field['type']}'), but received {_js_type(value)}.",
            )


def _booking_length(body: dict[str, Any], event_type: _EventType) -> int:
    """``lengthInMinutes`` if the event type allows several lengths and this is one, else the default length."""
    requested = body.get("lengthInMinutes")
    if not requested:
        return event_type.length
    if not event_type.length_options:
        raise _HttpError(
            400,
            "Can't specify 'lengthInMinutes' because event type does not have multiple possible lengths. "
            "Please, remove the 'lengthInMinutes' field from the request.",
        )
    if requested not in event_type.length_options:
        possible = ", ".join(str(length) for length in event_type.length_options)
        raise _HttpError(
            400,
            "Provided 'lengthInMinutes' is not one of the possible lengths for the event type. "
            f"The possible lengths are: {possible}",
        )
    return int(requested)


def _booking_location(body: dict[str, Any], event_type: _EventType, uid: str) -> tuple[str, dict[str, str]]:
    """The booking's location and ``responses.location``: the event type's video app, or a given string."""
    given = body.get("location") or body.get("meetingUrl")
    if given is None:
        return _conference(event_type.integration, uid)
    if isinstance(given, str):  # accepted for backwards compatibility, like upstream
        kind = "link" if _is_url(given) or given.startswith("www.") else "phone" if _is_phone(given) else None
        return given, {"value": kind or "somewhereElse", "optionValue": given}
    location_type = given.get("type") if isinstance(given, dict) else None
    if location_type != "integration":
        raise _HttpError(
            400,
            f"Booking location with type {location_type or 'undefined'} not valid for event type with "
            f"id={event_type.id}. The event type has following location types: integration, and only these types "
            "are allowed for booking location.",
        )
    if given.get("integration") != event_type.integration:
        raise _HttpError(
            400,
            f"Booking location with integration {given.get('integration')} not valid for event type with "
            f"id={event_type.id}. The event type has following integrations: {event_type.integration}, and only "
            "these integrations are allowed for booking location.",
        )
    return _conference(event_type.integration, uid)


# -- the simulator ----------------------------------------------------------------------------------


class CalComSimulator(Simulator):
    """Cal.com API v2: me, teams, event types and bookings, with demo users, teams and bookings."""

    service = "cal-com"
    demo_accounts = DEMO_ACCOUNTS
    credential_fields = ("api_key",)

    def __init__(self, credentials: Collection[str] | None = None, clock: Clock | None = None) -> None:
        self._local = threading.local()  # the URL being answered, for error bodies
        super().__init__(credentials, clock)

    # -- the Simulator contract -------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self._local.url = request.url.raw_path.decode("ascii", "replace")
        try:
            return super().__call__(request)
        except _HttpError as exc:
            return self.error(exc.status, exc.message, **exc.extra)

    def authenticate(self, request: httpx.Request) -> httpx.Response | None:
        """Nest's pipeline up to the guard: route and ``cal-api-version`` resolution, then the route's auth policy.

        Routing comes first upstream, so API v1 (410), an unknown route and a version no
        controller serves (both 404) are answered here, before any credential check.
        """
        path = request.url.path
        if path == "/v1" or path.startswith("/v1/"):
            return self.json(410, {"message": _V1_GONE})
        handler = next((h for m, pattern, h in self._routes if m == request.method and pattern.match(path)), None)
        versions: frozenset[str] = getattr(handler, "_versions", frozenset())
        if handler is None or (versions and _api_version(request) not in versions):
            return self.error(404, f"Cannot {request.method} {self._local.url}")
        auth: Auth = handler._auth
        token = _bearer_token(request)
        if auth == "public" or (token is None and auth == "optional") or token in self.credentials:
            return None
        if token is None:
            return self.error(401, _NO_AUTH)
        return self.error(401, _BAD_API_KEY if token.startswith("cal_") else _BAD_ACCESS_TOKEN)

    def error(self, status: int, message: str, **extra: Any) -> httpx.Response:
        """The v2 ``HttpExceptionFilter`` body; ``details=None`` leaves ``details`` out, as the tRPC filter does."""
        if status == 500:
            return self.json(500, {"statusCode": 500, "message": "Internal server error"})
        headers = {"X-Request-Id": str(uuid.uuid4())}
        code, reason = _EXCEPTIONS.get(status, ("HttpException", "Error"))
        details: Any = {"message": message, "error": reason, "statusCode": status}
        if status == 429:
            code, message, details = "ThrottlerException", _THROTTLED, _THROTTLED
            headers |= {
                "X-RateLimit-Limit-Default": str(_RATE_LIMIT_PER_MINUTE),
                "X-RateLimit-Remaining-Default": "0",
                "X-RateLimit-Reset-Default": "60",
            }
        details = extra.get("details", details)
        problem = {"code": extra.get("code", code), "message": message}
        if details is not None:
            problem["details"] = details
        url = getattr(self._local, "url", "/")
        return self.json(status, {"status": "error", "timestamp": _iso(self.now()), "path": url, "error": problem}, headers)

    def seed(self) -> None:
        """Users, teams, event types and bookings, from ``simulator_data.yaml``."""
        data = self.seed_data()
        owners: dict[str, int] = {}
        self._users: dict[int, _User] = {}
        for fields in data["users"]:
            account = fields.pop("account")
            owners[DEMO_ACCOUNTS[account]["api_key"]] = fields["id"]
            self._users[fields["id"]] = _User(**fields)
        default_user = owners[DEMO_ACCOUNTS["default"]["api_key"]]
        self._key_owner = {key: owners.get(key, default_user) for key in self.credentials}
        self._teams = {fields["id"]: _Team(**fields) for fields in data["teams"]}
        self._event_types = {fields["id"]: _EventType(**fields) for fields in data["event_types"]}
        self._bookings = {b["id"]: self._seed_booking(b) for b in data["bookings"]}
        self._next_booking_id = max(self._bookings) + 1

    def _seed_booking(self, seeded: dict[str, Any]) -> _Booking:
        """A booking made on the booking page: its responses carry name, email, location, notes, guests."""
        uid, status, notes = seeded["uid"], seeded["status"], seeded.get("notes", "")
        attendee = _Attendee(**seeded["attendee"])
        guests = [_Attendee(**guest) for guest in seeded.get("guests", [])]
        event_type = self._event_types[seeded["event_type_id"]]
        host = self._users[event_type.owner_id or event_type.hosts[0]]
        start = self.at(seeded["start"])
        created = start - timedelta(days=12, hours=5)
        location, location_response = _conference(event_type.integration, uid)
        responses = {
            "name": attendee.name, "email": attendee.email, "location": location_response,
            **({"notes": notes} if notes else {}), "guests": [g.email for g in guests], **seeded.get("answers", {}),
        }
        cancelled = seeded.get("cancelled") or {}
        return _Booking(
            seeded["id"], uid, event_type.id, host.id, f"{event_type.title} between {host.name} and {attendee.name}",
            notes, status, start, start + timedelta(minutes=event_type.length), [attendee, *guests], location,
            responses, created, created if status in ("accepted", "pending") else created + timedelta(days=3),
            cancellation_reason=cancelled.get("reason"), cancelled_by=cancelled.get("by"),
        )

    # -- routes -----------------------------------------------------------------------------------

    @_endpoint("GET", "/v2/me", auth="required")
    def get_me(self, request: httpx.Request) -> httpx.Response:
        user = self._caller(request)
        return self._success(
            {
                "id": user.id,
                "username": user.username,
                "email": user.email,
                "name": user.name,
                "avatarUrl": user.avatar_url,
                "bio": user.bio,
                "timeFormat": user.time_format,
                "defaultScheduleId": user.default_schedule_id,
                "weekStart": user.week_start,
                "timeZone": user.time_zone,
                "organizationId": None,
            }
        )

    @_endpoint("GET", "/v2/teams", auth="required")
    def list_teams(self, request: httpx.Request) -> httpx.Response:
        user = self._caller(request)
        teams = [self._team_output(team) for _, team in sorted(self._teams.items()) if user.id in team.members]
        return self._success(teams)

    @_endpoint("GET", "/v2/teams/{teamId}/event-types", auth="public")
    def list_team_event_types(self, request: httpx.Request, teamId: str) -> httpx.Response:
        if not re.fullmatch(r"-?\d+", teamId):
            raise _HttpError(400, "Validation failed (numeric string is expected)")  # ParseIntPipe
        params = request.url.params
        query: dict[str, Any] = {}
        errors: list[_Invalid] = []
        order = _sort_order(params, "sortCreatedAt", _SORT_CREATED_AT, query, errors)
        if "hostsLimit" in params:
            query["hostsLimit"] = _to_number(params["hostsLimit"])
            if query["hostsLimit"] is None:
                message = "hostsLimit must be a number conforming to the specified constraints"
                errors.append(_Invalid("hostsLimit", {"isNumber": message}))
        if errors:
            raise _validation_failed(errors, query)
        listed = [et for et in self._sorted_event_types(order) if et.team_id == int(teamId)]
        if "eventSlug" in params:
            listed = [et for et in listed if et.slug == params["eventSlug"]][:1]
        hosts_limit = int(query["hostsLimit"]) if "hostsLimit" in query else None
        return self._success([self._team_event_type_output(et, hosts_limit) for et in listed])

    @_endpoint("GET", "/v2/event-types", auth="optional", versions=EVENT_TYPES_VERSIONS)
    def list_event_types(self, request: httpx.Request) -> httpx.Response:
        """The caller's event types, or ``username``'s (public ones only unless they are the caller's)."""
        params = request.url.params
        names = ("username", "eventSlug", "usernames", "orgSlug", "orgId")
        query = {name: params[name] for name in names if name in params}
        errors: list[_Invalid] = []
        order = _sort_order(params, "sortCreatedAt", _SORT_CREATED_AT, query, errors)
        if errors:
            raise _validation_failed(errors, query)
        caller = self._optional_caller(request)
        owner = caller
        if "username" in query:  # none of the demo users belongs to an organization
            in_org = "orgSlug" in query or "orgId" in query
            owner = None if in_org else next((u for u in self._users.values() if u.username == query["username"]), None)
        elif "usernames" in query:
            owner = None  # dynamic group event types are not simulated
        listed = [et for et in self._sorted_event_types(order) if owner is not None and et.owner_id == owner.id]
        if caller is None or owner is None or owner.id != caller.id:  # hidden ones only for their owner
            listed = [et for et in listed if not et.hidden]
        if "username" in query and "eventSlug" in query:
            listed = [et for et in listed if et.slug == query["eventSlug"]][:1]
        return self._success([self._event_type_output(et, drop_hidden_fields=True) for et in listed])

    @_endpoint("GET", "/v2/event-types/{eventTypeId}", auth="required", versions=EVENT_TYPES_VERSIONS)
    def get_event_type(self, request: httpx.Request, eventTypeId: str) -> httpx.Response:
        number = _to_number(eventTypeId)
        event_type = self._event_types.get(int(number)) if number is not None and number.is_integer() else None
        if event_type is None or not self._can_read(self._caller(request), event_type):
            raise _HttpError(404, f"Event type with id {eventTypeId} not found")
        if event_type.team_id is not None:
            return self._success(self._team_event_type_output(event_type))
        return self._success(self._event_type_output(event_type))

    @_endpoint("GET", "/v2/bookings", auth="required", versions=BOOKINGS_VERSIONS)
    def list_bookings(self, request: httpx.Request) -> httpx.Response:
        query = _bookings_query(request.url.params)
        bookings = self._sorted_bookings(self._matching_bookings(self._caller(request), query), query)
        skip, take = query.get("skip", 0), query.get("take", 100)
        page = [self._booking_output(b) for b in bookings[skip : skip + take]]
        return self._success(page, pagination=_pagination(skip, take, len(bookings)))

    @_endpoint("POST", "/v2/bookings", auth="optional", versions=BOOKINGS_VERSIONS)
    def create_booking(self, request: httpx.Request) -> httpx.Response:
        body = self.body(request)
        if body is None:
            body = {}  # express.json() makes an empty body an empty object
        if not isinstance(body, dict):
            raise _HttpError(400, "Body should be an object")
        errors = _booking_input_errors(body)
        if errors:
            raise _HttpError(400, _pipe_message(errors))
        event_type = self._booked_event_type(body)
        if body.get("instant") is True and event_type.team_id is None:
            message = "Instant bookings are only supported for team event types, not individual user event types."
            raise _HttpError(400, message)
        _check_booking_fields(body, event_type)
        start = _parse_iso(body["start"])
        assert start is not None  # validated above
        length = timedelta(minutes=_booking_length(body, event_type))
        if event_type.recurrence is not None:
            return self._create_recurring_bookings(body, event_type, start, length)
        uid = _new_uid()
        location = _booking_location(body, event_type, uid)
        organizer = self._organizer(event_type, start, start + length)
        booking = self._new_booking(body, event_type, organizer, uid, start, start + length, location)
        self._bookings[booking.id] = booking
        return self._success(self._booking_output(booking), status=201)

    def _create_recurring_bookings(
        self, body: dict[str, Any], event_type: _EventType, start: datetime, length: timedelta
    ) -> httpx.Response:
        """``handleNewRecurringBooking``: one booking per occurrence, all checked before any is stored."""
        recurrence = event_type.recurrence or {}
        count = int(body.get("recurrenceCount") or recurrence["occurrences"])
        if count > recurrence["occurrences"]:
            raise _HttpError(
                400, f"recurrenceCount {count} is more than the event type's {recurrence['occurrences']} occurrences"
            )
        series = _new_uid()
        bookings = []
        for moment in _occurrences(start, recurrence, count):
            uid = _new_uid()
            organizer = self._organizer(event_type, moment, moment + length)
            booking = self._new_booking(
                body, event_type, organizer, uid, moment, moment + length, _booking_location(body, event_type, uid)
            )
            booking.recurring_uid = series
            bookings.append(booking)
        self._bookings |= {booking.id: booking for booking in bookings}
        return self._success([self._booking_output(b) for b in bookings], status=201)

    @_endpoint("GET", "/v2/bookings/{bookingUid}", auth="optional", versions=BOOKINGS_VERSIONS)
    def get_booking(self, request: httpx.Request, bookingUid: str) -> httpx.Response:
        booking = next((b for b in self._bookings.values() if b.uid == bookingUid), None)
        series = sorted((b for b in self._bookings.values() if b.recurring_uid == bookingUid), key=lambda b: b.start)
        if booking is None and series:
            return self._success([self._booking_output(b) for b in series])
        if booking is None:
            raise _HttpError(404, f"Booking with uid={bookingUid} was not found in the database")
        return self._success(self._booking_output(booking))

    # -- reading state ----------------------------------------------------------------------------

    def _optional_caller(self, request: httpx.Request) -> _User | None:
        """The user of the request's API key, if it sent one (authenticate() has vetted the key)."""
        token = _bearer_token(request)
        return None if token is None else self._users[self._key_owner[token]]

    def _caller(self, request: httpx.Request) -> _User:
        """The user of a route whose guard requires a key."""
        user = self._optional_caller(request)
        if user is None:
            raise _HttpError(401, _NO_AUTH)
        return user

    def _can_read(self, user: _User, event_type: _EventType) -> bool:
        """Owner, host, or admin/owner of the owning team (Cal.com's event type access rule)."""
        if event_type.owner_id == user.id or user.id in event_type.hosts:
            return True
        team = self._teams.get(event_type.team_id or -1)
        return team is not None and team.members.get(user.id) in ("OWNER", "ADMIN")

    def _sorted_event_types(self, order: str | None) -> list[_EventType]:
        """By id (creation order); ``desc`` reverses it (``sortCreatedAt``)."""
        return sorted(self._event_types.values(), key=lambda et: et.id, reverse=order == "desc")

    def _matching_bookings(self, user: _User, query: dict[str, Any]) -> list[_Booking]:
        """Cal.com's ``getBookings``: the bookings the user may see, filtered by the validated query."""
        now = self.now()
        found = [b for b in self._bookings.values() if self._visible_to(user, b)]
        if query.get("status"):
            found = [b for b in found if any(_has_status(b, status, now) for status in query["status"])]
        team_ids = query.get("teamsIds") or ([int(query["teamId"])] if query.get("teamId") else [])
        team_event_types = {et.id for et in self._event_types.values() if et.team_id in team_ids}
        if team_event_types:  # Cal.com ignores a team filter that matches no event type
            found = [b for b in found if b.event_type_id in team_event_types]
        event_type_ids = query.get("eventTypeIds") or ([int(query["eventTypeId"])] if query.get("eventTypeId") else [])
        if event_type_ids:
            existing = {i for i in event_type_ids if i in self._event_types}
            if not existing:
                raise _HttpError(400, "The requested event-types do not exist.", code="TRPCError", details=None)
            found = [b for b in found if b.event_type_id in existing]
        return [b for b in found if _matches_filters(b, query)]

    def _visible_to(self, user: _User, booking: _Booking) -> bool:
        """Organizer, attendee, or admin/owner of a team the organizer or the event type belongs to."""
        if booking.host_id == user.id or any(a.email == user.email for a in booking.attendees):
            return True
        team_id = self._event_types[booking.event_type_id].team_id
        return any(
            team.members.get(user.id) in ("OWNER", "ADMIN") and (booking.host_id in team.members or team.id == team_id)
            for team in self._teams.values()
        )

    @staticmethod
    def _sorted_bookings(bookings: list[_Booking], query: dict[str, Any]) -> list[_Booking]:
        """Cal.com's ``getOrderBy``: an explicit sort, else the single status's order, else start ascending."""
        keys: dict[str, Callable[[_Booking], datetime]] = {
            "sortStart": lambda b: b.start,
            "sortEnd": lambda b: b.end,
            "sortCreated": lambda b: b.created_at,
            "sortUpdatedAt": lambda b: b.updated_at,
        }
        chosen = next((name for name in keys if query.get(name)), None)
        if chosen is not None:
            key, descending = keys[chosen], query[chosen] == "desc"
        else:
            statuses = query.get("status") or []
            key, descending = keys["sortStart"], len(statuses) == 1 and statuses[0] in ("past", "cancelled")
        return sorted(sorted(bookings, key=lambda b: b.id), key=key, reverse=descending)

    # -- creating a booking -----------------------------------------------------------------------

    def _booked_event_type(self, body: dict[str, Any]) -> _EventType:
        """The event type named by ``eventTypeId``, ``username``+``eventTypeSlug`` or ``teamSlug``+``eventTypeSlug``."""
        slug = body.get("eventTypeSlug")
        if body.get("eventTypeId"):
            found = self._event_types.get(int(body["eventTypeId"]))
            if found is None:
                raise _HttpError(404, f"Event type with id {_js_number_text(body['eventTypeId'])} not found.")
            return found
        if body.get("username"):
            owner = next((u for u in self._users.values() if u.username == body["username"]), None)
            if owner is None:
                raise _HttpError(404, f"User with username {body['username']} not found")
            found = next((et for et in self._event_types.values() if et.owner_id == owner.id and et.slug == slug), None)
            whose = f"user {body['username']}"
        else:
            team = next((t for t in self._teams.values() if t.slug == body["teamSlug"]), None)
            if team is None:
                raise _HttpError(404, f"Team with slug {body['teamSlug']} not found")
            found = next((et for et in self._event_types.values() if et.team_id == team.id and et.slug == slug), None)
            whose = f"team {body['teamSlug']}"
        if found is None:
            raise _HttpError(404, f"Event type with slug {slug} belonging to {whose} not found.")
        return found

    def _organizer(self, event_type: _EventType, start: datetime, end: datetime) -> _User:
        """The owner, the first free round-robin host, or the first host of a collective event; else 400."""
        now = self.now()
        if start < now:
            raise _HttpError(400, "Attempting to book a meeting in the past.")
        if start < now + _MINIMUM_NOTICE:
            raise _HttpError(
                400,
                "The event type can't be booked at the \"start\" time provided. This could be because it's too soon "
                "(violating the minimum booking notice) or too far in the future (outside the event's scheduling "
                "window). Try fetching available slots first using the GET /v2/slots endpoint and then make a "
                'booking with "start" time equal to one of the available slots: '
                "https://cal.com/docs/api-reference/v2/slots",
            )
        hosts = [event_type.owner_id] if event_type.owner_id is not None else event_type.hosts
        busy = {b.host_id for b in self._bookings.values() if _overlaps(b, start, end)}
        free = [host for host in hosts if host not in busy]
        if event_type.team_id is None and not free:
            raise _HttpError(400, "User either already has booking at this time or is not available")
        if not free or (event_type.scheduling_type == "collective" and len(free) < len(hosts)):
            raise _HttpError(400, "One of the hosts either already has booking at this time or is not available")
        return self._users[free[0]]

    def _new_booking(
        self, body: dict[str, Any], event_type: _EventType, host: _User, uid: str, start: datetime, end: datetime,
        location: tuple[str, dict[str, str]],
    ) -> _Booking:
        """The booking handleNewBooking stores: responses merge the custom answers, attendee and location."""
        given = body["attendee"]
        attendee = _Attendee(
            given["name"], given.get("email") or "", given["timeZone"], given.get("language") or "en",
            given.get("phoneNumber"),
        )
        guests = body.get("guests") or []
        responses = {
            **(body.get("bookingFieldsResponses") or {}),
            "name": attendee.name,
            "email": attendee.email,
            **({"attendeePhoneNumber": attendee.phone} if attendee.phone else {}),
            **({"guests": guests} if "guests" in body else {}),
            "location": location[1],
        }
        now = self.now()
        booking = _Booking(
            self._next_booking_id, uid, event_type.id, host.id,
            f"{event_type.title} between {host.name} and {attendee.name}", str(responses.get("notes") or ""),
            "pending" if event_type.requires_confirmation else "accepted", start, end,
            [attendee, *(_Attendee("", guest, attendee.time_zone) for guest in guests)], location[0], responses,
            now, now, metadata=dict(body.get("metadata") or {}),
        )
        self._next_booking_id += 1
        return booking

    # -- responses --------------------------------------------------------------------------------

    def _success(self, data: Any, *, status: int = 200, **extra: Any) -> httpx.Response:
        return self.json(status, {"status": "success", "data": data, **extra})

    @staticmethod
    def _team_output(team: _Team) -> dict[str, Any]:
        """``TeamOutputDto``: Cal.com keeps the database's nulls (``metadata`` is left out when null)."""
        return {
            "id": team.id,
            "parentId": None,
            "name": team.name,
            "slug": team.slug,
            "logoUrl": team.logo_url,
            "calVideoLogo": None,
            "appLogo": None,
            "appIconLogo": None,
            "bio": team.bio,
            "hideBranding": False,
            "isOrganization": False,
            "isPrivate": False,
            "hideBookATeamMember": False,
            "theme": None,
            "brandColor": "#292929",
            "darkBrandColor": "#fafafa",
            "bannerUrl": None,
            "timeFormat": None,
            "timeZone": team.time_zone,
            "weekStart": team.week_start,
        }

    def _event_type_output(self, event_type: _EventType, *, drop_hidden_fields: bool = False) -> dict[str, Any]:
        """``EventTypeOutput_2024_06_14``; lists drop booking fields marked ``hidden``."""
        owner = self._users[event_type.owner_id or 0]
        output = {"id": event_type.id, "ownerId": owner.id, **_event_type_fields(event_type)}
        if drop_hidden_fields:
            output["bookingFields"] = [f for f in output["bookingFields"] if not f.get("hidden")]
        user = {
            "id": owner.id,
            "name": owner.name,
            "username": owner.username,
            "avatarUrl": owner.avatar_url,
            "weekStart": owner.week_start,
            "brandColor": "#292929",
            "darkBrandColor": "#fafafa",
            "metadata": {},
        }
        return output | {"users": [user], "bookingUrl": f"{WEBSITE}/{owner.username}/{event_type.slug}"}

    def _team_event_type_output(self, event_type: _EventType, hosts_limit: int | None = None) -> dict[str, Any]:
        """``TeamEventTypeOutput_2024_06_14``; round-robin hosts carry ``mandatory`` and ``priority``."""
        team = self._teams[event_type.team_id or 0]
        round_robin = {"mandatory": False, "priority": "medium"} if event_type.scheduling_type == "roundRobin" else {}
        hosts = [
            {"userId": u.id, "name": u.name, "username": u.username, **round_robin, "avatarUrl": u.avatar_url}
            for u in (self._users[user_id] for user_id in event_type.hosts[:hosts_limit])
        ]
        return {
            **_event_type_fields(event_type),
            "hosts": hosts,
            "teamId": team.id,
            "ownerId": None,
            "parentEventTypeId": None,
            "schedulingType": event_type.scheduling_type,
            "assignAllTeamMembers": False,
            "team": {
                "id": team.id,
                "name": team.name,
                "slug": team.slug,
                "bannerUrl": None,
                "logoUrl": team.logo_url,
                "weekStart": team.week_start,
                "brandColor": "#292929",
                "darkBrandColor": "#fafafa",
                "theme": None,
            },
            "rescheduleWithSameRoundRobinHost": False,
        }

    def _booking_output(self, booking: _Booking) -> dict[str, Any]:
        """``BookingOutput_2024_08_13``."""
        host = self._users[booking.host_id]
        event_type = self._event_types[booking.event_type_id]
        cancelled = {}
        if booking.cancellation_reason:
            cancelled = {"cancellationReason": booking.cancellation_reason, "cancelledByEmail": booking.cancelled_by}
        return {
            "id": booking.id,
            "uid": booking.uid,
            "title": booking.title,
            "description": booking.description,
            "hosts": [
                {
                    "id": host.id,
                    "name": host.name,
                    "email": host.email,
                    "displayEmail": host.email,
                    "username": host.username,
                    "timeZone": host.time_zone,
                }
            ],
            "status": booking.status,
            **cancelled,
            "start": _iso(booking.start),
            "end": _iso(booking.end),
            "duration": int((booking.end - booking.start).total_seconds() // 60),
            "eventTypeId": event_type.id,
            "eventType": {"id": event_type.id, "slug": event_type.slug},
            "meetingUrl": booking.location,
            "location": booking.location,
            "absentHost": False,
            "createdAt": _iso(booking.created_at),
            "updatedAt": _iso(booking.updated_at),
            "metadata": booking.metadata,
            "icsUid": f"{booking.uid}@Cal.com",
            "attendees": [_attendee_output(a) for a in booking.attendees],
            **({"guests": booking.responses["guests"]} if "guests" in booking.responses else {}),
            "bookingFieldsResponses": booking.responses,
            **({"recurringBookingUid": booking.recurring_uid} if booking.recurring_uid else {}),
        }
