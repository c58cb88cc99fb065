"""The Cal.com API v2 simulator over real loopback sockets, checked against the official OpenAPI spec.

Every exchange a test makes is validated against ``tests/data/specs/calcom.json`` when the test
finishes, except those a test marks as deliberately off-spec (a missing key or version header,
invalid input sent on purpose, injected faults). The spec is NestJS-generated and wrong in
places where Cal.com's own source (``apps/api/v2``) says otherwise; each such place is
corrected in ``_correct`` under a ``SPEC QUIRK`` comment, and the simulator stays faithful
to the real behaviour.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from kosmo_integrations.cal_com.simulator import DEMO_ACCOUNTS, CalComSimulator
from openapi_core import Config, OpenAPI

from kosmo_runtime import Fault
from tests.contract.openapi import SPECS, SpecChecker
from tests.support import Switchboard, serving

SERVER = "https://api.cal.com"
KEY = DEMO_ACCOUNTS["default"]["api_key"]
WORK_KEY = DEMO_ACCOUNTS["work"]["api_key"]
PERSONAL_KEY = DEMO_ACCOUNTS["personal"]["api_key"]
EVENT_TYPES = {"cal-api-version": "2024-06-14"}
BOOKINGS = {"cal-api-version": "2024-08-13"}
BOOKING_123_UID = "bk3Xq9TzR7mNwP2vLc8HdA"
NO_AUTH = (
    "ApiAuthStrategy - No authentication method provided. Either pass an API key as 'Bearer' header "
    "or OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers"
)


# -- the spec, with its quirks corrected ---------------------------------------------------------


def _schemas(document: dict[str, Any]) -> dict[str, Any]:
    return document["components"]["schemas"]


def _nullable_refs(node: Any) -> None:
    """SPEC QUIRK 1: nullable references are written ``{nullable: true, allOf: [$ref]}`` with no ``type``.

    OpenAPI 3.0.3 ignores ``nullable`` without a ``type`` beside it, so validators reject the
    documented ``null`` (e.g. an event type's ``recurrence``); rewritten as ``anyOf: [$ref, null]``.
    """
    if isinstance(node, dict):
        if node.get("nullable") and "type" not in node and ("allOf" in node or "$ref" in node):
            branches = node.pop("allOf", []) + ([{"$ref": node.pop("$ref")}] if "$ref" in node else [])
            node.pop("nullable")
            node["anyOf"] = [*branches, {"nullable": True, "enum": [None]}]
        for value in node.values():
            _nullable_refs(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_refs(value)


def _correct(document: dict[str, Any]) -> dict[str, Any]:
    """The official document with the places where it contradicts Cal.com's source fixed."""
    _nullable_refs(document)
    schemas = _schemas(document)
    event_type, team_event_type = schemas["EventTypeOutput_2024_06_14"], schemas["TeamEventTypeOutput_2024_06_14"]
    # SPEC QUIRK 2: `users` of a user's event type are `User_2024_06_14` objects
    # (id, name, username, avatarUrl, weekStart, brandColor, darkBrandColor, metadata),
    # and `hosts` of a team event type are `TeamEventTypeResponseHost` objects
    # (userId, name, username, avatarUrl, plus mandatory/priority for round robin); the spec says strings.
    event_type["properties"]["users"]["items"] = {"type": "object", "required": ["id", "name", "username", "weekStart"]}
    team_event_type["properties"]["hosts"]["items"] = {"type": "object", "required": ["userId", "name", "username"]}
    for output in (event_type, team_event_type):
        properties = output["properties"]
        # SPEC QUIRK 3: `forwardParamsSuccessRedirect` is a nullable boolean (database default true), not an object.
        properties["forwardParamsSuccessRedirect"] = {"type": "boolean", "nullable": True}
        # SPEC QUIRK 4: `bookingFields` and `locations` are `oneOf` unions without a discriminator whose
        # branches overlap (every location satisfies OutputOrganizersDefaultAppLocation, which requires
        # only `type`; the title/notes/guests field outputs share one shape), so no value matches exactly one.
        for name in ("bookingFields", "locations"):
            properties[name]["items"] = {"anyOf": properties[name]["items"]["oneOf"]}
        # SPEC QUIRK 5: `seats` and `bookingWindow` are one object, `{"disabled": true}` when unset
        # (transformSeatsInternalToApi, transformFutureBookingLimitsInternalToApi); the spec says `Seats`
        # only, and an array of windows.
        disabled = {"$ref": "#/components/schemas/Disabled_2024_06_14"}
        properties["seats"] = {"anyOf": [properties["seats"], disabled]}
        properties["bookingWindow"] = {"anyOf": [*properties["bookingWindow"]["items"]["oneOf"], disabled]}
    # SPEC QUIRK 6: booking field outputs' `isDefault` (and the email field's `required`) are booleans, not objects.
    for name, schema in schemas.items():
        if name.endswith("FieldOutput_2024_06_14") and "isDefault" in schema.get("properties", {}):
            schema["properties"]["isDefault"] = {"type": "boolean"}
    schemas["EmailDefaultFieldOutput_2024_06_14"]["properties"]["required"] = {"type": "boolean"}
    # SPEC QUIRK 7: teams keep the database's nulls (parentId, logoUrl, bio, theme, bannerUrl, timeFormat...):
    # TeamOutputDto's and EventTypeTeam's optional properties are nullable.
    for name in ("TeamOutputDto", "EventTypeTeam"):
        for key, schema in schemas[name]["properties"].items():
            if key not in ("id", "name", "isOrganization"):
                schema["nullable"] = True
    # SPEC QUIRK 8: getPagination() answers currentPage 0 when there is nothing to page (totalPages 0).
    schemas["PaginationMetaDto"]["properties"]["currentPage"]["minimum"] = 0
    # SPEC QUIRK 9: a plain booking body matches both CreateBookingInput and CreateRecurringBookingInput
    # (`recurrenceCount` is optional), and a location object several location inputs: `oneOf` fails by design.
    create = document["paths"]["/v2/bookings"]["post"]["requestBody"]["content"]["application/json"]
    create["schema"] = {"anyOf": create["schema"]["oneOf"]}
    for kind in ("", "Instant", "Recurring"):
        location = schemas[f"Create{kind}BookingInput_2024_08_13"]["properties"]["location"]
        location["anyOf"] = location.pop("oneOf")
    # SPEC QUIRK 10: `status` is documented as a comma-separated list (`?status=upcoming,past`) but
    # declared as an exploded array (`?status=upcoming&status=past`); Cal.com accepts both.
    for parameter in document["paths"]["/v2/bookings"]["get"]["parameters"]:
        if parameter["name"] == "status":
            parameter["explode"] = False
    # SPEC QUIRK 12: booking outputs have no `additionalProperties: false`, so one occurrence of a recurring
    # booking (a RecurringBookingOutput, which only adds `recurringBookingUid`) is also a BookingOutput:
    # the `oneOf` of `data` in CreateBookingOutput and GetBookingOutput (and of GetBookingsOutput's items)
    # cannot match exactly one branch.
    for data in (schemas["CreateBookingOutput_2024_08_13"]["properties"]["data"],
                 schemas["GetBookingOutput_2024_08_13"]["properties"]["data"],
                 schemas["GetBookingsOutput_2024_08_13"]["properties"]["data"]["items"]):
        data["anyOf"] = data.pop("oneOf")
    document["servers"] = [{"url": SERVER}]
    return document


class CorrectedSpec(SpecChecker):
    """``SpecChecker`` over the corrected ``calcom.json``.

    The document is parsed with ``json``: the stock loader's YAML parse of this 1 MB file
    alone takes about 4.5 s.
    """

    def __init__(self) -> None:
        self.server = SERVER
        document = _correct(json.loads((SPECS / "calcom.json").read_text()))
        self.openapi = OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))


