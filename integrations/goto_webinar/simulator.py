"""Loopback simulator of the GoTo Webinar REST API v2 (``https://api.getgo.com/G2W/rest/v2``).

Simulated (paths from the host root, https://api.getgo.com):

* ``GET /admin/rest/v1/me``: the Admin API identity of the token's user; ``key``
  is the organizerKey every G2W path needs (not part of the G2W spec).
* ``GET|POST /G2W/rest/v2/organizers/{organizerKey}/webinars``: ``getWebinars``
  (required ``fromTime``/``toTime``, ``page`` 0-based, ``size`` default 20, max
  200; ``ReportingWebinarsResponse``) and ``createWebinar`` (201 ``CreatedWebinar``).
* ``GET|DELETE .../webinars/{webinarKey}``: ``getWebinar`` (``WebinarByKey``) and
  ``cancelWebinar`` (204; ``deleteAll``, ``sendCancellationEmails``).
* ``GET .../insessionWebinars`` (plain array of ``BrokerWebinar``).
* ``GET .../webinars/{webinarKey}/sessions`` (paged ``sessionInfoResources``, past
  sessions only), ``.../sessions/{sessionKey}`` and ``.../sessions/{sessionKey}/attendees``
  (both a plain array of ``Attendee``), ``.../sessions/{sessionKey}/performance``
  (``SessionPerformance``).
* ``GET .../webinars/{webinarKey}/panelists`` (plain array of ``Panelist``, unpaged).

Auth is ``Authorization: Bearer <access token>``. Like GoTo's API gateway, a
missing or unknown token answers **403** (not 401) with
``{"int_err_code": "InvalidToken", "msg": "Invalid token passed"}`` and
``x-amzn-errortype: UnauthorizedException``. An organizerKey in the path other
than the token's own answers 403. Service errors are
``{"errorCode": ..., "description": ..., "incident": <int64>}``.

Seeded data, in ``simulator_data.yaml`` beside this module (times are computed from the
simulator's clock at construction, on round hours UTC; one account ``5126718393029384756``
holds three organizers):

* ``default`` organizer ``200000000000123456`` (Avery Morgan):
  ``1234567890`` ended 14 days ago, past session ``9876543210`` (6 attendees, one
  of whom rejoined) and panelists ``910284756``/``910284757``;
  ``5849302716458302917`` weekly sequence (sessions ``41203958`` and
  ``41219876`` in the past, one time still ahead); ``7302948571620394857`` in
  session now; ``6192837465019283746`` and ``8019283746501928374`` upcoming;
  ``4928374650192837465`` cancelled (404, never listed); ``3847561920384756192``
  ended 60 days ago (session ``40877123``).
* ``marketing`` organizer ``200000000000234567`` (Jordan Lee): upcoming ``2938475610293847561``.
* ``sales`` organizer ``200000000000345678`` (Sofia Alvarez): upcoming ``1938475620394857610``.

Deliberate choices and spec quirks:

* List items (``Webinar``) carry ``webinarID`` but no ``status``: the spec marks
  ``webinarId`` (a typo of its own ``webinarID`` property) and an undefined
  ``status`` as required. A webinar's state is derived: in session when listed
  by ``insessionWebinars`` (``inSession`` in ``getWebinar``), ended when every
  time has passed, otherwise upcoming; a cancelled webinar is gone (404, unlisted).
* Key types follow the spec: ``webinarKey``/``organizerKey`` are strings in
  ``Webinar`` and ``ReportingSession`` but int64 numbers in ``WebinarByKey``,
  ``BrokerWebinar`` and ``Attendee``; ``/me`` returns ``key``/``accountKey`` as numbers.
* ``getWebinars`` lists webinars with a time starting inside the range, earliest first.
* A ``sequence`` webinar's ``getWebinar`` shows only its future times, as documented.
  Creating one takes ``recurrenceStart``/``recurrencePattern``/``recurrenceEnd``
  and no ``times``, as the operation says, although the schema requires ``times``.
  A ``series`` creates one webinar per time sharing a ``recurrenceKey``;
  cancelling one with ``deleteAll`` (default true) cancels them all.
* ``insessionWebinars`` works without ``fromTime``/``toTime``, as documented,
  although the spec's ``optionalToTime`` parameter is marked required.
* Creating with a start in the past, an end not after its start, more or fewer
  times than the type allows, an unknown time zone or locale answers 400.
* ``errorCode`` values and ``description`` wording are not published; they are
  plausible, not verbatim. ``/me`` fields beyond key, accountKey, email and
  names are not documented either.
"""

