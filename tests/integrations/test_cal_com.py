"""The cal-com integration end to end: Lua scripts -> runtime -> real loopback HTTP -> the Cal.com simulator.

At module teardown every request the simulator received is checked against the official
``tests/data/specs/calcom.json`` (with the documented spec quirks corrected as in the simulator's
own tests, whose ``CorrectedSpec`` is reused here). The demo runs on its simulated clock,
which starts at ``DEMO_START``; times here are relative to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from kosmo_integrations.cal_com.simulator import DEMO_ACCOUNTS, CalComSimulator

from kosmo_runtime import Fault
from kosmo_runtime._demo import DEMO_START, Demo
from kosmo_runtime._http import RetryPolicy
from kosmo_runtime._result import RunResult
from kosmo_runtime._runtime import Runtime
from tests.simulators.test_cal_com_simulator import CorrectedSpec

NS = 'app.integrations["cal-com"]'
KEYS = {name: account["api_key"] for name, account in DEMO_ACCOUNTS.items()}
BOOKING_123_UID = "bk3Xq9TzR7mNwP2vLc8HdA"


# -- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo(["cal-com"]) as running:
        yield running
        problems = _contract_violations(running.simulators["cal-com"].requests)
        assert not problems, "requests that do not conform to calcom.json:\n" + "\n".join(problems)


def _contract_violations(requests: list[httpx.Request]) -> list[str]:
    """Every request checked against the official spec; the spec's known quirks are corrected by CorrectedSpec."""
    spec = CorrectedSpec()
    assert requests, "the module sent nothing to the simulator"
    return [f"{r.method} {r.url}: {problem}" for r in requests for problem in spec.request_errors(r)]


@pytest.fixture(scope="module")
def runtime(demo: Demo) -> Iterator[Runtime]:
    with demo.runtime(retry=RetryPolicy(sleep=lambda seconds: None)) as rt:
        yield rt


@pytest.fixture
def sim(demo: Demo) -> Iterator[CalComSimulator]:
    simulator = demo.simulators["cal-com"]
    assert isinstance(simulator, CalComSimulator)
    yield simulator
    simulator.clear_faults()


def call(rt: Runtime, function: str, args: str = "", account: str = "", **options: Any) -> RunResult:
    """``return app.integrations["cal-com"][.account].function({args})`` as a script."""
    target = f"{NS}.{account}" if account else NS
    return rt.run(f"return {target}.{function}({{{args}}})", **options)


def ok(result: RunResult) -> Any:
    assert result.ok, result.error and result.error.to_dict()
    return result.result


def error(result: RunResult) -> dict[str, Any]:
    assert not result.ok and result.error is not None, result.result
    return result.error.to_dict()


def sent(sim: CalComSimulator, since: int) -> list[httpx.Request]:
    return sim.requests[since:]


def at(days: int, hour: int, minute: int = 0) -> datetime:
    """A UTC time ``days`` after the demo's first midnight (the simulator's seed is relative to it too)."""
    midnight = DEMO_START.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(days=days, hours=hour, minutes=minute)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def runtime_with_accounts(demo: Demo, extra: dict[str, dict[str, str]]) -> Runtime:
    """A runtime whose cal-com accounts are the demo ones plus ``extra`` (fields besides base_url)."""
    accounts = demo.accounts_data["cal-com"]
    saved = dict(accounts)
    accounts.update({name: {**fields, "base_url": saved["default"]["base_url"]} for name, fields in extra.items()})
    try:
        config = demo.accounts()
    finally:
        demo.accounts_data["cal-com"] = saved
    return Runtime(accounts=config, store=demo.store, retry=RetryPolicy(sleep=lambda seconds: None), clock=demo.clock)


# -- list_event_types ---------------------------------------------------------------------------