def _is_error_envelope(response: httpx.Response) -> bool:
    """The v2 exception filter body: ``{status: "error", timestamp, path, error: {code, message}}``."""
    body = response.json()
    return (
        body.get("status") == "error"
        and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body.get("timestamp", "")) is not None
        and body.get("path") == response.request.url.raw_path.decode()
        and isinstance(body.get("error", {}).get("code"), str)
        and isinstance(body["error"].get("message"), str)
    )


class Recorder:
    """The exchanges of one test, with the ones deliberately off-spec marked."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[httpx.Response, bool]] = []
        self._off_spec = False

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.exchanges.append((response, not self._off_spec))

    @contextmanager
    def off_spec(self) -> Iterator[None]:
        """Exchanges inside are deliberately invalid (bad input, missing headers, faults): not spec-checked."""
        self._off_spec = True
        try:
            yield
        finally:
            self._off_spec = False

    def violations(self, spec: SpecChecker) -> list[str]:
        found = []
        for response, checked in self.exchanges:
            if not checked:
                continue
            request = response.request
            problems = spec.request_errors(request) + spec.response_errors(request, response)
            # SPEC QUIRK 11: no operation documents any error response; errors must be the v2 envelope instead.
            if response.is_error and _is_error_envelope(response):
                problems = [p for p in problems if not p.startswith("ResponseNotFound: Unknown response http status")]
            found += [f"{request.method} {request.url} -> {response.status_code}: {problem}" for problem in problems]
        return found


# -- fixtures ------------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def spec() -> SpecChecker:
    return CorrectedSpec()


@pytest.fixture(scope="module")
def switchboard() -> Iterator[Switchboard[CalComSimulator]]:
    with serving(CalComSimulator) as board:
        yield board


@pytest.fixture
def sim(switchboard: Switchboard[CalComSimulator]) -> CalComSimulator:
    return switchboard.reset()


@pytest.fixture
def recorder(spec: SpecChecker) -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    violations = recorder.violations(spec)
    assert not violations, "exchanges that do not conform to calcom.json:\n" + "\n".join(violations)


@pytest.fixture(scope="module")
def http(switchboard: Switchboard[CalComSimulator]) -> Iterator[httpx.Client]:
    """One client for the module: building one loads the CA bundle, which costs about 0.1 s."""
    with httpx.Client(base_url=switchboard.url, timeout=5) as client:
        yield client


@pytest.fixture
def client(http: httpx.Client, sim: CalComSimulator, recorder: Recorder) -> httpx.Client:
    """The module's client, reset for this test: the default account's key, this test's recorder."""
    http.headers = httpx.Headers({"Authorization": f"Bearer {KEY}"})
    http.event_hooks = {"request": [], "response": [recorder]}
    return http