from __future__ import annotations

import calendar
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from kosmo_runtime.integration import Simulator, route

__all__ = ["DEMO_ACCOUNTS", "GoToWebinarSimulator"]

_DATA = Simulator.read_data(__package__)  # simulator_data.yaml beside this module

DEMO_ACCOUNTS: dict[str, dict[str, str]] = _DATA["demo_accounts"]
ACCOUNT_KEY: str = _DATA["account_key"]
_G2W = "/G2W/rest/v2/organizers/{organizerKey}"
_LOCALES = ("en_US", "de_DE", "es_ES", "fr_FR", "it_IT", "zh_CN")
_TYPES = ("single_session", "series", "sequence")
_EXPERIENCES = ("CLASSIC", "BROADCAST", "SIMULIVE")
_PATTERNS = ("daily", "weekly", "monthly")
_MAX_PAGE_SIZE = 200
_MAX_INT64 = 2**63 - 1
_MAX_OCCURRENCES = 1000
_ERROR_CODES = {
    400: "InvalidRequest",
    403: "AccessDenied",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class _ApiError(Exception):
    """A G2W error answer, raised from deep inside a handler."""

    def __init__(self, status: int, description: str, error_code: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.error_code = error_code or _ERROR_CODES.get(status, "Error")


def _iso(moment: datetime) -> str:
    return Simulator.format_iso(moment)


def _keyed_webinar(webinar: Any, times: Any) -> dict[str, Any]:
    """The fields ``WebinarByKey`` and ``BrokerWebinar`` share (keys as int64 numbers)."""
    return {
        "webinarKey": int(webinar.key),
        "webinarID": webinar.webinar_id,
        "subject": webinar.subject,
        "description": webinar.description,
        "organizerKey": int(webinar.organizer.key),
        "organizerEmail": webinar.organizer.email,
        "organizerName": webinar.organizer.name,
        "times": [_span(start, end) for start, end in times],
    }


def _span(start: datetime, end: datetime) -> dict[str, str]:
    return {"startTime": _iso(start), "endTime": _iso(end)}


def _parse_instant(value: Any, name: str) -> datetime:
    """An ISO-8601 date-time with an offset (``Z`` or ``+hh:mm``), as UTC."""
    if not isinstance(value, str):
        raise _ApiError(400, f"{name} must be an ISO-8601 date-time")
    moment = Simulator.parse_iso(value, assume_utc=False)
    if moment is None:
        raise _ApiError(400, f"{name} '{value}' is not a valid ISO-8601 date-time")
    if moment.tzinfo is None:
        raise _ApiError(400, f"{name} '{value}' must carry a UTC offset, e.g. 2020-03-13T10:00:00Z")
    return moment


def _parse_int(value: str, name: str) -> int:
    """A non-negative int64 from a path or query string, else 400."""
    if not (value.isascii() and value.isdigit()) or int(value) > _MAX_INT64:
        raise _ApiError(400, f"{name} must be a number, got '{value}'")
    return int(value)


def _parse_bool(params: httpx.QueryParams, name: str, default: bool) -> bool:
    value: str | None = params.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise _ApiError(400, f"{name} must be true or false, got '{value}'")
    return value.lower() == "true"


@dataclass
class _Organizer:
    key: str
    first_name: str
    last_name: str
    email: str
    time_zone: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass
class _Attendee:
    registrant_key: int
    first_name: str
    last_name: str
    email: str
    attendance: list[tuple[datetime, datetime]]

    @property
    def seconds(self) -> int:
        return int(sum((leave - join).total_seconds() for join, leave in self.attendance))


@dataclass
class _Session:
    """A completed session with its attendance and engagement figures."""

    key: str
    start: datetime
    end: datetime
    registrant_count: int
    attendees: list[_Attendee]
    polls: int = 0
    surveys: int = 0
    questions: int = 0
    polls_completed: float = 0.0
    surveys_completed: float = 0.0
    interest_rating: float = 0.0
    attentiveness: float = 0.0
    invitations_opened: int = 0
    link_clicks: int = 0


@dataclass
class _Panelist:
    panelist_id: int
    name: str
    email: str


@dataclass
class _Webinar:
    key: str
    webinar_id: str
    organizer: _Organizer
    subject: str
    description: str
    times: list[tuple[datetime, datetime]]
    time_zone: str
    kind: str = "single_session"
    locale: str = "en_US"
    experience: str = "CLASSIC"
    password_protected: bool = False
    on_demand: bool = False
    registrants: int = 0
    registration_limit: int = 1000
    recurrence_key: str | None = None
    cancelled: bool = False
    sessions: list[_Session] = field(default_factory=list)
    panelists: list[_Panelist] = field(default_factory=list)

    @property
    def registration_url(self) -> str:
        return f"https://attendee.gotowebinar.com/register/{self.key}"

    def in_session(self, now: datetime) -> bool:
        return any(start <= now < end for start, end in self.times)

    def future_times(self, now: datetime) -> list[tuple[datetime, datetime]]:
        return [(start, end) for start, end in self.times if end > now]

    def session(self, session_key: str) -> _Session:
        for session in self.sessions:
            if session.key == session_key:
                return session
        raise _ApiError(404, f"Session {session_key} of webinar {self.key} does not exist")


def _sequence_times(start: datetime, end: datetime, pattern: str, last_day: date) -> list[tuple[datetime, datetime]]:
    """The meeting times of a ``sequence`` webinar, up to and including ``last_day``."""
    times: list[tuple[datetime, datetime]] = []
    for index in range(_MAX_OCCURRENCES + 1):
        offset = _recurrence_offset(start, pattern, index)
        if (start + offset).date() > last_day:
            return times
        times.append((start + offset, end + offset))
    raise _ApiError(400, f"A sequence may have at most {_MAX_OCCURRENCES} occurrences")


def _recurrence_offset(start: datetime, pattern: str, index: int) -> timedelta:
    if pattern == "daily":
        return timedelta(days=index)
    if pattern == "weekly":
        return timedelta(weeks=index)
    month = start.month - 1 + index
    year, month = start.year + month // 12, month % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day) - start


def _page(
    items: Sequence[Any], params: httpx.QueryParams, render: Callable[[Any], dict[str, Any]], key: str
) -> dict[str, Any]:
    """One page of a Spring-style paged resource: ``{_embedded: {key: [...]}, page: {...}}``."""
    number = _parse_int(params.get("page", "0"), "page")
    size = _parse_int(params.get("size", "20"), "size")
    if not 1 <= size <= _MAX_PAGE_SIZE:
        raise _ApiError(400, f"size must be between 1 and {_MAX_PAGE_SIZE}, got {size}")
    page = Simulator.page(items, number * size, size)
    return {
        "_embedded": {key: [render(item) for item in page.items]},
        "page": {"size": size, "totalElements": page.total, "totalPages": page.total_pages, "number": number},
    }


class GoToWebinarSimulator(Simulator):
    """GoTo Webinar v2 plus the Admin API's ``/me``, with demo organizers and webinars."""

    service = "goto-webinar"

    demo_accounts = DEMO_ACCOUNTS
    credential_fields = ("access_token",)

    # -- the Simulator contract -------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().__call__(request)
        except _ApiError as exc:
            return self.error(exc.status, exc.description, errorCode=exc.error_code)

    def authenticate(self, request: httpx.Request) -> httpx.Response | None:
        """GoTo's gateway answers 403 ``InvalidToken`` for a missing or unknown bearer token."""
        if self.accepts(self.bearer_token(request)):
            return None
        return self.json(
            403,
            {"int_err_code": "InvalidToken", "msg": "Invalid token passed"},
            headers={"x-amzn-errortype": "UnauthorizedException"},
        )

    def error(self, status: int, message: str, **extra: Any) -> httpx.Response:
        """G2W's error body: ``{"errorCode", "description", "incident"}``."""
        code = extra.pop("errorCode", None) or _ERROR_CODES.get(status, "Error")
        body = {"errorCode": code, "description": message, "incident": self._rng.randrange(10**18, 9 * 10**18), **extra}
        return self.json(status, body)

    def seed(self) -> None:
        """Organizers and their webinars, sessions, attendees and panelists, from ``simulator_data.yaml``."""
        self._rng = random.Random(20_160_323)
        data = self.seed_data()
        by_account: dict[str, _Organizer] = {}
        for fields in data["organizers"]:
            account = fields.pop("account")
            by_account[account] = _Organizer(**fields)
        self._organizers = {o.key: o for o in by_account.values()}
        self._organizer_of_token = {
            DEMO_ACCOUNTS[account]["access_token"]: organizer for account, organizer in by_account.items()
        }
        webinars = [self._seed_webinar(fields, by_account) for fields in data["webinars"]]
        self._webinars = {w.key: w for w in webinars}

    def _seed_time(self, time: dict[str, Any]) -> tuple[datetime, datetime]:
        start = self.at(time["start"])
        return start, start + timedelta(minutes=time["minutes"])

    def _seed_webinar(self, fields: dict[str, Any], organizers: dict[str, _Organizer]) -> _Webinar:
        """One webinar of the data file: times from the clock, sessions a few seconds after their time."""
        times = [self._seed_time(time) for time in fields.pop("times")]
        sessions = []
        for session in fields.pop("sessions", []):
            start = times[session.pop("time")][0] + timedelta(seconds=session.pop("late_seconds"))
            attendees = [
                _Attendee(
                    a["registrant_key"], a["first_name"], a["last_name"],
                    f"{a['first_name']}.{a['last_name']}@example.com".lower().replace("'", ""),
                    [(start + timedelta(seconds=join), start + timedelta(seconds=leave)) for join, leave in a["attendance"]],
                )
                for a in session.pop("attendees")
            ]
            end = start + timedelta(seconds=session.pop("seconds"))
            sessions.append(_Session(start=start, end=end, attendees=attendees, **session))
        panelists = [_Panelist(**p) for p in fields.pop("panelists", [])]
        organizer = organizers[fields.pop("organizer")]
        return _Webinar(organizer=organizer, times=times, sessions=sessions, panelists=panelists, **fields)

    # -- helpers -------------------------------------------------------------------

    def _caller(self, request: httpx.Request) -> _Organizer:
        """The organizer the token belongs to (other accepted tokens act as ``default``)."""
        default = self._organizer_of_token[DEMO_ACCOUNTS["default"]["access_token"]]
        return self._organizer_of_token.get(self.bearer_token(request) or "", default)

    def _organizer(self, request: httpx.Request, organizer_key: str) -> _Organizer:
        """The path's organizer, which must be the token's own."""
        caller = self._caller(request)
        if _parse_int(organizer_key, "organizerKey") != int(caller.key):
            raise _ApiError(403, f"Access to the resources of organizer {organizer_key} is denied")
        return caller

    def _webinar(self, request: httpx.Request, organizer_key: str, webinar_key: str) -> _Webinar:
        """A live (not cancelled) webinar of the path's organizer, else 404."""
        organizer = self._organizer(request, organizer_key)
        webinar = self._webinars.get(str(_parse_int(webinar_key, "webinarKey")))
        if webinar is None or webinar.cancelled or webinar.organizer is not organizer:
            raise _ApiError(404, f"Webinar with key {webinar_key} does not exist")
        return webinar

    def _session(
        self, request: httpx.Request, organizer_key: str, webinar_key: str, session_key: str
    ) -> tuple[_Webinar, _Session]:
        webinar = self._webinar(request, organizer_key, webinar_key)
        return webinar, webinar.session(str(_parse_int(session_key, "sessionKey")))

    def _new_key(self) -> str:
        while (key := str(self._rng.randrange(10**18, 9 * 10**18))) in self._webinars:
            continue
        return key

    # -- renderers (one per spec schema) ----------------------------------------

    @staticmethod
    def _render_webinar(webinar: _Webinar) -> dict[str, Any]:
        """``Webinar``, the item of ``getWebinars``."""
        return {
            "webinarKey": webinar.key,
            "webinarID": webinar.webinar_id,
            "organizerKey": webinar.organizer.key,
            "accountKey": ACCOUNT_KEY,
            "subject": webinar.subject,
            "description": webinar.description,
            "times": [_span(start, end) for start, end in webinar.times],
            "timeZone": webinar.time_zone,
            "locale": webinar.locale,
            "approvalType": "AUTOMATIC",
            "registrationUrl": webinar.registration_url,
            "impromptu": False,
            "isPasswordProtected": webinar.password_protected,
            "recurrenceType": webinar.kind,
            "experienceType": webinar.experience,
        }

    @staticmethod
    def _render_webinar_by_key(webinar: _Webinar, now: datetime) -> dict[str, Any]:
        """``WebinarByKey``, the answer of ``getWebinar``."""
        times = webinar.future_times(now) if webinar.kind == "sequence" else webinar.times
        return {
            **_keyed_webinar(webinar, times),
            "registrationUrl": webinar.registration_url,
            "inSession": webinar.in_session(now),
            "impromptu": False,
            "type": webinar.kind,
            "timeZone": webinar.time_zone,
            "numberOfRegistrants": webinar.registrants,
            "registrationLimit": webinar.registration_limit,
            "locale": webinar.locale,
            "accountKey": ACCOUNT_KEY,
            "recurrencePeriod": webinar.kind,
            "experienceType": webinar.experience,
            "isPasswordProtected": webinar.password_protected,
        }

    @staticmethod
    def _render_broker_webinar(webinar: _Webinar) -> dict[str, Any]:
        """``BrokerWebinar``, the item of ``getInSessionWebinars``."""
        return {
            **_keyed_webinar(webinar, webinar.times),
            "timeZone": webinar.time_zone,
            "registrationUrl": webinar.registration_url,
            "inSession": True,
            "impromptu": False,
            "numberOfRegistrants": webinar.registrants,
            "experienceType": webinar.experience,
            "coorganizers": [],
            "isOndemand": webinar.on_demand,
        }

    @staticmethod
    def _render_session(webinar: _Webinar, session: _Session) -> dict[str, Any]:
        """``ReportingSession``, the item of ``getAllSessions``."""
        organizer = webinar.organizer
        return {
            "sessionKey": session.key,
            "webinarKey": webinar.key,
            "webinarName": webinar.subject,
            "webinarID": webinar.webinar_id,
            "startTime": _iso(session.start),
            "endTime": _iso(session.end),
            "registrantsAttended": len(session.attendees),
            "registrantCount": session.registrant_count,
            "accountKey": ACCOUNT_KEY,
            "creatingOrganizerKey": organizer.key,
            "creatingOrganizerName": organizer.name,
            "startingOrganizerKey": organizer.key,
            "startingOrganizerName": organizer.name,
            "totalPollCount": session.polls,
            "timeZone": webinar.time_zone,
            "experienceType": webinar.experience,
            "numRegLinkClicks": session.link_clicks,
            "numOpenedInvitations": session.invitations_opened,
        }

    @staticmethod
    def _render_attendee(session: _Session, attendee: _Attendee) -> dict[str, Any]:
        """``Attendee``, the item of ``getWebinarSession`` and ``getAttendees``."""
        return {
            "registrantKey": attendee.registrant_key,
            "firstName": attendee.first_name,
            "lastName": attendee.last_name,
            "email": attendee.email,
            "attendanceTimeInSeconds": attendee.seconds,
            "sessionKey": int(session.key),
            "attendance": [{"joinTime": _iso(join), "leaveTime": _iso(leave)} for join, leave in attendee.attendance],
        }

    @staticmethod
    def _render_performance(webinar: _Webinar, session: _Session) -> dict[str, Any]:
        """``SessionPerformance`` for one session."""
        attended = len(session.attendees)
        average = sum(a.seconds for a in session.attendees) / attended if attended else 0.0
        share = 100.0 * attended / session.registrant_count if session.registrant_count else 0.0
        return {
            "sessionInfo": {
                "webinarName": webinar.subject,
                "webinarId": webinar.webinar_id,
                "sessionKey": session.key,
                "timeZone": webinar.time_zone,
                "experienceType": webinar.experience,
                "recurrencePeriod": webinar.kind,
                "startTime": _iso(session.start),
                "endTime": _iso(session.end),
                "registrationEmailOpenedCount": str(session.invitations_opened),
                "registrationLinkClickedCount": str(session.link_clicks),
            },
            "attendance": {
                "registrantCount": session.registrant_count,
                "percentageAttendance": round(share, 2),
                "averageInterestRating": session.interest_rating,
                "averageAttentiveness": session.attentiveness,
                "averageAttendanceTimeSeconds": round(average, 1),
            },
            "pollsAndSurveys": {
                "pollCount": session.polls,
                "surveyCount": float(session.surveys),
                "questionsAsked": session.questions,
                "percentagePollsCompleted": session.polls_completed,
                "percentageSurveysCompleted": session.surveys_completed,
            },
        }

    @staticmethod
    def _render_panelist(webinar: _Webinar, panelist: _Panelist) -> dict[str, Any]:
        """``Panelist`` (``firstName``/``lastName`` are deprecated but still sent)."""
        first, _, last = panelist.name.partition(" ")
        return {
            "panelistId": panelist.panelist_id,
            "name": panelist.name,
            "email": panelist.email,
            "joinLink": f"https://global.gotowebinar.com/join/{webinar.key}/{panelist.panelist_id}",
            "firstName": first,
            "lastName": last,
        }

    # -- identity ------------------------------------------------------------------

    @route("GET", "/admin/rest/v1/me")
    def get_me(self, request: httpx.Request) -> httpx.Response:
        """The token's user; ``key`` is its organizerKey."""
        organizer = self._caller(request)
        return self.json(200, {
            "key": int(organizer.key),
            "accountKey": int(ACCOUNT_KEY),
            "email": organizer.email,
            "firstName": organizer.first_name,
            "lastName": organizer.last_name,
            "locale": "en_US",
            "timeZone": organizer.time_zone,
        })

    # -- webinars ------------------------------------------------------------------

    @route("GET", _G2W + "/webinars")
    def list_webinars(self, request: httpx.Request, organizerKey: str) -> httpx.Response:
        """Webinars with a time starting in ``[fromTime, toTime]``, paged."""
        organizer = self._organizer(request, organizerKey)
        params = request.url.params
        for name in ("fromTime", "toTime"):
            if name not in params:
                raise _ApiError(400, f"Required request parameter '{name}' is not present")
        start, end = _parse_instant(params["fromTime"], "fromTime"), _parse_instant(params["toTime"], "toTime")
        if start > end:
            raise _ApiError(400, "fromTime must not be after toTime")
        found = sorted(
            (w for w in self._webinars.values()
             if w.organizer is organizer and not w.cancelled and any(start <= s <= end for s, _ in w.times)),
            key=lambda w: (w.times[0][0], w.key),
        )
        return self.json(200, _page(found, params, self._render_webinar, "webinars"))

    @route("POST", _G2W + "/webinars")
    def create_webinar(self, request: httpx.Request, organizerKey: str) -> httpx.Response:
        """Schedule a webinar (a ``series`` creates one webinar per time, sharing a recurrenceKey)."""
        organizer = self._organizer(request, organizerKey)
        body = self.body(request)
        if not isinstance(body, dict):
            raise _ApiError(400, "The request body must be a JSON object")
        kind = self._choice(body, "type", _TYPES, "single_session")
        slots = self._requested_times(body, kind)
        settings: dict[str, Any] = {
            "organizer": organizer,
            "subject": self._text(body, "subject", 128, required=True),
            "description": self._text(body, "description", 2048, required=False),
            "time_zone": self._time_zone(body.get("timeZone", organizer.time_zone)),
            "kind": kind,
            "locale": self._choice(body, "locale", _LOCALES, "en_US"),
            "experience": self._choice(body, "experienceType", _EXPERIENCES, "CLASSIC", fold=str.upper),
            "password_protected": self._flag(body, "isPasswordProtected"),
            "on_demand": self._flag(body, "isOndemand"),
        }
        if kind != "series":
            webinar = _Webinar(self._new_key(), self._webinar_id(), times=slots, **settings)
            self._webinars[webinar.key] = webinar
            return self.json(201, {"webinarKey": webinar.key})
        recurrence_key = self._new_key()
        created = [
            _Webinar(self._new_key(), self._webinar_id(), times=[slot], recurrence_key=recurrence_key, **settings)
            for slot in slots
        ]
        self._webinars.update((w.key, w) for w in created)
        return self.json(201, {"webinarKey": created[0].key, "recurrenceKey": recurrence_key})

    @route("GET", _G2W + "/webinars/{webinarKey}")
    def get_webinar(self, request: httpx.Request, organizerKey: str, webinarKey: str) -> httpx.Response:
        """One webinar; 404 when unknown or cancelled."""
        webinar = self._webinar(request, organizerKey, webinarKey)
        return self.json(200, self._render_webinar_by_key(webinar, self.now()))

    @route("DELETE", _G2W + "/webinars/{webinarKey}")
    def cancel_webinar(self, request: httpx.Request, organizerKey: str, webinarKey: str) -> httpx.Response:
        """Cancel a webinar (and, with ``deleteAll`` true, the rest of its series); 409 while in session."""
        webinar = self._webinar(request, organizerKey, webinarKey)
        _parse_bool(request.url.params, "sendCancellationEmails", False)
        delete_all = _parse_bool(request.url.params, "deleteAll", True)
        doomed = [webinar]
        if delete_all and webinar.recurrence_key:
            series = webinar.recurrence_key
            doomed = [w for w in self._webinars.values() if w.recurrence_key == series and not w.cancelled]
        now = self.now()
        if any(w.in_session(now) for w in doomed):
            raise _ApiError(409, "The webinar is in session and cannot be cancelled", "WebinarInSession")
        for doomed_webinar in doomed:
            doomed_webinar.cancelled = True
        return httpx.Response(204)

    @route("GET", _G2W + "/insessionWebinars")
    def list_in_session_webinars(self, request: httpx.Request, organizerKey: str) -> httpx.Response:
        """Webinars in session now; ``fromTime``/``toTime`` optionally narrow by start time."""
        organizer = self._organizer(request, organizerKey)
        params = request.url.params
        start = _parse_instant(params["fromTime"], "fromTime") if "fromTime" in params else None
        end = _parse_instant(params["toTime"], "toTime") if "toTime" in params else None
        now = self.now()
        live = [
            w for w in self._webinars.values()
            if w.organizer is organizer and not w.cancelled and w.in_session(now)
            and any((start is None or s >= start) and (end is None or s <= end) for s, _ in w.times)
        ]
        return self.json(200, [self._render_broker_webinar(w) for w in live])

    # -- sessions, attendees, panelists --------------------------------------------

    @route("GET", _G2W + "/webinars/{webinarKey}/sessions")
    def list_sessions(self, request: httpx.Request, organizerKey: str, webinarKey: str) -> httpx.Response:
        """The webinar's completed sessions, earliest first, paged."""
        webinar = self._webinar(request, organizerKey, webinarKey)
        sessions = sorted(webinar.sessions, key=lambda s: s.start)
        body = _page(sessions, request.url.params, lambda s: self._render_session(webinar, s), "sessionInfoResources")
        return self.json(200, body)

    @route("GET", _G2W + "/webinars/{webinarKey}/sessions/{sessionKey}")
    @route("GET", _G2W + "/webinars/{webinarKey}/sessions/{sessionKey}/attendees")
    def list_session_attendees(
        self, request: httpx.Request, organizerKey: str, webinarKey: str, sessionKey: str
    ) -> httpx.Response:
        """Attendance of one completed session: a plain array of ``Attendee``."""
        _, session = self._session(request, organizerKey, webinarKey, sessionKey)
        return self.json(200, [self._render_attendee(session, a) for a in session.attendees])

    @route("GET", _G2W + "/webinars/{webinarKey}/sessions/{sessionKey}/performance")
    def get_session_performance(
        self, request: httpx.Request, organizerKey: str, webinarKey: str, sessionKey: str
    ) -> httpx.Response:
        """Attendance, engagement, poll and survey figures of one session."""
        webinar, session = self._session(request, organizerKey, webinarKey, sessionKey)
        return self.json(200, self._render_performance(webinar, session))

    @route("GET", _G2W + "/webinars/{webinarKey}/panelists")
    def list_panelists(self, request: httpx.Request, organizerKey: str, webinarKey: str) -> httpx.Response:
        """All panelists of the webinar, unpaged."""
        webinar = self._webinar(request, organizerKey, webinarKey)
        return self.json(200, [self._render_panelist(webinar, p) for p in webinar.panelists])

    # -- create-body validation ----------------------------------------------------

    def _webinar_id(self) -> str:
        return str(self._rng.randrange(100_000_000, 1_000_000_000))

    @staticmethod
    def _text(body: dict[str, Any], name: str, limit: int, *, required: bool) -> str:
        value = body.get(name, "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise _ApiError(400, f"{name} is required" if required else f"{name} must be a string")
        if len(value) > limit:
            raise _ApiError(400, f"{name} must be at most {limit} characters")
        return value

    @staticmethod
    def _choice(
        body: dict[str, Any], name: str, allowed: Iterable[str], default: str, fold: Callable[[str], str] = str
    ) -> str:
        value = body.get(name, default)
        if not isinstance(value, str) or fold(value) not in allowed:
            raise _ApiError(400, f"{name} '{value}' is not one of {', '.join(allowed)}")
        return fold(value)

    @staticmethod
    def _flag(body: dict[str, Any], name: str) -> bool:
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise _ApiError(400, f"{name} must be true or false")
        return value

    @staticmethod
    def _time_zone(value: Any) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise _ApiError(400, f"timeZone '{value}' is not a valid time zone ID") from None
        return str(value)

    def _requested_times(self, body: dict[str, Any], kind: str) -> list[tuple[datetime, datetime]]:
        """The create body's meeting times: ``times`` (single session, series) or a recurrence (sequence)."""
        if kind == "sequence":
            slots = self._recurrence(body)
        else:
            raw = body.get("times")
            if not isinstance(raw, list) or not raw:
                raise _ApiError(400, "times must hold at least one startTime/endTime pair")
            slots = [self._slot(item, f"times[{index}]") for index, item in enumerate(raw)]
        if kind == "single_session" and len(slots) != 1:
            raise _ApiError(400, "A single_session webinar takes exactly one startTime/endTime pair")
        if kind == "series" and len(slots) < 2:
            raise _ApiError(400, "A series webinar takes two or more startTime/endTime pairs")
        now = self.now()
        for start, _end in slots:
            if start <= now:
                raise _ApiError(400, f"Webinar times must be in the future: {_iso(start)} has passed")
        return slots

    @staticmethod
    def _slot(item: Any, where: str) -> tuple[datetime, datetime]:
        if not isinstance(item, dict):
            raise _ApiError(400, f"{where} must be an object with startTime and endTime")
        start = _parse_instant(item.get("startTime"), f"{where}.startTime")
        end = _parse_instant(item.get("endTime"), f"{where}.endTime")
        if end <= start:
            raise _ApiError(400, f"{where}.endTime must be after its startTime")
        return start, end

    def _recurrence(self, body: dict[str, Any]) -> list[tuple[datetime, datetime]]:
        start, end = self._slot(body.get("recurrenceStart"), "recurrenceStart")
        pattern = self._choice(body, "recurrencePattern", _PATTERNS, "", fold=str.lower)
        try:
            last_day = date.fromisoformat(body.get("recurrenceEnd", ""))
        except (TypeError, ValueError):
            raise _ApiError(400, "recurrenceEnd must be a date such as 2016-12-01") from None
        if last_day < start.date():
            raise _ApiError(400, "recurrenceEnd must not be before recurrenceStart")
        return _sequence_times(start, end, pattern, last_day)