def test_list_event_types_lists_the_users_event_types_with_length(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    result = ok(call(runtime, "list_event_types"))
    event_types = result["event_types"]
    assert [(et["id"], et["title"], et["length"]) for et in event_types] == [
        (7, "Strategy Consultation", 45), (42, "Product Demo", 30), (43, "Internal Sync", 15)]
    assert all(et["length"] == et["lengthInMinutes"] for et in event_types)
    assert event_types[0]["bookingUrl"] == "https://cal.com/alex-morgan/strategy-consultation"  # upstream field kept
    [request] = sent(sim, before)
    assert (request.method, request.url.path, request.headers["cal-api-version"]) == ("GET", "/v2/event-types", "2024-06-14")
    assert not request.url.query


def test_list_event_types_of_a_team_slices_client_side(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    assert [et["id"] for et in ok(call(runtime, "list_event_types", "teamId = 5"))["event_types"]] == [311, 312]
    second = ok(call(runtime, "list_event_types", "teamId = 5, limit = 1, page = 2"))["event_types"]
    assert [(et["id"], et["length"], et["schedulingType"]) for et in second] == [(312, 60, "collective")]
    assert ok(call(runtime, "list_event_types", "teamId = 5, limit = 1, page = 3"))["event_types"] == []
    assert ok(call(runtime, "list_event_types", "page = 2"))["event_types"] == []  # no limit: all is page 1
    requests = sent(sim, before)
    assert [r.url.path for r in requests] == ["/v2/teams/5/event-types"] * 3 + ["/v2/event-types"]
    assert all("cal-api-version" not in r.headers for r in requests[:3])  # the team route is unversioned
    assert all(not r.url.query for r in requests)  # paging never reaches the server


def test_list_event_types_metadata_example(runtime: Runtime) -> None:
    result = ok(runtime.run("return app.integrations.cal_com.cal_com_list_event_types({limit = 1, page = 1, teamId = 1})"))
    assert [(et["id"], et["title"], et["teamId"]) for et in result["event_types"]] == [(14, "Design Critique", 1)]


# -- get_event_type -------------------------------------------------------------------------------


def test_get_event_type_returns_it_with_length(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    event_type = ok(call(runtime, "get_event_type", "id = 7"))["event_type"]
    assert (event_type["id"], event_type["title"], event_type["length"]) == (7, "Strategy Consultation", 45)
    assert event_type["lengthInMinutesOptions"] == [30, 45, 60]
    assert event_type["confirmationPolicy"]["type"] == "always"
    [request] = sent(sim, before)
    assert (request.url.path, request.headers["cal-api-version"]) == ("/v2/event-types/7", "2024-06-14")


def test_get_event_type_unknown_id_is_upstream_not_found(runtime: Runtime) -> None:
    problem = error(call(runtime, "get_event_type", "id = 999"))
    assert (problem["type"], problem["status"], problem["service_code"]) == ("UpstreamNotFound", 404, "NotFoundException")
    assert "Event type with id 999 not found" in problem["message"]


# -- create_booking -------------------------------------------------------------------------------


def test_create_booking_translates_to_a_v2_booking(runtime: Runtime, sim: CalComSimulator) -> None:
    start = at(30, 9)
    before = len(sim.requests)
    result = ok(call(runtime, "create_booking", f'''eventTypeId = 42, start = "{iso(start)}",
        ["end"] = "{iso(start + timedelta(minutes=30))}",
        responses = {{name = "John Doe", email = "john.doe@example.com", notes = "Looking forward to the call!"}}'''))
    booking = result["booking"]
    assert booking["id"] >= 131 and booking["status"] == "accepted"
    assert booking["startTime"] == booking["start"] == start.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert booking["endTime"] == booking["end"] == (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert booking["attendees"][0]["name"] == "John Doe" and booking["description"] == "Looking forward to the call!"
    assert booking["meetingUrl"].startswith("https://app.cal.com/video/")
    lookup, post = sent(sim, before)
    assert (lookup.method, lookup.url.path) == ("GET", "/v2/event-types/42")
    assert (post.method, post.url.path, post.headers["cal-api-version"]) == ("POST", "/v2/bookings", "2024-08-13")
    assert json.loads(post.content) == {  # 30 min is event type 42's length: no lengthInMinutes
        "start": iso(start),
        "eventTypeId": 42,
        "attendee": {"name": "John Doe", "email": "john.doe@example.com", "timeZone": "UTC"},
        "bookingFieldsResponses": {"notes": "Looking forward to the call!"},
    }
    # the new booking's uid is remembered: get_booking costs one request
    before = len(sim.requests)
    assert ok(call(runtime, "get_booking", f"id = {booking['id']}"))["booking"]["uid"] == booking["uid"]
    assert [r.url.path for r in sent(sim, before)] == [f"/v2/bookings/{booking['uid']}"]


def test_create_booking_maps_responses_and_picks_an_allowed_length(runtime: Runtime, sim: CalComSimulator) -> None:
    start = at(31, 14)
    before = len(sim.requests)
    booking = ok(call(runtime, "create_booking", f'''eventTypeId = 7, start = "{iso(start)[:-1]}+02:00",
        ["end"] = "{iso(start + timedelta(hours=1))[:-1]}+02:00",
        responses = {{name = "Jane Smith", email = "jane@example.com", timeZone = "Europe/Berlin", language = "de",
                      attendeePhoneNumber = "+4915112345678", guests = {{"ops@example.com"}}, company = "Acme Corp",
                      phone = "+1-555-0123", location = {{type = "integration", integration = "google-meet"}}}}'''))["booking"]
    assert (booking["status"], booking["duration"]) == ("pending", 60)  # event type 7 requires confirmation
    assert booking["start"] == (start - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert [a["email"] for a in booking["attendees"]] == ["jane@example.com", "ops@example.com"]
    assert booking["bookingFieldsResponses"]["company"] == "Acme Corp"
    assert booking["meetingUrl"].startswith("https://meet.google.com/")
    body = json.loads(sent(sim, before)[-1].content)
    assert body == {
        "start": iso(start - timedelta(hours=2)),
        "eventTypeId": 7,
        "attendee": {"name": "Jane Smith", "email": "jane@example.com", "timeZone": "Europe/Berlin",
                     "phoneNumber": "+4915112345678", "language": "de"},
        "guests": ["ops@example.com"],
        "location": {"type": "integration", "integration": "google-meet"},
        "bookingFieldsResponses": {"company": "Acme Corp", "phone": "+1-555-0123"},
        "lengthInMinutes": 60,
    }


@pytest.mark.parametrize(
    ("start", "end", "responses", "param", "fragment"),
    [
        ("tomorrow", "2030-01-01T10:00:00Z", '{name = "A", email = "a@example.com"}', "start", "ISO 8601"),
        ("2030-01-01T10:00:00Z", "2030-01-01T09:00:00Z", '{name = "A", email = "a@example.com"}', "end", "after start"),
        ("2030-01-01T10:00:00Z", "2030-01-01T10:00:30Z", '{name = "A", email = "a@example.com"}', "end", "whole number"),
        ("2030-01-01T10:00:00Z", "2030-01-01T10:30:00Z", '{name = "A"}', "responses", "responses.email"),
        ("2030-01-01T10:00:00Z", "2030-01-01T10:30:00Z", '{email = "a@example.com", name = " "}', "responses", "responses.name"),
    ],
    ids=["bad-start", "end-before-start", "partial-minute", "no-email", "blank-name"],
)
def test_create_booking_checks_its_arguments_before_sending(
    runtime: Runtime, sim: CalComSimulator, start: str, end: str, responses: str, param: str, fragment: str
) -> None:
    before = len(sim.requests)
    args = f'eventTypeId = 42, start = "{start}", ["end"] = "{end}", responses = {responses}'
    problem = error(call(runtime, "create_booking", args))
    assert (problem["type"], problem["param"]) == ("InvalidArgument", param) and fragment in problem["message"]
    assert sent(sim, before) == []


def test_create_booking_refuses_a_length_the_event_type_does_not_offer(runtime: Runtime, sim: CalComSimulator) -> None:
    start = at(32, 9)
    before = len(sim.requests)
    args = f'eventTypeId = 7, start = "{iso(start)}", ["end"] = "{iso(start + timedelta(minutes=20))}", ' \
           'responses = {name = "A", email = "a@example.com", company = "X"}'
    problem = error(call(runtime, "create_booking", args))
    assert (problem["type"], problem["param"]) == ("InvalidArgument", "end")
    assert "20 minutes" in problem["message"] and "30, 45, 60" in problem["message"]
    assert [(r.method, r.url.path) for r in sent(sim, before)] == [("GET", "/v2/event-types/7")]  # nothing booked


def test_create_booking_passes_on_cal_coms_refusal(runtime: Runtime) -> None:
    start = at(33, 9)
    args = f'eventTypeId = 7, start = "{iso(start)}", ["end"] = "{iso(start + timedelta(minutes=45))}", ' \
           'responses = {name = "A", email = "a@example.com"}'
    problem = error(call(runtime, "create_booking", args))
    assert (problem["type"], problem["status"], problem["service_code"]) == ("HTTPStatusError", 400, "BadRequestException")
    assert "Missing required booking field response: company" in problem["message"]
    past = at(-1, 9)
    args = f'eventTypeId = 42, start = "{iso(past)}", ["end"] = "{iso(past + timedelta(minutes=30))}", ' \
           'responses = {name = "A", email = "a@example.com"}'
    assert "Attempting to book a meeting in the past." in error(call(runtime, "create_booking", args))["message"]


def test_create_booking_of_an_unknown_event_type_is_not_found(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    args = 'eventTypeId = 999, start = "2030-01-01T10:00:00Z", ["end"] = "2030-01-01T10:30:00Z", ' \
           'responses = {name = "A", email = "a@example.com"}'
    assert error(call(runtime, "create_booking", args))["type"] == "UpstreamNotFound"
    assert [r.method for r in sent(sim, before)] == ["GET"]


def _booking_args(days: int) -> str:
    start = at(days, 11)
    return (f'eventTypeId = 42, start = "{iso(start)}", ["end"] = "{iso(start + timedelta(minutes=30))}", '
            'responses = {name = "Dry Run", email = "dry@example.com"}')


def test_create_booking_dry_run_sends_only_the_lookup(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    result = ok(call(runtime, "create_booking", _booking_args(34), dry_run=True))
    assert result["dry_run"] is True
    assert result["would_send"]["body"]["attendee"]["email"] == "dry@example.com"
    assert result["would_send"]["url"].endswith("/v2/bookings")
    assert [r.method for r in sent(sim, before)] == ["GET"]


def test_create_booking_in_a_read_only_run_is_denied(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    assert error(call(runtime, "create_booking", _booking_args(35), read_only=True))["type"] == "PermissionDenied"
    assert sent(sim, before) == []


def test_create_booking_is_not_retried_after_a_5xx_but_is_after_a_429(runtime: Runtime, sim: CalComSimulator) -> None:
    sim.inject(Fault("status", status=503, method="POST", path="^/v2/bookings$"))
    before = len(sim.requests)
    problem = error(call(runtime, "create_booking", _booking_args(36)))
    assert (problem["type"], problem["status"]) == ("ServiceUnavailable", 503)
    assert [r.method for r in sent(sim, before)] == ["GET", "POST"]
    sim.inject(Fault("status", status=429, method="POST", path="^/v2/bookings$"))
    before = len(sim.requests)
    assert ok(call(runtime, "create_booking", _booking_args(36)))["booking"]["status"] == "accepted"
    assert [r.method for r in sent(sim, before)] == ["GET", "POST", "POST"]


# -- list_bookings ----------------------------------------------------------------------------------


def test_list_bookings_pages_upstream(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    first = ok(call(runtime, "list_bookings", "limit = 3"))
    assert [b["id"] for b in first["bookings"]] == [118, 121, 122]
    assert first["pagination"]["hasNextPage"] is True and first["pagination"]["itemsPerPage"] == 3
    second = ok(call(runtime, "list_bookings", "limit = 3, page = 2"))
    assert [b["id"] for b in second["bookings"]] == [123, 127, 124]  # start ascending
    assert all(b["startTime"] == b["start"] and b["endTime"] == b["end"] for b in second["bookings"])
    default = ok(call(runtime, "list_bookings"))
    assert default["pagination"]["itemsPerPage"] == 100
    queries = [dict(r.url.params) for r in sent(sim, before)]
    assert queries == [{"take": "3", "skip": "0"}, {"take": "3", "skip": "3"}, {"take": "100", "skip": "0"}]
    assert all(r.headers["cal-api-version"] == "2024-08-13" for r in sent(sim, before))


@pytest.mark.parametrize(
    ("status", "upstream", "ids"),
    [
        ("pending", "unconfirmed", [124]),
        ("cancelled", "cancelled", [125, 122]),  # Cal.com lists a lone cancelled filter newest first
        ("rejected", "cancelled", [126]),
    ],
)
def test_list_bookings_status_mapping(runtime: Runtime, sim: CalComSimulator, status: str, upstream: str, ids: list[int]) -> None:
    before = len(sim.requests)
    result = ok(call(runtime, "list_bookings", f'status = "{status}"'))
    assert [b["id"] for b in result["bookings"]][: len(ids)] == ids  # bookings made by earlier tests come later
    assert {b["status"] for b in result["bookings"]} == {status}
    [request] = sent(sim, before)
    assert request.url.params["status"] == upstream


def test_list_bookings_confirmed_filters_and_pages_client_side(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    everything = ok(call(runtime, "list_bookings", 'status = "confirmed"'))["bookings"]
    assert {b["status"] for b in everything} == {"accepted"} and {118, 121, 123, 127, 130} <= {b["id"] for b in everything}
    second = ok(call(runtime, "list_bookings", 'status = "confirmed", limit = 2, page = 2'))
    assert [b["id"] for b in second["bookings"]] == [b["id"] for b in everything[2:4]]
    assert second["pagination"] | {} == {
        "totalItems": len(everything), "remainingItems": len(everything) - 4, "returnedItems": 2, "itemsPerPage": 2,
        "currentPage": 2, "totalPages": -(-len(everything) // 2), "hasNextPage": len(everything) > 4,
        "hasPreviousPage": True}
    assert all(dict(r.url.params) == {"status": "upcoming,past", "take": "250", "skip": "0"} for r in sent(sim, before))


def test_list_bookings_by_event_type(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    bookings = ok(call(runtime, "list_bookings", "eventTypeId = 42, page = 1"))["bookings"]
    assert bookings and {b["eventTypeId"] for b in bookings} == {42}
    assert sent(sim, before)[0].url.params["eventTypeId"] == "42"
    problem = error(call(runtime, "list_bookings", "eventTypeId = 999"))
    assert (problem["type"], problem["status"], problem["service_code"]) == ("HTTPStatusError", 400, "TRPCError")
    assert "The requested event-types do not exist." in problem["message"]


# -- get_booking --------------------------------------------------------------------------------------


def test_get_booking_finds_the_uid_then_reads_by_uid(demo: Demo, sim: CalComSimulator) -> None:
    with demo.runtime() as fresh:  # a fresh runtime: nothing remembered yet
        before = len(sim.requests)
        booking = ok(call(fresh, "get_booking", "id = 123"))["booking"]
        assert (booking["uid"], booking["title"], booking["status"]) == (
            BOOKING_123_UID, "Product Demo between Alex Morgan and Jane Smith", "accepted")
        assert booking["startTime"] == booking["start"] and booking["endTime"] == booking["end"]
        assert [a["email"] for a in booking["attendees"]] == ["jane.smith@acme-corp.example", "tom.becker@acme-corp.example"]
        scan, read = sent(sim, before)
        assert dict(scan.url.params) == {"take": "250", "skip": "0"} and scan.url.path == "/v2/bookings"
        assert read.url.path == f"/v2/bookings/{BOOKING_123_UID}" and read.headers["cal-api-version"] == "2024-08-13"
        before = len(sim.requests)
        assert ok(call(fresh, "get_booking", "id = 122"))["booking"]["cancellationReason"] == "Double-booked on my side"
        assert len(sent(sim, before)) == 1  # 122 was seen during the first scan


def test_get_booking_unknown_id_is_not_found_without_a_uid_read(demo: Demo, sim: CalComSimulator) -> None:
    with demo.runtime() as fresh:
        before = len(sim.requests)
        problem = error(call(fresh, "get_booking", "id = 99999"))
        assert problem["type"] == "UpstreamNotFound" and "99999" in problem["message"]
        assert [r.url.path for r in sent(sim, before)] == ["/v2/bookings"]


def test_get_booking_pages_through_large_booking_lists(demo: Demo, sim: CalComSimulator) -> None:
    first = [{"id": n, "uid": f"uid{n}"} for n in range(1000, 1250)]
    for data, more in ((first, True), ([{"id": 123, "uid": BOOKING_123_UID}], False)):
        page = {"status": "success", "data": data, "pagination": {"hasNextPage": more}}
        sim.inject(Fault("malformed", body=json.dumps(page).encode(), path="^/v2/bookings$"))
    with demo.runtime() as fresh:
        before = len(sim.requests)
        assert ok(call(fresh, "get_booking", "id = 123"))["booking"]["uid"] == BOOKING_123_UID
        requests = sent(sim, before)
        assert [r.url.params.get("skip") for r in requests] == ["0", "250", None]
        assert requests[-1].url.path == f"/v2/bookings/{BOOKING_123_UID}"


# -- recurring bookings: Cal.com answers `data` as an array -------------------------------------------


def test_create_booking_on_a_recurring_event_type_returns_every_occurrence(runtime: Runtime, sim: CalComSimulator) -> None:
    start = at(33, 10)
    result = ok(call(runtime, "create_booking", f'''eventTypeId = 62, start = "{iso(start)}",
        ["end"] = "{iso(start + timedelta(minutes=30))}", responses = {{name = "Kim", email = "kim@example.com"}}''', "personal"))
    series = result["bookings"]
    assert [b["startTime"] for b in series] == [
        (start + timedelta(weeks=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z") for n in range(4)]
    assert result["booking"] == series[0] and len({b["recurringBookingUid"] for b in series}) == 1
    before = len(sim.requests)  # every occurrence's uid is remembered: one request, an object back
    third = ok(call(runtime, "get_booking", f"id = {series[2]['id']}", "personal"))
    assert third == {"booking": series[2]}
    assert [r.url.path for r in sent(sim, before)] == [f"/v2/bookings/{series[2]['uid']}"]


def test_get_booking_answered_with_the_whole_series_picks_the_asked_occurrence(
    runtime: Runtime, sim: CalComSimulator
) -> None:
    start = at(34, 10)
    series = ok(call(runtime, "create_booking", f'''eventTypeId = 62, start = "{iso(start)}",
        ["end"] = "{iso(start + timedelta(minutes=30))}", responses = {{name = "Lee", email = "lee@example.com"}}''', "personal"))["bookings"]
    whole = httpx.get(f"{sim_url(runtime)}/v2/bookings/{series[0]['recurringBookingUid']}",
                      headers={"cal-api-version": "2024-08-13"}).content  # the simulator's real array answer
    sim.inject(Fault("malformed", body=whole, path="^/v2/bookings/"))
    result = ok(call(runtime, "get_booking", f"id = {series[1]['id']}", "personal"))
    assert result["booking"]["id"] == series[1]["id"] and [b["id"] for b in result["bookings"]] == [b["id"] for b in series]
    assert result["booking"]["startTime"] == result["booking"]["start"]


def sim_url(rt: Runtime) -> str:
    """The loopback base URL the runtime's default cal-com account points at."""
    return str(rt.accounts.account("cal-com", None).settings["base_url"])


# -- list_teams and get_current_user --------------------------------------------------------------------


def test_list_teams_without_invented_members(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    teams = ok(call(runtime, "list_teams"))["teams"]
    assert [(t["id"], t["name"], t["slug"]) for t in teams] == [(1, "Design Guild", "design-guild"), (5, "Acme Sales", "acme-sales")]
    assert all("members" not in t for t in teams)
    assert [t["id"] for t in ok(call(runtime, "list_teams", "limit = 1, page = 2"))["teams"]] == [5]
    assert ok(call(runtime, "list_teams", "limit = 5, page = 2"))["teams"] == []
    requests = sent(sim, before)
    assert [r.url.path for r in requests] == ["/v2/teams"] * 3
    assert all("cal-api-version" not in r.headers and not r.url.query for r in requests)


def test_get_current_user(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    user = ok(call(runtime, "get_current_user"))["user"]
    assert (user["id"], user["name"], user["email"], user["username"], user["timeZone"]) == (
        1047, "Alex Morgan", "alex.morgan@example.com", "alex-morgan", "Europe/London")
    assert user["defaultScheduleId"] == 2291
    [request] = sent(sim, before)
    assert request.url.path == "/v2/me" and "cal-api-version" not in request.headers


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "args", "param", "fragment"),
    [
        ("list_event_types", 'limit = "ten"', "limit", "must be an integer"),
        ("list_event_types", "limit = 0", "limit", "at least 1"),
        ("list_event_types", "page = 0", "page", "at least 1"),
        ("list_event_types", 'teamId = "5"', "teamId", "must be an integer"),
        ("list_event_types", "team_id = 5", "team_id", "unknown parameter"),
        ("get_event_type", "", "id", "missing required parameter 'id'"),
        ("get_event_type", 'id = "42"', "id", "must be an integer"),
        ("get_event_type", "id = 42, extra = 1", "extra", "unknown parameter"),
        ("create_booking", 'start = "2030-01-01T10:00:00Z", ["end"] = "2030-01-01T10:30:00Z", responses = {name = "A"}',
         "eventTypeId", "missing required parameter 'eventTypeId'"),
        ("create_booking", 'eventTypeId = 42, ["end"] = "2030-01-01T10:30:00Z", responses = {name = "A"}',
         "start", "missing required parameter 'start'"),
        ("create_booking", 'eventTypeId = 42, start = "2030-01-01T10:00:00Z", responses = {name = "A"}',
         "end", "missing required parameter 'end'"),
        ("create_booking", 'eventTypeId = 42, start = "2030-01-01T10:00:00Z", ["end"] = "2030-01-01T10:30:00Z"',
         "responses", "missing required parameter 'responses'"),
        ("create_booking", 'eventTypeId = 42, start = 1, ["end"] = "2030-01-01T10:30:00Z", responses = {}',
         "start", "must be a string"),
        ("create_booking", 'eventTypeId = 42, start = "x", ["end"] = "y", responses = "John"', "responses", "must be an object"),
        ("create_booking", 'eventTypeId = 42, start = "x", ["end"] = "y", responses = {}, timeZone = "UTC"',
         "timeZone", "unknown parameter"),
        ("list_bookings", 'status = "accepted"', "status", "must be one of confirmed, pending, cancelled, rejected"),
        ("list_bookings", "limit = 251", "limit", "at most 250"),
        ("list_bookings", "page = -1", "page", "at least 1"),
        ("list_bookings", "eventTypeId = 4.5", "eventTypeId", "must be an integer"),
        ("list_bookings", "take = 10", "take", "unknown parameter"),
        ("get_booking", "", "id", "missing required parameter 'id'"),
        ("get_booking", 'id = "bk3Xq9TzR7mNwP2vLc8HdA"', "id", "must be an integer"),
        ("list_teams", "limit = 0", "limit", "at least 1"),
        ("list_teams", 'page = "2"', "page", "must be an integer"),
        ("list_teams", "teamId = 1", "teamId", "unknown parameter"),
        ("get_current_user", "verbose = true", "verbose", "unknown parameter"),
    ],
)
def test_invalid_arguments_are_refused_before_any_request(
    runtime: Runtime, sim: CalComSimulator, function: str, args: str, param: str, fragment: str
) -> None:
    before = len(sim.requests)
    problem = error(call(runtime, function, args))
    assert (problem["type"], problem["param"]) == ("InvalidArgument", param)
    assert fragment in problem["message"]
    assert sent(sim, before) == []


# -- upstream failures ----------------------------------------------------------------------------------

READS = [
    ("list_event_types", "", "^/v2/event-types$"),
    ("get_event_type", "id = 42", "^/v2/event-types/42$"),
    ("list_bookings", "", "^/v2/bookings$"),
    ("get_booking", "id = 123", "^/v2/bookings"),
    ("list_teams", "", "^/v2/teams$"),
    ("get_current_user", "", "^/v2/me$"),
]


@pytest.mark.parametrize(("function", "args", "path"), READS, ids=[r[0] for r in READS])
def test_reads_retry_a_single_503_or_429(runtime: Runtime, sim: CalComSimulator, function: str, args: str, path: str) -> None:
    for status in (503, 429):
        sim.inject(Fault("status", status=status, path=path, retry_after=0))
        result = call(runtime, function, args)
        ok(result)
        assert result.calls[-1].retries == 1


@pytest.mark.parametrize(("function", "args", "path"), READS, ids=[r[0] for r in READS])
@pytest.mark.parametrize(("status", "kind"), [(503, "ServiceUnavailable"), (429, "RateLimited"), (500, "ServiceUnavailable")])
def test_reads_end_in_a_structured_error_when_the_fault_persists(
    runtime: Runtime, sim: CalComSimulator, function: str, args: str, path: str, status: int, kind: str
) -> None:
    sim.inject(Fault("status", status=status, path=path, times=None))
    problem = error(call(runtime, function, args))
    assert (problem["type"], problem["status"], problem["retryable"]) == (kind, status, status != 500)
    expected = "Internal server error" if status == 500 else "ThrottlerException: Too Many Requests" if status == 429 else f"Injected fault: HTTP {status}"
    assert expected in problem["message"]
    if status != 500:
        assert problem["service_code"] == ("ThrottlerException" if status == 429 else "ServiceUnavailableException")


def test_a_wrong_key_is_auth_failed_for_every_function(demo: Demo) -> None:
    with runtime_with_accounts(demo, {"revoked": {"api_key": "cal_live_revoked_key"}}) as rt:
        for function, args, _ in READS:
            problem = error(call(rt, function, args, account="revoked"))
            assert (problem["type"], problem["status"], problem["service_code"]) == ("AuthFailed", 401, "UnauthorizedException")
            assert "Your api key is not valid" in problem["message"]
            assert "cal_live_revoked_key" not in json.dumps(problem)


# -- credentials and accounts ------------------------------------------------------------------------

OWN_EVENT_TYPES = {"default": (42, 30), "work": (55, 20), "personal": (61, 25)}  # id, length


@pytest.mark.parametrize("account", ["default", "work", "personal"])
def test_the_key_travels_only_in_the_authorization_header(runtime: Runtime, sim: CalComSimulator, account: str) -> None:
    key = KEYS[account]
    event_type, length = OWN_EVENT_TYPES[account]
    start = at(40 + len(account), 9)
    before = len(sim.requests)
    result = runtime.run(f"""
        local cal = {NS}.{account}
        cal.list_teams({{}}); cal.list_event_types({{}}); cal.list_event_types({{teamId = 5}})
        cal.get_event_type({{id = {event_type}}}); cal.list_bookings({{}}); cal.list_bookings({{status = "confirmed"}})
        local booked = cal.create_booking({{eventTypeId = {event_type}, start = "{iso(start)}",
          ["end"] = "{iso(start + timedelta(minutes=length))}", responses = {{name = "K", email = "k@example.com"}}}}).booking
        return {{cal.get_current_user({{}}).user.username, cal.get_booking({{id = booked.id}}).booking.uid == booked.uid}}""")
    assert ok(result) == [{"default": "alex-morgan", "work": "jordan-lee", "personal": "sam-rivera"}[account], True]
    failed = call(runtime, "get_event_type", "id = 999", account=account)
    requests = sent(sim, before)
    assert len(requests) >= 11
    for request in requests:
        assert request.headers["authorization"] == f"Bearer {key}"
        assert key not in str(request.url) and key.encode() not in request.content
        assert all(key not in value for name, value in request.headers.items() if name != "authorization")
    for outcome in (result, failed):
        assert key not in json.dumps(outcome.to_dict(), default=str)


def test_multi_account_namespaces_reach_the_simulator_with_their_own_key(runtime: Runtime, sim: CalComSimulator) -> None:
    before = len(sim.requests)
    result = ok(runtime.run(f"""
        local cal = {NS}
        return {{cal.get_current_user({{}}).user.username, cal.default.get_current_user({{}}).user.username,
                 cal.work.get_current_user({{}}).user.username, cal.personal.get_current_user({{}}).user.username,
                 #cal.work.list_teams({{}}).teams, #cal.personal.list_teams({{}}).teams}}"""))
    assert result == ["alex-morgan", "alex-morgan", "jordan-lee", "sam-rivera", 2, 0]
    used = [r.headers["authorization"].removeprefix("Bearer ") for r in sent(sim, before)]
    assert used == [KEYS["default"], KEYS["default"], KEYS["work"], KEYS["personal"], KEYS["work"], KEYS["personal"]]


def test_uids_are_remembered_per_account(demo: Demo, sim: CalComSimulator) -> None:
    with demo.runtime() as fresh:
        ok(call(fresh, "list_bookings", "limit = 250"))  # the default account now knows booking 130's uid
        before = len(sim.requests)
        booking = ok(call(fresh, "get_booking", "id = 130", account="work"))["booking"]
        assert booking["hosts"][0]["username"] == "jordan-lee"
        assert [r.url.path for r in sent(sim, before)] == ["/v2/bookings", f"/v2/bookings/{booking['uid']}"]


def test_api_versions_are_per_account_settings(demo: Demo, sim: CalComSimulator) -> None:
    newer = {"api_key": KEYS["default"], "bookings_api_version": "2026-02-25", "event_types_api_version": "2024-06-14"}
    with runtime_with_accounts(demo, {"newer": newer, "broken": {**newer, "bookings_api_version": "2024-09-04"}}) as rt:
        before = len(sim.requests)
        assert ok(call(rt, "list_bookings", "limit = 1", account="newer"))["bookings"][0]["id"] == 118
        assert sent(sim, before)[0].headers["cal-api-version"] == "2026-02-25"
        problem = error(call(rt, "list_bookings", "limit = 1", account="broken"))  # a version Cal.com does not serve here
        assert (problem["type"], problem["status"]) == ("UpstreamNotFound", 404) and "Cannot GET" in problem["message"]