def _at(days: int, hour: int) -> str:
    """A UTC start time ``days`` after today's midnight, as the API expects it."""
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight + timedelta(days=days, hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _booking_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "start": _at(20, 9),
        "eventTypeId": 42,
        "attendee": {"name": "John Doe", "email": "john.doe@example.com", "timeZone": "Europe/London"},
    }
    return body | overrides


def _without_nulls(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def _ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


def _error(response: httpx.Response, status: int, code: str, message: str) -> dict[str, Any]:
    """Assert a v2 error envelope and return its ``error`` object."""
    assert response.status_code == status, response.text
    assert _is_error_envelope(response), response.text
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (code, message)
    return error


# -- auth ----------------------------------------------------------------------------------------


def test_a_missing_key_is_401_with_the_v2_error_body(client: httpx.Client, recorder: Recorder) -> None:
    client.headers.pop("Authorization")
    with recorder.off_spec():
        response = client.get("/v2/me")
    error = _error(response, 401, "UnauthorizedException", NO_AUTH)
    assert error["details"] == {"message": NO_AUTH, "error": "Unauthorized", "statusCode": 401}


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("Bearer cal_live_0123456789abcdef0123456789abcdef", "ApiAuthStrategy - api key - Your api key is not valid"),
        ("Bearer not-a-cal-key", "ApiAuthStrategy - access token - Invalid Access Token."),
        (f"Basic {KEY}", "ApiAuthStrategy - access token - Invalid Access Token."),
    ],
    ids=["unknown-api-key", "not-an-api-key", "basic-scheme"],
)
def test_a_wrong_key_is_401(client: httpx.Client, authorization: str, message: str) -> None:
    for path, headers in (("/v2/teams", {}), ("/v2/bookings", BOOKINGS), ("/v2/event-types", EVENT_TYPES)):
        response = client.get(path, headers={"Authorization": authorization, **headers})
        _error(response, 401, "UnauthorizedException", message)


def test_each_demo_key_is_its_own_user(client: httpx.Client) -> None:
    usernames = {
        name: client.get("/v2/me", headers={"Authorization": f"Bearer {account['api_key']}"}).json()["data"]["username"]
        for name, account in DEMO_ACCOUNTS.items()
    }
    assert usernames == {"default": "alex-morgan", "work": "jordan-lee", "personal": "sam-rivera"}


def test_a_bare_key_without_bearer_is_accepted_like_upstream(client: httpx.Client) -> None:
    assert client.get("/v2/me", headers={"Authorization": KEY}).status_code == 200


def test_explicit_credentials_replace_the_demo_keys(switchboard: Switchboard[CalComSimulator], client: httpx.Client) -> None:
    switchboard.target = CalComSimulator(credentials=["cal_live_custom"])
    assert client.get("/v2/me").status_code == 401
    response = client.get("/v2/me", headers={"Authorization": "Bearer cal_live_custom"})
    assert response.json()["data"]["id"] == 1047


def test_booking_routes_take_an_optional_key_but_reject_a_wrong_one(client: httpx.Client) -> None:
    client.headers.pop("Authorization")
    assert client.get(f"/v2/bookings/{BOOKING_123_UID}", headers=BOOKINGS).status_code == 200
    assert client.post("/v2/bookings", headers=BOOKINGS, json=_booking_body()).status_code == 201
    assert client.get("/v2/event-types", headers=EVENT_TYPES).json() == {"status": "success", "data": []}
    wrong = {"Authorization": "Bearer cal_live_wrong", **BOOKINGS}
    response = client.get(f"/v2/bookings/{BOOKING_123_UID}", headers=wrong)
    _error(response, 401, "UnauthorizedException", "ApiAuthStrategy - api key - Your api key is not valid")


def test_team_event_types_are_public_and_ignore_the_key(client: httpx.Client) -> None:
    anonymous = client.get("/v2/teams/5/event-types", headers={"Authorization": ""})
    wrong = client.get("/v2/teams/5/event-types", headers={"Authorization": "Bearer cal_live_wrong"})
    assert _ids(anonymous) == _ids(wrong) == [311, 312]


# -- routing and API versions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v2/bookings", {}),
        ("/v2/bookings", {"cal-api-version": "2024-09-04"}),
        ("/v2/bookings", {"cal-api-version": "not-a-version"}),
        (f"/v2/bookings/{BOOKING_123_UID}", EVENT_TYPES),
        ("/v2/event-types", {}),
        ("/v2/event-types/42", BOOKINGS),
    ],
    ids=["bookings-missing", "bookings-unserved", "bookings-unknown", "booking-legacy", "event-types-missing",
         "event-type-wrong"],
)
def test_a_missing_or_wrong_api_version_is_nests_404(
    client: httpx.Client, recorder: Recorder, path: str, headers: dict[str, str]
) -> None:
    """Upstream routes a missing, unknown or legacy version to deprecated controllers; see the module docstring."""
    with recorder.off_spec():
        response = client.get(path, headers=headers)
    error = _error(response, 404, "NotFoundException", f"Cannot GET {path}")
    assert error["details"] == {"message": f"Cannot GET {path}", "error": "Not Found", "statusCode": 404}


