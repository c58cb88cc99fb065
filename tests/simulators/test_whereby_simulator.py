"""The Whereby simulator over real loopback sockets, checked against the official OpenAPI spec.

Every exchange a test makes is validated against ``tests/data/specs/whereby.json`` when
the test finishes, except those a test marks as deliberately off-spec (invalid
input it sends on purpose, injected faults). Known differences between the spec
and Whereby's documented behaviour are listed in ``SPEC QUIRK`` comments below.
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
from kosmo_integrations.whereby.simulator import DEMO_ACCOUNTS, WherebySimulator
from openapi_core import Config, OpenAPI

from kosmo_runtime import Fault
from tests.contract.openapi import SPECS, SpecChecker
from tests.support import Switchboard, serving

SERVER = "https://api.whereby.dev/v1"
KEY = DEMO_ACCOUNTS["default"]["api_key"]
MY_ROOM = "/my-meeting-room"


def _repair(node: Any) -> None:
    """Mechanical repairs so openapi-core can read the official document; the meaning is unchanged.

    SPEC QUIRK 1: insights fields ``rating``, ``totalRatings``, ``tags`` and ``comment`` use
    OpenAPI 3.1's ``type: [T, "null"]`` inside an ``openapi: 3.0.0`` document, on which
    openapi-core's 3.0 validator crashes; rewritten as ``type: T, nullable: true``.
    SPEC QUIRK 2: the insights query parameters (``roomName``, ``roomSessionId``, ``externalId``,
    ``sortBy``, ``cursor``, ...) declare no ``schema``, which OpenAPI requires, so openapi-core
    reports them missing even when sent; they are given ``schema: {type: string}``.
    """
    if isinstance(node, dict):
        if isinstance(node.get("type"), list):
            types = node["type"]
            node["type"] = next(t for t in types if t != "null")
            node["nullable"] = "null" in types
        if node.get("in") in ("query", "path") and "schema" not in node and "content" not in node:
            node["schema"] = {"type": "string"}
        for value in node.values():
            _repair(value)
    elif isinstance(node, list):
        for value in node:
            _repair(value)


@pytest.fixture(scope="module")
def spec() -> SpecChecker:
    checker = SpecChecker("whereby.json", SERVER)
    document = json.loads((SPECS / "whereby.json").read_text())
    _repair(document)
    document["servers"] = [{"url": SERVER}]
    checker.openapi = OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))
    return checker


def _known_quirk(problem: str, request: httpx.Request, response: httpx.Response) -> bool:
    """Whether a spec violation is one where Whereby's documented behaviour differs from the spec."""
    # SPEC QUIRK 3: `cursor` is typed as a non-nullable string, but the docs of every list
    # endpoint say "If there are no more results, the value returned is `null`".
    located = re.findall(r"^  at (\S+):", problem, flags=re.M)
    if located and all(where == "cursor" for where in located) and response.json().get("cursor") is None:
        return True
    # SPEC QUIRK 4: no operation documents a 400, yet invalid input (a bad `limit`, an
    # unknown cursor, a body without `endDate`...) cannot be anything else.
    if problem.startswith("ResponseNotFound: Unknown response http status: 400"):
        return True
    # SPEC QUIRK 5: /insights/participants marks `roomSessionId` required, while its own
    # description says "Either roomSessionId or externalId is required".
    return "Missing required query parameter: roomSessionId" in problem and "externalId" in request.url.params


