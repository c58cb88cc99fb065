"""The Whereby integration end to end: Lua scripts -> handlers -> real loopback HTTP -> the Whereby simulator.

One demo (simulator + accounts) serves the whole module; tests that change state create
their own rooms. At module teardown every request the simulator received is checked
against the official ``whereby.json`` (see ``contract``).

The demo runs on a simulated clock starting at ``START``, long after the seed's January 2025
meetings (the default demo date, ``DEMO_START``, is inside that January): so those meetings
are history and the reference's 2025 dates have passed, which is what these tests are about.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from kosmo_integrations.whereby.simulator import DEMO_ACCOUNTS, WherebySimulator

from kosmo_runtime import Fault
from kosmo_runtime._demo import Demo
from kosmo_runtime._http import RetryPolicy
from kosmo_runtime._result import RunResult
from kosmo_runtime._runtime import Runtime
from tests.contract.openapi import SpecChecker
from tests.simulators.test_whereby_simulator import spec  # noqa: F401  (the repaired whereby.json, a fixture)

WB = "app.integrations.whereby"
KEYS = {name: fields["api_key"] for name, fields in DEMO_ACCOUNTS.items()}
JANUARY_2025 = ["71234501", "71234588", "71239012", "71240377"]
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo(["whereby"], start=START) as started:
        yield started


@pytest.fixture(scope="module")
def sim(demo: Demo) -> WherebySimulator:
    simulator = demo.simulators["whereby"]
    assert isinstance(simulator, WherebySimulator)
    return simulator


@pytest.fixture(scope="module")
def runtime(demo: Demo) -> Iterator[Runtime]:
    # Client-side rate limiting off: with the no-op sleep, Whereby's 100-point bucket would never refill.
    for fields in demo.accounts_data["whereby"].values():
        fields["rate_limit"] = False
    with demo.runtime(retry=RetryPolicy(sleep=lambda seconds: None)) as started:
        yield started


@pytest.fixture(scope="module", autouse=True)
def contract(sim: WherebySimulator, spec: SpecChecker) -> Iterator[None]:  # noqa: F811
    """At teardown: every request the module sent conforms to the official spec.

    Only requests are checked (the demo server does not keep responses); the simulator's own
    tests check its responses. Known spec quirks are repaired by the imported ``spec`` fixture.
    """
    yield
    problems = [f"{r.method} {r.url}: {p}" for r in sim.requests for p in spec.request_errors(r)]
    assert not problems, "requests that do not conform to whereby.json:\n" + "\n".join(problems)


@pytest.fixture(autouse=True)
def _no_leftover_faults(sim: WherebySimulator) -> Iterator[None]:
    yield
    sim.clear_faults()


def run(runtime: Runtime, source: str, **options: Any) -> RunResult:
    return runtime.run(source, **options)


def ok(runtime: Runtime, source: str, **options: Any) -> Any:
    """Run ``source``; it must succeed. Returns its result."""
    result = run(runtime, source, **options)
    assert result.ok, result.error.to_dict() if result.error else None
    return result.result


def failed(runtime: Runtime, source: str, **options: Any) -> dict[str, Any]:
    """Run ``source``; it must fail. Returns the error as a dict."""
    result = run(runtime, source, **options)
    assert not result.ok and result.error is not None, result.result
    return result.error.to_dict()


def sent_since(sim: WherebySimulator, mark: int) -> list[httpx.Request]:
    return sim.requests[mark:]


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def body(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content)


def create(runtime: Runtime, args: str = "{}") -> dict[str, Any]:
    return ok(runtime, f"return {WB}.create_room({args})")


# -- list_rooms -------------------------------------------------------------------------


def test_list_rooms_reshapes_meetings_and_keeps_whereby_fields(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    page = ok(runtime, f"return {WB}.list_rooms({{limit = 5}})")
    assert [r["meetingId"] for r in page["data"]] == ["71234501", "71234588", "71239012", "71240377", "84417203"]
    room = page["data"][4]
    assert room["roomName"] == "my-meeting-room" and room["roomPath"] == "/my-meeting-room"
    assert room["meetingUrl"] == room["roomUrl"] == "https://kosmo-demo.whereby.com/my-meeting-room"
    assert room["id"] == "84417203" and room["endDate"].endswith("Z")
    assert page["results"][4]["roomName"] == "/my-meeting-room"
    assert page["meta"]["nextCursor"] == page["cursor"] and page["cursor"]
    [request] = sent_since(sim, mark)
    assert request.method == "GET" and request.url.path == "/v1/meetings" and dict(request.url.params) == {"limit": "5"}


def test_list_rooms_follows_cursors_to_the_last_page(runtime: Runtime, sim: WherebySimulator) -> None:
    names = ok(runtime, f"""
        local names, cursor = {{}}, nil
        repeat
            local page = {WB}.list_rooms({{limit = 7, cursor = cursor}})
            for _, room in ipairs(page.data) do names[#names + 1] = room.roomName end
            cursor = page.meta.nextCursor
        until cursor == json.null
        return names
    """)
    listed = [m["roomName"].lstrip("/") for m in sim._meetings.values()]
    assert names == listed and len(names) >= 18


def test_list_rooms_seeded_cursors_and_full_name(runtime: Runtime) -> None:
    page = ok(runtime, f'return {WB}.list_rooms({{limit = 10, cursor = "next_page_cursor"}})')
    assert page["data"][0]["meetingId"] == "88012376"
    example = ok(runtime, f'return {WB}.whereby_list_rooms({{limit = 1, cursor = "example_cursor"}})')
    assert [r["meetingId"] for r in example["data"]] == ["71234588"] and example["meta"]["nextCursor"]


@pytest.mark.parametrize(("args", "param"), [
    ("{limit = 0}", "limit"), ("{limit = 101}", "limit"), ('{limit = "ten"}', "limit"),
    ("{cursor = 5}", "cursor"), ("{page = 2}", "page"),
])
def test_list_rooms_validation(runtime: Runtime, sim: WherebySimulator, args: str, param: str) -> None:
    mark = len(sim.requests)
    error = failed(runtime, f"return {WB}.list_rooms({args})")
    assert error["code"] == "invalid_argument" and error["param"] == param
    assert sent_since(sim, mark) == []


def test_list_rooms_unknown_cursor_is_whereby_400(runtime: Runtime) -> None:
    error = failed(runtime, f'return {WB}.list_rooms({{cursor = "not-a-cursor"}})')
    assert error["code"] == "upstream_error" and error["status"] == 400
    assert "Invalid cursor" in error["message"]


def test_list_rooms_429_is_retried_once_then_succeeds(runtime: Runtime, sim: WherebySimulator) -> None:
    sim.inject(Fault("status", status=429, retry_after=0, path="/v1/meetings$"))
    result = run(runtime, f"return {WB}.list_rooms({{limit = 1}})")
    assert result.ok and result.result["data"][0]["meetingId"] == "71234501"
    assert result.calls[0].retries == 1


def test_list_rooms_persistent_429_and_503_end_in_structured_errors(runtime: Runtime, sim: WherebySimulator) -> None:
    sim.inject(Fault("status", status=429, retry_after=0, times=None))
    error = failed(runtime, f"return {WB}.list_rooms({{}})")
    assert error["code"] == "rate_limited" and error["status"] == 429 and error["retryable"] is True
    assert "Rate limit active for throttle key" in error["message"]
    sim.clear_faults()
    sim.inject(Fault("status", status=503, times=None))
    error = failed(runtime, f"return {WB}.list_rooms({{}})")
    assert error["code"] == "service_unavailable" and error["status"] == 503


# -- get_room ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["my-meeting-room", "/my-meeting-room"])
def test_get_room_by_name_with_or_without_slash(runtime: Runtime, name: str) -> None:
    room = ok(runtime, f'return {WB}.get_room({{room_name = "{name}"}})')
    assert room["roomName"] == "my-meeting-room" and room["meetingId"] == "84417203"
    assert room["meetingUrl"] == "https://kosmo-demo.whereby.com/my-meeting-room"


def test_get_room_unknown_name_is_upstream_not_found(runtime: Runtime) -> None:
    error = failed(runtime, f'return {WB}.get_room({{room_name = "no-such-room"}})')
    assert error["code"] == "upstream_not_found" and "no-such-room" in error["message"]
    assert error["function"] == "get_room" and "list_rooms" in error["hint"]


@pytest.mark.parametrize(("args", "param"), [
    ("{}", "room_name"), ("{room_name = 42}", "room_name"), ('{room_name = ""}', "room_name"),
    ('{room_name = "x", name = "y"}', "name"),
])
def test_get_room_validation(runtime: Runtime, args: str, param: str) -> None:
    error = failed(runtime, f"return {WB}.get_room({args})")
    assert error["code"] == "invalid_argument" and error["param"] == param


def test_get_room_5xx_and_401(runtime: Runtime, sim: WherebySimulator) -> None:
    sim.inject(Fault("status", status=502, times=None))
    assert failed(runtime, f'return {WB}.get_room({{room_name = "my-meeting-room"}})')["code"] == "service_unavailable"
    sim.clear_faults()
    sim.inject(Fault("status", status=401))
    error = failed(runtime, f'return {WB}.get_room({{room_name = "my-meeting-room"}})')
    assert error["code"] == "auth_failed" and error["status"] == 401


# -- create_room ------------------------------------------------------------------------


def test_create_room_defaults_to_an_hour_from_now(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    room = create(runtime)
    [request] = sent_since(sim, mark)
    assert request.method == "POST" and request.url.path == "/v1/meetings"
    sent = body(request)
    assert set(sent) == {"endDate"}
    assert abs(parse(sent["endDate"]) - sim.now() - timedelta(hours=1)) < timedelta(seconds=10)
    assert room["roomPath"] == "/" + room["roomName"] and room["meetingUrl"] == room["roomUrl"]
    assert room["id"] == room["meetingId"] and "note" not in room
    assert room["meetingId"] in sim._meetings


def test_create_room_seed_example_with_past_dates_runs_and_says_what_it_did(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    room = create(runtime, '{room_mode = "group", start_date = "2025-01-15T10:00:00Z", end_date = "2025-01-15T11:00:00Z"}')
    sent = body(sent_since(sim, mark)[0])
    assert "startDate" not in sent and sent["roomMode"] == "group"
    assert abs(parse(sent["endDate"]) - sim.now() - timedelta(hours=1)) < timedelta(seconds=10)
    assert room["requestedEndDate"] == "2025-01-15T11:00:00Z"
    assert "has passed" in room["note"] and "60 minutes" in room["note"]
    assert parse(room["endDate"]) == parse(sent["endDate"])


def test_create_room_past_end_date_alone_gets_an_hour(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    room = create(runtime, '{end_date = "2024-06-01T12:00:00+02:00"}')
    sent = body(sent_since(sim, mark)[0])
    assert abs(parse(sent["endDate"]) - sim.now() - timedelta(hours=1)) < timedelta(seconds=10)
    assert room["requestedEndDate"] == "2024-06-01T12:00:00+02:00"


def test_create_room_future_dates_and_options(runtime: Runtime, sim: WherebySimulator) -> None:
    end = (sim.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    mark = len(sim.requests)
    room = create(runtime, f'{{room_mode = "normal", room_name_prefix = "Team Sync", '
                           f'start_date = "2020-01-01T00:00:00Z", end_date = "{end}", fields = {{"hostRoomUrl"}}}}')
    assert body(sent_since(sim, mark)[0]) == {
        "endDate": end, "roomMode": "normal", "roomNamePrefix": "teamsync", "fields": ["hostRoomUrl"],
    }
    assert room["roomName"].startswith("teamsync") and room["endDate"] == end.replace("Z", ".000Z")
    assert room["hostRoomUrl"].startswith(room["roomUrl"] + "?roomKey=") and "viewerRoomUrl" not in room
    assert "note" not in room


def test_create_room_future_start_without_end_ends_an_hour_after_it(runtime: Runtime, sim: WherebySimulator) -> None:
    start = sim.now().replace(microsecond=0) + timedelta(days=1)
    mark = len(sim.requests)
    create(runtime, f'{{start_date = "{start.isoformat()}"}}')
    assert parse(body(sent_since(sim, mark)[0])["endDate"]) == start + timedelta(hours=1)


@pytest.mark.parametrize(("args", "param"), [
    ('{room_mode = "huge"}', "room_mode"),
    ('{room_mode = 1}', "room_mode"),
    ('{room_name_prefix = "' + "a" * 40 + '"}', "room_name_prefix"),
    ('{end_date = "tomorrow"}', "end_date"),
    ('{start_date = "2025-13-01T00:00:00Z"}', "start_date"),
    ('{start_date = "2030-01-02T00:00:00Z", end_date = "2030-01-01T00:00:00Z"}', "end_date"),
    ('{fields = {"lockRoomOnJoin"}}', "fields"),
    ('{fields = "hostRoomUrl"}', "fields"),
    ('{fields = {1}}', "fields"),
    ('{roomMode = "group"}', "roomMode"),
])
def test_create_room_validation_sends_nothing(runtime: Runtime, sim: WherebySimulator, args: str, param: str) -> None:
    mark = len(sim.requests)
    error = failed(runtime, f"return {WB}.create_room({args})")
    assert error["code"] == "invalid_argument" and error["param"] == param
    assert sent_since(sim, mark) == []


def test_create_room_whereby_400_is_upstream_error(runtime: Runtime) -> None:
    error = failed(runtime, f'return {WB}.create_room({{room_name_prefix = "bad_prefix!"}})')
    assert error["code"] == "upstream_error" and error["status"] == 400 and "roomNamePrefix" in error["message"]


def test_create_room_429_is_retried_but_503_is_not(runtime: Runtime, sim: WherebySimulator) -> None:
    sim.inject(Fault("status", status=429, retry_after=0, method="POST"))
    result = run(runtime, f"return {WB}.create_room({{}})")
    assert result.ok and result.calls[0].retries == 1
    mark = len(sim.requests)
    sim.inject(Fault("status", status=503, method="POST", times=None))
    error = failed(runtime, f"return {WB}.create_room({{}})")
    assert error["code"] == "service_unavailable" and len(sent_since(sim, mark)) == 1
    sim.clear_faults()
    sim.inject(Fault("status", status=429, retry_after=0, method="POST", times=None))
    assert failed(runtime, f"return {WB}.create_room({{}})")["code"] == "rate_limited"


def test_create_room_dry_run_sends_nothing(runtime: Runtime, sim: WherebySimulator) -> None:
    mark, meetings = len(sim.requests), len(sim._meetings)
    result = ok(runtime, f'return {WB}.create_room({{room_mode = "group"}})', dry_run=True)
    assert result["dry_run"] is True and result["would_send"]["method"] == "POST"
    assert result["would_send"]["url"].endswith("/v1/meetings") and result["would_send"]["body"]["roomMode"] == "group"
    assert sent_since(sim, mark) == [] and len(sim._meetings) == meetings


def test_create_room_read_only_is_permission_denied(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    error = failed(runtime, f"return {WB}.create_room({{}})", read_only=True)
    assert error["code"] == "permission_denied" and sent_since(sim, mark) == []


# -- delete_room ------------------------------------------------------------------------


def test_delete_room_resolves_the_name_then_deletes_the_meeting(runtime: Runtime, sim: WherebySimulator) -> None:
    room = create(runtime, '{room_name_prefix = "scratch"}')
    mark = len(sim.requests)
    gone = ok(runtime, f'return {WB}.delete_room({{room_name = "/{room["roomName"]}"}})')
    assert gone["deleted"] is True and gone["meetingId"] == room["meetingId"] and gone["roomName"] == room["roomName"]
    requests = sent_since(sim, mark)
    assert [(r.method, r.url.path) for r in requests] == [
        ("GET", "/v1/meetings"), ("DELETE", f"/v1/meetings/{room['meetingId']}")]
    assert requests[0].url.params["limit"] == "100"
    assert room["meetingId"] not in sim._meetings
    error = failed(runtime, f'return {WB}.get_room({{room_name = "{room["roomName"]}"}})')
    assert error["code"] == "upstream_not_found"


def test_delete_room_unknown_name_deletes_nothing(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    error = failed(runtime, f'return {WB}.delete_room({{room_name = "never-existed"}})')
    assert error["code"] == "upstream_not_found"
    assert all(r.method == "GET" for r in sent_since(sim, mark))


def test_delete_room_dry_run_reads_but_does_not_delete(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    result = ok(runtime, f'return {WB}.delete_room({{room_name = "my-meeting-room"}})', dry_run=True)
    assert result["dry_run"] is True and result["would_send"]["method"] == "DELETE"
    assert result["would_send"]["url"].endswith("/v1/meetings/84417203")
    assert [r.method for r in sent_since(sim, mark)] == ["GET"] and "84417203" in sim._meetings


def test_delete_room_read_only_and_validation(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    error = failed(runtime, f'return {WB}.delete_room({{room_name = "my-meeting-room"}})', read_only=True)
    assert error["code"] == "permission_denied"
    for args, param in [("{}", "room_name"), ("{room_name = {}}", "room_name"), ('{room = "x"}', "room")]:
        error = failed(runtime, f"return {WB}.delete_room({args})")
        assert error["code"] == "invalid_argument" and error["param"] == param
    assert sent_since(sim, mark) == []


def test_delete_room_upstream_errors_on_delete_are_not_retried(runtime: Runtime, sim: WherebySimulator) -> None:
    room = create(runtime)
    sim.inject(Fault("status", status=403, method="DELETE"))
    error = failed(runtime, f'return {WB}.delete_room({{room_name = "{room["roomName"]}"}})')
    assert error["code"] == "auth_failed" and error["status"] == 403
    sim.inject(Fault("status", status=503, method="DELETE", times=None))
    mark = len(sim.requests)
    error = failed(runtime, f'return {WB}.delete_room({{room_name = "{room["roomName"]}"}})')
    assert error["code"] == "service_unavailable"
    assert [r.method for r in sent_since(sim, mark)] == ["GET", "DELETE"]


# -- list_meetings ----------------------------------------------------------------------


def test_list_meetings_items_carry_id(runtime: Runtime) -> None:
    output = run(runtime, f"""
        local result = {WB}.list_meetings({{limit = 20}})
        for _, meeting in ipairs(result.data) do print(meeting.id, meeting.roomName, meeting.startDate) end
    """).output.splitlines()
    assert output[0].startswith("71234501\tonboarding-") and output[0].endswith("\t2025-01-06T09:00:00.000Z")
    assert any(line.startswith("abc123\tproduct-review-") for line in output)


def test_list_meetings_date_filter_is_applied_to_the_page(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    page = ok(runtime, f'return {WB}.list_meetings({{from_date = "2025-01-01T00:00:00Z", to_date = "2025-01-31T23:59:59Z"}})')
    assert [m["id"] for m in page["data"]] == JANUARY_2025
    assert len(page["results"]) > len(page["data"])  # Whereby's unfiltered page is kept
    [request] = sent_since(sim, mark)
    assert dict(request.url.params) == {}  # the filters are not Whereby query parameters


def test_list_meetings_date_filter_keeps_overlapping_meetings(runtime: Runtime) -> None:
    page = ok(runtime, f'return {WB}.list_meetings({{limit = 10, from_date = "2025-01-15T10:30:00", to_date = "2025-01-22"}})')
    assert [m["id"] for m in page["data"]] == ["71234588"]
    assert page["meta"]["nextCursor"] == page["cursor"] and page["cursor"]


@pytest.mark.parametrize("name", ["my-meeting-room", "/my-meeting-room"])
def test_list_meetings_room_filter(runtime: Runtime, name: str) -> None:
    page = ok(runtime, f'return {WB}.list_meetings({{limit = 100, room_name = "{name}"}})')
    assert [(m["id"], m["roomName"]) for m in page["data"]] == [("84417203", "my-meeting-room")]


@pytest.mark.parametrize(("args", "param"), [
    ('{from_date = "last week"}', "from_date"), ("{to_date = 20250101}", "to_date"),
    ("{limit = 1000}", "limit"), ("{room_name = true}", "room_name"), ('{since = "x"}', "since"),
])
def test_list_meetings_validation(runtime: Runtime, sim: WherebySimulator, args: str, param: str) -> None:
    mark = len(sim.requests)
    error = failed(runtime, f"return {WB}.list_meetings({args})")
    assert error["code"] == "invalid_argument" and error["param"] == param
    assert sent_since(sim, mark) == []


def test_list_meetings_upstream_errors(runtime: Runtime, sim: WherebySimulator) -> None:
    error = failed(runtime, f'return {WB}.list_meetings({{cursor = "stale"}})')
    assert error["code"] == "upstream_error" and error["status"] == 400
    sim.inject(Fault("status", status=504, times=None))
    assert failed(runtime, f"return {WB}.list_meetings({{}})")["code"] == "service_unavailable"
    sim.clear_faults()
    sim.inject(Fault("status", status=503, retry_after=0))
    result = run(runtime, f"return {WB}.list_meetings({{limit = 1}})")
    assert result.ok and result.calls[0].retries == 1


# -- get_meeting ------------------------------------------------------------------------


def test_get_meeting_adds_duration_sessions_and_participants(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    meeting = ok(runtime, f'return {WB}.get_meeting({{meeting_id = "abc123"}})')
    assert meeting["id"] == "abc123" and meeting["roomName"].startswith("product-review-")
    assert len(meeting["sessions"]) == 2 and meeting["duration"] == (47 + 18) * 60
    assert [p["name"] for p in meeting["participants"]] == [
        "Maya Lindqvist", "Sofia Rossi", "Liam O'Connor", "Dana Whitfield", "Maya Lindqvist", "Dana Whitfield"]
    assert all(p["name"] == p["displayName"] and p["joinedAt"] < p["leftAt"] for p in meeting["participants"])
    requests = sent_since(sim, mark)
    assert [r.url.path for r in requests] == [
        "/v1/meetings/abc123", "/v1/insights/room-sessions", "/v1/insights/participants", "/v1/insights/participants"]
    assert requests[1].url.params["roomName"] == meeting["roomPath"]
    assert requests[2].url.params["sortBy"] == "joinedAt:asc"


def test_get_meeting_seed_example_prints_real_values(runtime: Runtime) -> None:
    lines = run(runtime, f"""
        local result = {WB}.get_meeting({{ meeting_id = "abc123" }})
        print(result.roomName, result.duration)
        for _, participant in ipairs(result.participants or {{}}) do print(participant.name, participant.joinedAt) end
    """).output.splitlines()
    assert lines[0].endswith("\t3900") and lines[1].startswith("Maya Lindqvist\t") and len(lines) == 7


def test_get_meeting_with_many_participants_and_none(runtime: Runtime) -> None:
    busy = ok(runtime, f'return {WB}.get_meeting({{meeting_id = "84417203"}})')
    assert len(busy["sessions"]) == 3 and len(busy["participants"]) == 3 + 12 + 2
    assert busy["duration"] == (42 + 65 + 25) * 60
    idle = ok(runtime, f'return {WB}.get_meeting({{meeting_id = "71234501"}})')
    assert idle["duration"] == 0 and idle["sessions"] == [] and idle["participants"] == []


def test_get_meeting_unknown_id_is_whereby_404(runtime: Runtime) -> None:
    error = failed(runtime, f'return {WB}.get_meeting({{meeting_id = "no-such-meeting"}})')
    assert error["code"] == "upstream_not_found" and error["status"] == 404
    assert "The requested resource doesn't exist" in error["message"]


def test_get_meeting_validation_and_insights_failure(runtime: Runtime, sim: WherebySimulator) -> None:
    for args, param in [("{}", "meeting_id"), ("{meeting_id = 123}", "meeting_id"), ('{id = "abc123"}', "id")]:
        error = failed(runtime, f"return {WB}.get_meeting({args})")
        assert error["code"] == "invalid_argument" and error["param"] == param
    sim.inject(Fault("status", status=503, path="/v1/insights/", times=None))
    error = failed(runtime, f'return {WB}.get_meeting({{meeting_id = "abc123"}})')
    assert error["code"] == "service_unavailable" and error["status"] == 503


# -- get_current_user -------------------------------------------------------------------


def test_get_current_user_verifies_the_key_and_invents_nothing(runtime: Runtime, sim: WherebySimulator) -> None:
    mark = len(sim.requests)
    me = ok(runtime, f"return {WB}.get_current_user({{}})")
    assert me["authenticated"] is True and me["account"] == "default" and me["service"] == "Whereby"
    assert me["roomHost"] == "kosmo-demo.whereby.com" and "no user" in me["note"]
    assert "name" not in me and "email" not in me
    [request] = sent_since(sim, mark)
    assert request.url.path == "/v1/meetings" and dict(request.url.params) == {"limit": "1"}
    output = run(runtime, f"local result = {WB}.get_current_user({{}})\nprint(result.name, result.email)").output
    assert output.strip() == "nil\tnil"


def test_get_current_user_errors(runtime: Runtime, sim: WherebySimulator) -> None:
    assert failed(runtime, f'return {WB}.get_current_user({{verbose = true}})')["code"] == "invalid_argument"
    sim.inject(Fault("status", status=401))
    error = failed(runtime, f"return {WB}.get_current_user({{}})")
    assert error["code"] == "auth_failed" and error["status"] == 401
    sim.inject(Fault("status", status=500, times=None))
    assert failed(runtime, f"return {WB}.get_current_user({{}})")["code"] == "service_unavailable"


# -- credentials and accounts -------------------------------------------------------------


def _assert_key_only_in_authorization(requests: list[httpx.Request], key: str) -> None:
    assert requests
    for request in requests:
        assert request.headers["authorization"] == f"Bearer {key}"
        assert key not in str(request.url) and key.encode() not in request.content
        assert all(key not in value for name, value in request.headers.items() if name != "authorization")


def test_credentials_travel_only_in_the_authorization_header(runtime: Runtime, sim: WherebySimulator) -> None:
    script = f"""
        local rooms = {WB}.list_rooms({{limit = 2}})
        local room = {WB}.create_room({{room_name_prefix = "cred"}})
        {WB}.get_room({{room_name = room.roomName}})
        {WB}.delete_room({{room_name = room.roomName}})
        local meeting = {WB}.get_meeting({{meeting_id = "abc123"}})
        local me = {WB}.get_current_user({{}})
        print(json.encode(rooms), json.encode(meeting), json.encode(me))
        return me
    """
    mark = len(sim.requests)
    result = run(runtime, script)
    assert result.ok
    _assert_key_only_in_authorization(sent_since(sim, mark), KEYS["default"])
    sim.inject(Fault("status", status=401))
    failure = run(runtime, f"return {WB}.get_current_user({{}})")
    for key in KEYS.values():
        assert key not in json.dumps(result.to_dict()) and key not in json.dumps(failure.to_dict())


def test_named_accounts_use_their_own_keys(runtime: Runtime, sim: WherebySimulator) -> None:
    for account in ("default", "work"):
        mark = len(sim.requests)
        me = ok(runtime, f"return {WB}.{account}.get_current_user({{}})")
        assert me["account"] == account
        _assert_key_only_in_authorization(sent_since(sim, mark), KEYS[account])
    mark = len(sim.requests)
    room = ok(runtime, f"return {WB}.work.create_room({{}})")
    assert room["meetingId"] in sim._meetings
    _assert_key_only_in_authorization(sent_since(sim, mark), KEYS["work"])
    mark = len(sim.requests)
    ok(runtime, f"return {WB}.list_rooms({{limit = 1}})")
    _assert_key_only_in_authorization(sent_since(sim, mark), KEYS["default"])


def test_get_room_pages_past_the_first_hundred_meetings(runtime: Runtime, sim: WherebySimulator) -> None:
    end = (sim.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for number in range(100):  # straight into the simulator, as if made by another app of the organization
        response = sim(httpx.Request("POST", "http://sim/v1/meetings", json={"endDate": end, "roomNamePrefix": f"bulk{number}-"},
                                     headers={"Authorization": f"Bearer {KEYS['default']}"}))
        assert response.status_code == 201
    last = json.loads(response.content)["roomName"]
    mark = len(sim.requests)
    room = ok(runtime, f'return {WB}.get_room({{room_name = "{last}"}})')
    assert room["roomPath"] == last
    pages = sent_since(sim, mark)
    assert len(pages) == 2 and "cursor" not in pages[0].url.params and pages[1].url.params["cursor"]