def test_the_newer_bookings_version_is_served_too(client: httpx.Client) -> None:
    assert _ids(client.get("/v2/bookings", headers={"cal-api-version": "2026-02-25"}, params={"take": 1})) == [118]


def test_unversioned_routes_ignore_the_version_header(client: httpx.Client) -> None:
    for headers in ({}, EVENT_TYPES, {"cal-api-version": "anything"}):
        assert client.get("/v2/me", headers=headers).status_code == 200
        assert client.get("/v2/teams", headers=headers).status_code == 200


def test_unknown_routes_and_methods_are_404_before_auth(client: httpx.Client, recorder: Recorder) -> None:
    with recorder.off_spec():
        unknown = client.get("/v2/nope?x=1", headers={"Authorization": ""})
        wrong_method = client.delete("/v2/me")
    _error(unknown, 404, "NotFoundException", "Cannot GET /v2/nope?x=1")
    _error(wrong_method, 404, "NotFoundException", "Cannot DELETE /v2/me")


def test_api_v1_is_gone(client: httpx.Client, recorder: Recorder) -> None:
    with recorder.off_spec():
        for path in ("/v1/bookings", "/v1/event-types/42", f"/v1/me?apiKey={KEY}"):
            response = client.get(path)
            assert response.status_code == 410
            assert "API v2" in response.json()["message"]


# -- me and teams --------------------------------------------------------------------------------


def test_me_is_the_keys_user(client: httpx.Client) -> None:
    response = client.get("/v2/me")
    assert response.status_code == 200
    me = response.json()["data"]
    assert me | {"avatarUrl": None} == {
        "id": 1047,
        "username": "alex-morgan",
        "email": "alex.morgan@example.com",
        "name": "Alex Morgan",
        "avatarUrl": None,
        "bio": "Head of Partnerships at Northwind Labs.",
        "timeFormat": 24,
        "defaultScheduleId": 2291,
        "weekStart": "Monday",
        "timeZone": "Europe/London",
        "organizationId": None,
    }
    assert me["avatarUrl"].startswith("https://cal.com/api/avatar/")


def test_teams_are_the_users_teams(client: httpx.Client) -> None:
    response = client.get("/v2/teams")
    assert _ids(response) == [1, 5]
    acme = response.json()["data"][1]
    assert (acme["name"], acme["slug"], acme["isOrganization"]) == ("Acme Sales", "acme-sales", False)
    assert (acme["parentId"], acme["bannerUrl"]) == (None, None)
    assert _ids(client.get("/v2/teams", headers={"Authorization": f"Bearer {WORK_KEY}"})) == [5, 9]
    assert _ids(client.get("/v2/teams", headers={"Authorization": f"Bearer {PERSONAL_KEY}"})) == []


def test_team_event_types_have_hosts_and_team(client: httpx.Client) -> None:
    data = client.get("/v2/teams/5/event-types").json()["data"]
    discovery = data[0]
    assert (discovery["id"], discovery["teamId"], discovery["schedulingType"]) == (311, 5, "roundRobin")
    assert discovery["ownerId"] is None
    assert [h["username"] for h in discovery["hosts"]] == ["alex-morgan", "jordan-lee"]
    assert discovery["hosts"][1] == {
        "userId": 1048, "name": "Jordan Lee", "username": "jordan-lee", "mandatory": False, "priority": "medium",
        "avatarUrl": None,
    }
    assert discovery["team"]["slug"] == "acme-sales"
    assert "mandatory" not in data[1]["hosts"][0]  # collective hosts have no priority


def test_team_event_types_query_parameters(client: httpx.Client) -> None:
    assert _ids(client.get("/v2/teams/5/event-types", params={"sortCreatedAt": "desc"})) == [312, 311]
    assert _ids(client.get("/v2/teams/5/event-types", params={"eventSlug": "enterprise-onboarding"})) == [312]
    limited = client.get("/v2/teams/5/event-types", params={"hostsLimit": 1}).json()["data"]
    assert [len(et["hosts"]) for et in limited] == [1, 1]
    assert _ids(client.get("/v2/teams/9/event-types")) == [90]  # a team the caller is not in: still public
    assert _ids(client.get("/v2/teams/404/event-types")) == []


def test_team_event_types_reject_a_non_numeric_team_id(client: httpx.Client, recorder: Recorder) -> None:
    with recorder.off_spec():
        response = client.get("/v2/teams/acme/event-types")
    _error(response, 400, "BadRequestException", "Validation failed (numeric string is expected)")


# -- event types ---------------------------------------------------------------------------------


def test_event_types_list_the_callers_own_including_hidden(client: httpx.Client) -> None:
    response = client.get("/v2/event-types", headers=EVENT_TYPES)
    assert _ids(response) == [7, 42, 43]
    demo = response.json()["data"][1]
    assert (demo["title"], demo["slug"], demo["lengthInMinutes"]) == ("Product Demo", "product-demo", 30)
    assert demo["ownerId"] == 1047
    assert demo["description"].startswith("A 30-minute walkthrough")
    assert demo["bookingUrl"] == "https://cal.com/alex-morgan/product-demo"
    assert demo["users"][0]["username"] == "alex-morgan"
    assert "title" not in [f["slug"] for f in demo["bookingFields"]]  # hidden fields are dropped from lists