class Recorder:
    """The exchanges of one test, with the ones deliberately off-spec marked."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[httpx.Request, httpx.Response, bool]] = []
        self._off_spec = False

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.exchanges.append((response.request, response, not self._off_spec))

    @contextmanager
    def off_spec(self) -> Iterator[None]:
        """Exchanges inside are deliberately invalid (bad input, injected faults): not spec-checked."""
        self._off_spec = True
        try:
            yield
        finally:
            self._off_spec = False

    def violations(self, spec: SpecChecker) -> list[str]:
        found = []
        for request, response, checked in self.exchanges:
            if not checked:
                continue
            problems = spec.request_errors(request) + spec.response_errors(request, response)
            found += [
                f"{request.method} {request.url} -> {response.status_code}: {problem}"
                for problem in problems
                if not _known_quirk(problem, request, response)
            ]
        return found



@pytest.fixture(scope="module")
def switchboard() -> Iterator[Switchboard[WherebySimulator]]:
    with serving(WherebySimulator) as board:
        yield board


@pytest.fixture
def sim(switchboard: Switchboard[WherebySimulator]) -> WherebySimulator:
    return switchboard.reset()


@pytest.fixture
def recorder(spec: SpecChecker) -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    violations = recorder.violations(spec)
    assert not violations, "exchanges that do not conform to whereby.json:\n" + "\n".join(violations)


@pytest.fixture
def client(switchboard: Switchboard[WherebySimulator], sim: WherebySimulator, recorder: Recorder) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=switchboard.url,
        headers={"Authorization": f"Bearer {KEY}"},
        event_hooks={"response": [recorder]},
        timeout=5,
    ) as client:
        yield client


def _future(days: int = 1) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _all_meetings(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    meetings: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get("/v1/meetings", params={**params, **({"cursor": cursor} if cursor else {})}).json()
        meetings += page["results"]
        cursor = page["cursor"]
        if cursor is None:
            return meetings


# -- auth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer"}],
    ids=["missing", "unknown-key", "not-bearer", "empty-token"],
)
def test_a_missing_or_wrong_key_is_401_with_whereby_error_body(client: httpx.Client, headers: dict[str, str]) -> None:
    client.headers.pop("Authorization")
    response = client.get("/v1/meetings", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Access token is missing or invalid"}


def test_every_demo_account_key_is_accepted(client: httpx.Client) -> None:
    for account in DEMO_ACCOUNTS.values():
        response = client.get("/v1/meetings", headers={"Authorization": f"Bearer {account['api_key']}"})
        assert response.status_code == 200


def test_explicit_credentials_replace_the_demo_keys(switchboard: Switchboard[WherebySimulator], client: httpx.Client) -> None:
    switchboard.target = WherebySimulator(credentials=["custom-key"])
    assert client.get("/v1/meetings").status_code == 401
    assert client.get("/v1/meetings", headers={"Authorization": "Bearer custom-key"}).status_code == 200


# -- meetings: list and pagination ---------------------------------------------------------


def test_list_meetings_returns_every_seeded_meeting_oldest_first(client: httpx.Client) -> None:
    response = client.get("/v1/meetings")
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"results", "cursor"}
    assert page["cursor"] is None  # default limit 50 > 18 seeded meetings
    meetings = page["results"]
    assert len(meetings) == 18
    assert meetings[0]["meetingId"] == "71234501"
    assert [m["startDate"] for m in meetings] == sorted(m["startDate"] for m in meetings)
    for meeting in meetings:
        assert set(meeting) == {"meetingId", "roomName", "roomUrl", "startDate", "endDate"}
        assert meeting["roomName"].startswith("/")
        assert meeting["roomUrl"] == f"https://kosmo-demo.whereby.com{meeting['roomName']}"
        assert meeting["startDate"].endswith("Z") and meeting["endDate"].endswith("Z")


def test_seeded_meetings_cover_examples_january_2025_past_and_future(client: httpx.Client) -> None:
    meetings = {m["meetingId"]: m for m in client.get("/v1/meetings").json()["results"]}
    assert meetings["abc123"]["roomName"].startswith("/product-review-")
    assert [m["meetingId"] for m in meetings.values() if m["roomName"] == MY_ROOM] == ["84417203"]
    assert meetings["71234588"]["startDate"] == "2025-01-15T10:00:00.000Z"
    assert sum(m["startDate"].startswith("2025-01") for m in meetings.values()) == 4
    now = datetime.now(timezone.utc)
    ends = [_parse(m["endDate"]) for m in meetings.values()]
    assert sum(end < now for end in ends) >= 5 and sum(end > now for end in ends) >= 5
    assert all(_parse(m["startDate"]) <= now for m in meetings.values())


def test_cursor_pagination_walks_every_meeting_once(client: httpx.Client) -> None:
    first = client.get("/v1/meetings", params={"limit": 5}).json()
    assert len(first["results"]) == 5
    assert re.fullmatch(r"[0-9a-f]{32}", first["cursor"])
    walked = _all_meetings(client, limit=5)
    assert len(walked) == 18
    assert len({m["meetingId"] for m in walked}) == 18
    assert walked[:5] == first["results"]


def test_seeded_example_cursors_are_valid_positions(client: httpx.Client) -> None:
    everything = client.get("/v1/meetings").json()["results"]
    after_ten = client.get("/v1/meetings", params={"cursor": "next_page_cursor", "limit": 10}).json()
    assert after_ten["results"] == everything[10:]
    assert after_ten["cursor"] is None
    one = client.get("/v1/meetings", params={"cursor": "example_cursor", "limit": 1}).json()
    assert one["results"] == everything[1:2]
    following = client.get("/v1/meetings", params={"cursor": one["cursor"], "limit": 1}).json()
    assert following["results"] == everything[2:3]


def test_an_unknown_or_foreign_cursor_is_400(client: httpx.Client) -> None:
    response = client.get("/v1/meetings", params={"cursor": "8f4031bfc7640c5f267b11b6fe0c2507"})
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid cursor"}
    sessions = client.get("/v1/insights/participants", params={"roomSessionId": _my_room_all_hands(client)})
    foreign = client.get("/v1/meetings", params={"cursor": sessions.json()["cursor"]})
    assert foreign.status_code == 400


@pytest.mark.parametrize("limit", ["0", "101", "ten", "-1"])
def test_limit_outside_1_to_100_is_400(client: httpx.Client, recorder: Recorder, limit: str) -> None:
    with recorder.off_spec():
        response = client.get("/v1/meetings", params={"limit": limit})
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


def test_fields_adds_host_and_viewer_room_urls(client: httpx.Client) -> None:
    listed = client.get("/v1/meetings", params={"fields": "hostRoomUrl,viewerRoomUrl", "limit": 2}).json()["results"]
    for meeting in listed:
        assert meeting["hostRoomUrl"].startswith(f"{meeting['roomUrl']}?roomKey=")
        assert meeting["viewerRoomUrl"].startswith(f"{meeting['roomUrl']}?roomKey=")
        assert meeting["hostRoomUrl"] != meeting["viewerRoomUrl"]
    only_host = client.get("/v1/meetings/abc123", params={"fields": "hostRoomUrl"}).json()
    assert "hostRoomUrl" in only_host and "viewerRoomUrl" not in only_host


def test_an_unknown_field_is_400(client: httpx.Client, recorder: Recorder) -> None:
    with recorder.off_spec():
        response = client.get("/v1/meetings/abc123", params={"fields": "hostRoomUrl,secret"})
    assert response.status_code == 400


# -- meetings: get, create, delete -------------------------------------------------------------


def test_get_seeded_meeting_abc123(client: httpx.Client) -> None:
    response = client.get("/v1/meetings/abc123")
    assert response.status_code == 200
    meeting = response.json()
    assert meeting["meetingId"] == "abc123"
    assert meeting["roomUrl"] == f"https://kosmo-demo.whereby.com{meeting['roomName']}"
    assert _parse(meeting["startDate"]) < _parse(meeting["endDate"]) < datetime.now(timezone.utc)


def test_an_unknown_meeting_is_404(client: httpx.Client) -> None:
    response = client.get("/v1/meetings/9cf691bf-f2d5-4420-bda9-ee8607bb558b")
    assert response.status_code == 404
    assert response.json() == {"error": "The requested resource doesn't exist"}


def test_create_meeting_is_201_and_then_listed_and_fetchable(client: httpx.Client) -> None:
    end = _future(2)
    response = client.post(
        "/v1/meetings",
        json={"endDate": end, "startDate": "2020-01-01T00:00:00Z", "roomNamePrefix": "demo-", "roomMode": "group",
              "isLocked": True, "fields": ["hostRoomUrl"]},
    )
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"meetingId", "roomName", "roomUrl", "startDate", "endDate", "hostRoomUrl"}
    assert re.fullmatch(r"/demo-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", created["roomName"])
    assert created["roomUrl"] == f"https://kosmo-demo.whereby.com{created['roomName']}"
    assert created["endDate"] == end
    # startDate is deprecated and ignored: the meeting starts at request time.
    assert abs(_parse(created["startDate"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)

    fetched = client.get(f"/v1/meetings/{created['meetingId']}", params={"fields": "hostRoomUrl"}).json()
    assert fetched == created
    listed = _all_meetings(client, limit=100)
    assert listed[-1]["meetingId"] == created["meetingId"]
    assert len(listed) == 19


def test_create_meeting_with_an_offset_end_date_answers_in_utc(client: httpx.Client) -> None:
    end = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0)
    local = end.astimezone(timezone(timedelta(hours=-5))).isoformat()
    created = client.post("/v1/meetings", json={"endDate": local}).json()
    assert created["endDate"] == end.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_create_meeting_human_short_and_viewer_mode_template(client: httpx.Client) -> None:
    short = client.post("/v1/meetings", json={"endDate": _future(), "roomNamePattern": "human-short"}).json()
    assert re.fullmatch(r"/[a-z0-9]{6}", short["roomName"])
    viewer = client.post("/v1/meetings", json={"endDate": _future(), "templateType": "viewerMode"}).json()
    assert {"hostRoomUrl", "viewerRoomUrl"} <= set(viewer)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"roomMode": "group"},
        {"endDate": "tomorrow"},
        {"endDate": "2025-01-15T11:00:00Z"},
        {"endDate": "__future__", "roomMode": "huge"},
        {"endDate": "__future__", "roomNamePattern": "words"},
        {"endDate": "__future__", "roomNamePrefix": "x" * 40},
        {"endDate": "__future__", "roomNamePrefix": "Team"},
        {"endDate": "__future__", "fields": ["hostRoomUrl", "password"]},
        {"endDate": "__future__", "isLocked": "yes"},
        {"endDate": "__future__", "recording": {"type": "cloud"}},
        {"endDate": "__future__", "streaming": {"destination": {"url": "rtmp://a"}, "startTrigger": "later"}},
        [{"endDate": "__future__"}],
    ],
    ids=["empty", "no-end-date", "bad-date", "past-end-date", "room-mode", "pattern", "long-prefix",
         "uppercase-prefix", "fields", "is-locked", "recording-missing-keys", "streaming-trigger", "array"],
)
def test_create_meeting_rejects_invalid_bodies_with_400(client: httpx.Client, recorder: Recorder, body: Any) -> None:
    payload = json.loads(json.dumps(body).replace("__future__", _future()))
    with recorder.off_spec():
        response = client.post("/v1/meetings", json=payload)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


def test_create_meeting_rejects_a_non_json_body_and_creates_nothing(client: httpx.Client, recorder: Recorder) -> None:
    with recorder.off_spec():
        response = client.post("/v1/meetings", content=b"endDate=2099-01-01", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert len(client.get("/v1/meetings").json()["results"]) == 18


def test_delete_meeting_is_204_then_gone_and_idempotent(client: httpx.Client) -> None:
    response = client.delete("/v1/meetings/abc123")
    assert response.status_code == 204
    assert response.content == b""
    assert client.get("/v1/meetings/abc123").status_code == 404
    assert "abc123" not in {m["meetingId"] for m in client.get("/v1/meetings").json()["results"]}
    assert client.delete("/v1/meetings/abc123").status_code == 204
    assert client.delete("/v1/meetings/never-existed").status_code == 204


# -- insights --------------------------------------------------------------------------------------


def _my_room_all_hands(client: httpx.Client) -> str:
    sessions = client.get("/v1/insights/room-sessions", params={"roomName": MY_ROOM}).json()["results"]
    return max(sessions, key=lambda s: s["totalUniqueParticipants"])["roomSessionId"]


def test_room_insights_list_rooms_with_sessions(client: httpx.Client) -> None:
    rooms = client.get("/v1/insights/rooms").json()
    assert rooms["cursor"] is None
    by_name = {room["roomName"]: room for room in rooms["results"]}
    abc123_room = client.get("/v1/meetings/abc123").json()["roomName"]
    assert set(by_name) == {MY_ROOM, abc123_room, client.get("/v1/meetings/71234588").json()["roomName"]}
    mine = by_name[MY_ROOM]
    assert mine["totalSessions"] == 3
    assert mine["totalUniqueParticipants"] == 12
    assert mine["totalRecorderMinutes"] == 65 and mine["totalUniqueRecorders"] == 1
    assert mine["firstSessionStartedAt"] < mine["lastSessionStartedAt"]
    assert mine["rating"] == 4.5 and mine["totalRatings"] == 2


def test_room_insights_filters_and_sorting(client: httpx.Client) -> None:
    def names(**params: str) -> list[str]:
        return [room["roomName"] for room in client.get("/v1/insights/rooms", params=params).json()["results"]]

    assert names(**{"roomName[exact]": MY_ROOM}) == [MY_ROOM]
    assert names(**{"roomName[startsWith]": "/product-review-"})[0].startswith("/product-review-")
    assert names(**{"roomName[contains]": "kickoff"})[0].startswith("/client-kickoff-")
    assert len(names(**{"createdAt[from]": "2025-01-01T00:00:00Z", "createdAt[to]": "2025-02-01T00:00:00Z"})) == 1
    assert names(sortBy="totalSessions:desc")[0] == MY_ROOM
    assert names(sortBy="totalSessions:asc")[-1] == MY_ROOM


def test_room_insights_reject_an_unknown_sort_field(client: httpx.Client) -> None:
    response = client.get("/v1/insights/rooms", params={"sortBy": "popularity:desc"})
    assert response.status_code == 400


def test_room_sessions_of_my_meeting_room_and_abc123(client: httpx.Client) -> None:
    sessions = client.get("/v1/insights/room-sessions", params={"roomName": MY_ROOM}).json()
    assert [s["totalUniqueParticipants"] for s in sessions["results"]] == [3, 12, 2]
    for session in sessions["results"]:
        assert session["roomName"] == MY_ROOM
        assert session["startedAt"] == session["createdAt"] < session["endedAt"] == session["endAt"]
    abc123_room = client.get("/v1/meetings/abc123").json()["roomName"]
    two = client.get("/v1/insights/room-sessions", params={"roomName": abc123_room}).json()["results"]
    assert len(two) == 2
    first = client.get(
        "/v1/insights/room-sessions", params={"roomName": abc123_room, "roomSessionId": two[0]["roomSessionId"]}
    ).json()["results"]
    assert first == two[:1]


def test_room_sessions_need_a_room_name_and_an_unknown_room_has_none(client: httpx.Client, recorder: Recorder) -> None:
    with recorder.off_spec():
        assert client.get("/v1/insights/room-sessions").status_code == 400
    assert client.get("/v1/insights/room-sessions", params={"roomName": "/nope"}).json() == {"results": [], "cursor": None}


def test_participants_page_by_ten_and_carry_names_and_times(client: httpx.Client) -> None:
    session_id = _my_room_all_hands(client)
    first = client.get("/v1/insights/participants", params={"roomSessionId": session_id}).json()
    assert len(first["results"]) == 10 and first["cursor"]
    rest = client.get("/v1/insights/participants", params={"roomSessionId": session_id, "cursor": first["cursor"]}).json()
    assert len(rest["results"]) == 2 and rest["cursor"] is None
    everyone = first["results"] + rest["results"]
    assert len({p["participantId"] for p in everyone}) == 12
    assert everyone[0]["roleName"] == "host" and everyone[0]["displayName"] == "Maya Lindqvist"
    assert all(p["joinedAt"] < p["leftAt"] and p["roomSessionId"] == session_id for p in everyone)
    assert [p["joinedAt"] for p in everyone] == sorted(p["joinedAt"] for p in everyone)


def test_participants_by_external_id_and_sorted(client: httpx.Client) -> None:
    visits = client.get("/v1/insights/participants", params={"externalId": "client-2201", "sortBy": "joinedAt:desc"})
    results = visits.json()["results"]
    assert [p["displayName"] for p in results] == ["Dana Whitfield"] * 3
    assert [p["joinedAt"] for p in results] == sorted((p["joinedAt"] for p in results), reverse=True)


def test_participants_need_a_session_or_external_id(client: httpx.Client, recorder: Recorder) -> None:
    with recorder.off_spec():
        response = client.get("/v1/insights/participants")
    assert response.status_code == 400


# -- faults ------------------------------------------------------------------------------------------


def test_latency_fault_delays_then_answers_normally(client: httpx.Client, sim: WherebySimulator) -> None:
    sim.inject(Fault("latency", seconds=0.01, path=r"^/v1/meetings/abc123$"))
    assert client.get("/v1/meetings/abc123").status_code == 200
    assert [r.url.path for r in sim.requests] == ["/v1/meetings/abc123"]
    assert client.get("/v1/meetings/abc123").status_code == 200


def test_injected_429_uses_whereby_throttle_body_and_headers(client: httpx.Client, sim: WherebySimulator) -> None:
    sim.inject(Fault("status", status=429, retry_after=2, method="POST"))
    assert client.get("/v1/meetings").status_code == 200
    response = client.post("/v1/meetings", json={"endDate": _future()})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.headers["X-RateLimit-Limit"] == "1000"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["X-RateLimit-Reset"].endswith("GMT")
    body = response.json()
    assert body["error"].startswith("Rate limit active for throttle key: organization:")
    assert 0 < body["data"]["msLeft"] <= 60_000
    assert client.post("/v1/meetings", json={"endDate": _future()}).status_code == 201


def test_injected_503_is_answered_with_the_error_body(client: httpx.Client, recorder: Recorder, sim: WherebySimulator) -> None:
    sim.inject(Fault("status", status=503))
    with recorder.off_spec():
        response = client.get("/v1/meetings")
    assert response.status_code == 503
    assert set(response.json()) == {"error"}


def test_injected_malformed_body_is_not_json(client: httpx.Client, recorder: Recorder, sim: WherebySimulator) -> None:
    sim.inject(Fault("malformed"))
    with recorder.off_spec():
        response = client.get("/v1/meetings")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_injected_drop_is_a_transport_error(client: httpx.Client, sim: WherebySimulator) -> None:
    sim.inject(Fault("drop"))
    with pytest.raises(httpx.TransportError):
        client.get("/v1/meetings")
    assert client.get("/v1/meetings").status_code == 200