def test_event_types_of_another_user_hide_hidden_ones(client: httpx.Client) -> None:
    work = {"Authorization": f"Bearer {WORK_KEY}", **EVENT_TYPES}
    assert _ids(client.get("/v2/event-types", headers=work)) == [55]
    assert _ids(client.get("/v2/event-types", headers=work, params={"username": "alex-morgan"})) == [7, 42]
    own_by_name = {"username": "alex-morgan", "sortCreatedAt": "desc"}
    assert _ids(client.get("/v2/event-types", headers=EVENT_TYPES, params=own_by_name)) == [43, 42, 7]
    slug = {"username": "alex-morgan", "eventSlug": "product-demo"}
    assert _ids(client.get("/v2/event-types", headers=work, params=slug)) == [42]
    assert _ids(client.get("/v2/event-types", headers=work, params={"username": "nobody"})) == []


def test_get_event_type_by_id(client: httpx.Client) -> None:
    consultation = client.get("/v2/event-types/7", headers=EVENT_TYPES).json()["data"]
    assert (consultation["title"], consultation["lengthInMinutes"]) == ("Strategy Consultation", 45)
    assert consultation["lengthInMinutesOptions"] == [30, 45, 60]
    slugs = [f["slug"] for f in consultation["bookingFields"]]
    assert "title" in slugs and "company" in slugs  # a single event type keeps hidden fields
    assert consultation["confirmationPolicy"]["type"] == "always"
    team = client.get("/v2/event-types/311", headers=EVENT_TYPES).json()["data"]
    assert (team["teamId"], team["schedulingType"]) == (5, "roundRobin")


def test_get_event_type_is_404_when_unknown_or_not_the_callers(client: httpx.Client) -> None:
    unknown = client.get("/v2/event-types/999", headers=EVENT_TYPES)
    _error(unknown, 404, "NotFoundException", "Event type with id 999 not found")
    work = {"Authorization": f"Bearer {WORK_KEY}", **EVENT_TYPES}
    _error(client.get("/v2/event-types/42", headers=work), 404, "NotFoundException", "Event type with id 42 not found")
    assert client.get("/v2/event-types/311", headers=work).status_code == 200  # a host of the team event type


# -- bookings: reading ---------------------------------------------------------------------------


def test_list_bookings_is_paginated_with_take_and_skip(client: httpx.Client) -> None:
    everything = client.get("/v2/bookings", headers=BOOKINGS).json()
    assert [b["id"] for b in everything["data"]] == [118, 121, 122, 123, 127, 124, 130, 125, 126]  # by start
    assert everything["pagination"] == {
        "returnedItems": 9, "totalItems": 9, "itemsPerPage": 100, "remainingItems": 0, "currentPage": 1,
        "totalPages": 1, "hasNextPage": False, "hasPreviousPage": False,
    }
    pages = [
        client.get("/v2/bookings", headers=BOOKINGS, params={"take": 4, "skip": skip}).json() for skip in (0, 4, 8)
    ]
    assert [b["id"] for page in pages for b in page["data"]] == [b["id"] for b in everything["data"]]
    assert pages[1]["pagination"] == {
        "returnedItems": 4, "totalItems": 9, "itemsPerPage": 4, "remainingItems": 1, "currentPage": 2,
        "totalPages": 3, "hasNextPage": True, "hasPreviousPage": True,
    }
    assert pages[2]["pagination"]["hasNextPage"] is False


def test_list_bookings_by_status(client: httpx.Client) -> None:
    def ids(status: str) -> list[int]:
        return _ids(client.get("/v2/bookings", headers=BOOKINGS, params={"status": status}))

    assert ids("upcoming") == [123, 127, 124, 130]  # start ascending
    assert ids("past") == [121, 118]  # start descending
    assert ids("cancelled") == [126, 125, 122]  # cancelled and rejected, start descending
    assert ids("unconfirmed") == [124]
    assert ids("recurring") == []
    assert ids("upcoming,past") == [118, 121, 123, 127, 124, 130]
    statuses = {b["id"]: b["status"] for b in client.get("/v2/bookings", headers=BOOKINGS).json()["data"]}
    assert [statuses[i] for i in (123, 124, 125, 126)] == ["accepted", "pending", "cancelled", "rejected"]


def test_list_bookings_filters(client: httpx.Client) -> None:
    def ids(**params: Any) -> list[int]:
        return _ids(client.get("/v2/bookings", headers=BOOKINGS, params=params))

    assert ids(eventTypeId=42) == [118, 122, 123, 125]
    assert ids(eventTypeIds="7,42", status="upcoming") == [123, 124]
    assert ids(bookingUid=BOOKING_123_UID) == [123]
    assert ids(attendeeEmail="jane.smith@acme-corp.example") == [123]
    assert ids(attendeeEmail="tom.becker@acme-corp.example") == [123]  # guests are attendees
    assert ids(attendeeName="Luis Ortega") == [124]
    assert ids(teamId=5) == [127]
    assert ids(afterStart=_at(0, 0), beforeEnd=_at(4, 0)) == [123, 127]
    assert ids(sortStart="desc", take=2) == [126, 125]


def test_list_bookings_of_unknown_event_types_is_a_trpc_400(client: httpx.Client) -> None:
    response = client.get("/v2/bookings", headers=BOOKINGS, params={"eventTypeIds": "999"})
    error = _error(response, 400, "TRPCError", "The requested event-types do not exist.")
    assert "details" not in error


def test_list_bookings_rejects_invalid_query_with_validation_errors(client: httpx.Client, recorder: Recorder) -> None:
    with recorder.off_spec():
        response = client.get("/v2/bookings", headers=BOOKINGS, params={"status": "confirmed", "take": 500, "limit": 5})
    error = _error(response, 400, "BadRequestException", "Bad Request Exception")
    assert [(e["property"], e["constraints"]) for e in error["details"]["errors"]] == [
        ("status", {"isEnum": "Invalid status. Allowed are upcoming, recurring, past, cancelled, unconfirmed"}),
        ("take", {"max": "take must not be greater than 250"}),
    ]
    assert error["details"]["errors"][0]["target"] == {"status": ["confirmed"], "take": 500}  # `limit` is stripped


def test_bookings_are_scoped_to_the_caller(client: httpx.Client) -> None:
    work = {"Authorization": f"Bearer {WORK_KEY}", **BOOKINGS}
    assert _ids(client.get("/v2/bookings", headers=work)) == [130]
    # Alex owns team 5, and Cal.com shows team owners and admins their members' bookings too.
    assert 130 in _ids(client.get("/v2/bookings", headers=BOOKINGS))
    empty = client.get("/v2/bookings", headers={"Authorization": f"Bearer {PERSONAL_KEY}", **BOOKINGS}).json()
    assert empty["data"] == []
    assert (empty["pagination"]["totalPages"], empty["pagination"]["currentPage"]) == (0, 0)


def test_get_booking_by_uid(client: httpx.Client) -> None:
    booking = client.get(f"/v2/bookings/{BOOKING_123_UID}", headers=BOOKINGS).json()["data"]
    assert (booking["id"], booking["status"], booking["eventTypeId"], booking["duration"]) == (123, "accepted", 42, 30)
    assert booking["title"] == "Product Demo between Alex Morgan and Jane Smith"
    attendees = [(a["name"], a["email"]) for a in booking["attendees"]]
    assert attendees == [("Jane Smith", "jane.smith@acme-corp.example"), ("", "tom.becker@acme-corp.example")]
    assert booking["guests"] == ["tom.becker@acme-corp.example"]
    assert booking["location"] == f"https://app.cal.com/video/{BOOKING_123_UID}"
    assert booking["hosts"][0]["email"] == "alex.morgan@example.com"
    assert datetime.fromisoformat(booking["start"]) > datetime.now(timezone.utc)


def test_get_booking_is_404_for_an_unknown_uid_or_a_numeric_id(client: httpx.Client) -> None:
    for uid in ("no-such-uid", "123"):
        response = client.get(f"/v2/bookings/{uid}", headers=BOOKINGS)
        _error(response, 404, "NotFoundException", f"Booking with uid={uid} was not found in the database")


def test_a_booking_can_be_found_from_its_numeric_id_by_paging(client: httpx.Client) -> None:
    """v2 has no id filter: page through ``GET /v2/bookings`` (every status) until ``id`` matches, then use its uid."""
    skip, found = 0, None
    while found is None:
        page = client.get("/v2/bookings", headers=BOOKINGS, params={"take": 2, "skip": skip}).json()
        found = next((b for b in page["data"] if b["id"] == 123), None)
        assert found or page["pagination"]["hasNextPage"]
        skip += 2
    assert client.get(f"/v2/bookings/{found['uid']}", headers=BOOKINGS).json()["data"]["id"] == 123


# -- bookings: creating --------------------------------------------------------------------------


def test_create_booking_then_list_and_get_it(client: httpx.Client) -> None:
    body = _booking_body(
        bookingFieldsResponses={"notes": "Looking forward to it"},
        guests=["cfo@example.com"],
        metadata={"source": "kosmo"},
    )
    response = client.post("/v2/bookings", headers=BOOKINGS, json=body)
    assert response.status_code == 201, response.text
    created = response.json()["data"]
    assert (created["id"], created["status"], created["duration"], created["eventTypeId"]) == (131, "accepted", 30, 42)
    assert created["start"] == body["start"].replace("Z", ".000Z")
    assert created["title"] == "Product Demo between Alex Morgan and John Doe"
    assert created["description"] == "Looking forward to it"
    assert [a["email"] for a in created["attendees"]] == ["john.doe@example.com", "cfo@example.com"]
    assert created["metadata"] == {"source": "kosmo"}
    assert created["location"] == f"https://app.cal.com/video/{created['uid']}"
    assert re.fullmatch(r"[1-9A-HJ-NP-Za-km-z]{22}", created["uid"])
    assert client.get(f"/v2/bookings/{created['uid']}", headers=BOOKINGS).json()["data"] == created
    assert 131 in _ids(client.get("/v2/bookings", headers=BOOKINGS, params={"status": "upcoming"}))


def test_create_booking_on_a_recurring_event_type_books_the_series(client: httpx.Client) -> None:
    response = client.post("/v2/bookings", headers=BOOKINGS, json=_booking_body(eventTypeId=62))
    assert response.status_code == 201, response.text
    series = response.json()["data"]
    assert isinstance(series, list) and [b["id"] for b in series] == [131, 132, 133, 134]
    first = datetime.fromisoformat(series[0]["start"].replace("Z", "+00:00"))
    assert [b["start"] for b in series] == [
        (first + timedelta(weeks=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z") for n in range(4)]
    assert len({b["recurringBookingUid"] for b in series}) == 1 and len({b["uid"] for b in series}) == 4
    one = client.get(f"/v2/bookings/{series[1]['uid']}", headers=BOOKINGS).json()["data"]
    assert one == series[1]  # one occurrence's uid: that occurrence, an object
    whole = client.get(f"/v2/bookings/{series[0]['recurringBookingUid']}", headers=BOOKINGS).json()["data"]
    assert whole == series  # the series' uid: every occurrence, an array


def test_recurring_bookings_take_a_smaller_recurrence_count(client: httpx.Client, recorder: Recorder) -> None:
    fewer = client.post("/v2/bookings", headers=BOOKINGS, json=_booking_body(eventTypeId=62, recurrenceCount=2))
    assert [b["id"] for b in fewer.json()["data"]] == [131, 132]
    personal = {"Authorization": f"Bearer {PERSONAL_KEY}", **BOOKINGS}
    assert _ids(client.get("/v2/bookings", headers=personal, params={"status": "recurring"})) == [131, 132]
    with recorder.off_spec():
        more = client.post("/v2/bookings", headers=BOOKINGS,
                           json=_booking_body(eventTypeId=62, recurrenceCount=5, start=_at(60, 9)))
    _error(more, 400, "BadRequestException", "recurrenceCount 5 is more than the event type's 4 occurrences")


def test_create_booking_on_a_confirmation_event_type_is_pending(client: httpx.Client) -> None:
    attendee = {"name": "Jane Smith", "email": "jane@example.com", "timeZone": "America/New_York",
                "phoneNumber": "+15550123456"}
    body = _booking_body(eventTypeId=7, lengthInMinutes=60, bookingFieldsResponses={"company": "Acme Corp"},
                         attendee=attendee)
    created = client.post("/v2/bookings", headers=BOOKINGS, json=body).json()["data"]
    assert (created["status"], created["duration"]) == ("pending", 60)
    assert created["bookingFieldsResponses"]["company"] == "Acme Corp"
    assert created["attendees"][0]["phoneNumber"] == "+15550123456"
    assert created["location"].startswith("https://meet.google.com/")
    assert created["id"] in _ids(client.get("/v2/bookings", headers=BOOKINGS, params={"status": "unconfirmed"}))


def test_create_booking_by_slug_and_round_robin_host(client: httpx.Client) -> None:
    by_user = _booking_body(eventTypeId=None, username="alex-morgan", eventTypeSlug="product-demo")
    assert client.post("/v2/bookings", headers=BOOKINGS, json=_without_nulls(by_user)).status_code == 201
    # Alex already hosts booking 127 at this time, so the round robin picks Jordan.
    team = _booking_body(eventTypeId=None, teamSlug="acme-sales", eventTypeSlug="discovery-call", start=_at(3, 13))
    created = client.post("/v2/bookings", headers=BOOKINGS, json=_without_nulls(team)).json()["data"]
    assert (created["eventTypeId"], created["hosts"][0]["username"]) == (311, "jordan-lee")


INVALID_BODIES = [
    pytest.param(
        _booking_body(attendee={"email": "john.doe@example.com"}),
        "attendee property is wrong, name property is wrong,name must be a string , "
        "timeZone property is wrong,timeZone must be a valid IANA time-zone ",
        id="attendee-without-name-and-time-zone",
    ),
    pytest.param(
        _booking_body(attendee={"name": "John Doe", "timeZone": "Mars/Olympus"}),
        "attendee property is wrong, timeZone property is wrong,timeZone must be a valid IANA time-zone , "
        "attendee email or phone property is wrong,"
        "Attendee must have at least one contact method (email or phone number) ",
        id="bad-time-zone-and-no-contact",
    ),
    pytest.param(
        _booking_body(end="2030-01-01T10:30:00Z", responses={"name": "John"}),
        "end property is wrong,property end should not exist , "
        "responses property is wrong,property responses should not exist ",
        id="v1-style-fields",
    ),
    pytest.param(
        {"start": "tomorrow", "attendee": {"name": "John", "timeZone": "UTC", "email": "j@example.com"}},
        "start property is wrong,start must be a valid ISO 8601 date string , "
        "eventTypeId or eventTypeSlug + username property is wrong,"
        "Either eventTypeId or eventTypeSlug + username or eventTypeSlug + teamSlug must be provided ",
        id="bad-start-no-event-type",
    ),
    pytest.param(
        _booking_body(lengthInMinutes=0),
        "lengthInMinutes property is wrong,lengthInMinutes must not be less than 1 ",
        id="zero-length",
    ),
]


@pytest.mark.parametrize(("body", "message"), INVALID_BODIES)
def test_create_booking_rejects_invalid_bodies(
    client: httpx.Client, recorder: Recorder, body: dict[str, Any], message: str
) -> None:
    with recorder.off_spec():
        response = client.post("/v2/bookings", headers=BOOKINGS, json=body)
    error = _error(response, 400, "BadRequestException", message)
    assert error["details"] == {"message": message, "error": "Bad Request", "statusCode": 400}


BUSINESS_ERRORS = [
    pytest.param({"eventTypeId": 999}, 404, "Event type with id 999 not found.", id="unknown-event-type"),
    pytest.param(
        {"eventTypeId": None, "username": "alex-morgan", "eventTypeSlug": "nope"},
        404,
        "Event type with slug nope belonging to user alex-morgan not found.",
        id="unknown-slug",
    ),
    pytest.param(
        {"lengthInMinutes": 45},
        400,
        "Can't specify 'lengthInMinutes' because event type does not have multiple possible lengths. "
        "Please, remove the 'lengthInMinutes' field from the request.",
        id="length-not-variable",
    ),
    pytest.param(
        {"eventTypeId": 7, "lengthInMinutes": 50, "bookingFieldsResponses": {"company": "Acme"}},
        400,
        "Provided 'lengthInMinutes' is not one of the possible lengths for the event type. "
        "The possible lengths are: 30, 45, 60",
        id="length-not-allowed",
    ),
    pytest.param(
        {"eventTypeId": 7},
        400,
        "Missing required booking field response: company - it is required by the event type booking fields, "
        "but missing in the bookingFieldsResponses. You can fetch the event type with ID 7 to see the required fields.",
        id="missing-field",
    ),
    pytest.param(
        {"location": {"type": "integration", "integration": "zoom"}},
        400,
        "Booking location with integration zoom not valid for event type with id=42. The event type has following "
        "integrations: cal-video, and only these integrations are allowed for booking location.",
        id="wrong-location",
    ),
    # (days, hour) starts, made into times when the test runs: at collection, the day may be another's
    pytest.param({"start": (-1, 9)}, 400, "Attempting to book a meeting in the past.", id="past"),
    pytest.param(
        {"start": (2, 9)}, 400, "User either already has booking at this time or is not available", id="conflict"
    ),
]


@pytest.mark.parametrize(("overrides", "status", "message"), BUSINESS_ERRORS)
def test_create_booking_business_errors(
    client: httpx.Client, overrides: dict[str, Any], status: int, message: str
) -> None:
    overrides = {key: _at(*value) if isinstance(value, tuple) else value for key, value in overrides.items()}
    body = _without_nulls(_booking_body(**overrides))
    code = "NotFoundException" if status == 404 else "BadRequestException"
    _error(client.post("/v2/bookings", headers=BOOKINGS, json=body), status, code, message)


def test_create_booking_respects_the_minimum_notice(client: httpx.Client) -> None:
    soon = (datetime.now(timezone.utc) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = client.post("/v2/bookings", headers=BOOKINGS, json=_booking_body(start=soon))
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("The event type can't be booked at the \"start\" time")


def test_a_rejected_booking_does_not_block_its_slot(client: httpx.Client) -> None:
    rejected_slot = _booking_body(eventTypeId=7, start=_at(8, 15), bookingFieldsResponses={"company": "Acme"})
    assert client.post("/v2/bookings", headers=BOOKINGS, json=rejected_slot).status_code == 201


# -- faults --------------------------------------------------------------------------------------


def test_latency_fault_is_logged_and_then_answered(client: httpx.Client, sim: CalComSimulator) -> None:
    sim.inject(Fault("latency", seconds=0.01, path=r"^/v2/me$"))
    assert client.get("/v2/me").status_code == 200
    assert [r.url.path for r in sim.requests] == ["/v2/me"]


def test_rate_limit_fault_is_a_throttler_429(client: httpx.Client, sim: CalComSimulator, recorder: Recorder) -> None:
    sim.inject(Fault("status", status=429, retry_after=60, method="POST"))
    with recorder.off_spec():
        response = client.post("/v2/bookings", headers=BOOKINGS, json=_booking_body())
    error = _error(response, 429, "ThrottlerException", "ThrottlerException: Too Many Requests")
    assert error["details"] == "ThrottlerException: Too Many Requests"
    assert response.headers["Retry-After"] == "60"
    assert response.headers["X-RateLimit-Limit-Default"] == "120"
    assert response.headers["X-RateLimit-Remaining-Default"] == "0"
    assert client.post("/v2/bookings", headers=BOOKINGS, json=_booking_body()).status_code == 201  # once only


def test_server_error_faults(client: httpx.Client, sim: CalComSimulator, recorder: Recorder) -> None:
    sim.inject(Fault("status", status=503))
    sim.inject(Fault("status", status=500))
    with recorder.off_spec():
        unavailable = client.get("/v2/me")
        crashed = client.get("/v2/me")
    _error(unavailable, 503, "ServiceUnavailableException", "Injected fault: HTTP 503")
    assert crashed.status_code == 500
    assert crashed.json() == {"statusCode": 500, "message": "Internal server error"}  # Nest's bare body


def test_malformed_body_fault(client: httpx.Client, sim: CalComSimulator, recorder: Recorder) -> None:
    sim.inject(Fault("malformed", body=b'{"status": "success", "data": {'))
    with recorder.off_spec():
        response = client.get("/v2/me")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_dropped_connection_fault(client: httpx.Client, sim: CalComSimulator) -> None:
    sim.inject(Fault("drop", path=r"^/v2/teams$"))
    with pytest.raises(httpx.TransportError):
        client.get("/v2/teams")
    assert client.get("/v2/teams").status_code == 200
