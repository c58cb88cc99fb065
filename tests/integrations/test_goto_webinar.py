"""The goto-webinar integration end to end: Lua scripts -> Runtime -> real loopback HTTP -> the GoTo simulator.

At module teardown every request the simulator received is checked against GoTo's
official OpenAPI spec (``tests/data/specs/gotowebinar.yml``). The demo runs on its simulated
clock, which starts at ``DEMO_START``; times here are relative to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from kosmo_integrations.goto_webinar import hooks
from kosmo_integrations.goto_webinar.simulator import DEMO_ACCOUNTS, GoToWebinarSimulator

from kosmo_runtime import Fault
from kosmo_runtime._accounts import AccountsConfig
from kosmo_runtime._demo import DEMO_START, Demo
from kosmo_runtime._http import RetryPolicy
from kosmo_runtime._runtime import Runtime
from kosmo_runtime._store import Store
from tests.contract.openapi import SpecChecker

ID = "goto-webinar"
NS = 'app.integrations["goto-webinar"]'
SERVER = "https://api.getgo.com/G2W/rest/v2"
ME = "/admin/rest/v1/me"
ORGANIZERS = {"default": "200000000000123456", "marketing": "200000000000234567", "sales": "200000000000345678"}
NAMES = {"default": ("Avery", "Morgan"), "marketing": ("Jordan", "Lee"), "sales": ("Sofia", "Alvarez")}

PRODUCT_UPDATE = "1234567890"  # ended; session 9876543210 (6 attendees, 3755 s); 2 panelists
OFFICE_HOURS = "5849302716458302917"  # sequence: sessions 41203958, 41219876; one time ahead
LIVE_DEMO = "7302948571620394857"  # in session now
MASTERCLASS = "6192837465019283746"  # upcoming, 2 panelists
BRIEFING = "8019283746501928374"  # upcoming, no panelists
CANCELLED = "4928374650192837465"
DASHBOARDS = "3847561920384756192"  # ended 60 days ago
STATUSES = {
    PRODUCT_UPDATE: "ENDED", OFFICE_HOURS: "ACTIVE", LIVE_DEMO: "IN_SESSION",
    MASTERCLASS: "ACTIVE", BRIEFING: "ACTIVE", DASHBOARDS: "ENDED",
}

# Every function, called once with valid arguments (the webinar of the G2W calls is the seeded one).
CALLS = {
    "list_webinars": "list_webinars({})",
    "get_webinar": f'get_webinar({{id = "{PRODUCT_UPDATE}"}})',
    "create_webinar": 'create_webinar({subject = "Launch", times = {{startTime = "%s", endTime = "%s"}}})',
    "list_sessions": f'list_sessions({{webinar_id = "{PRODUCT_UPDATE}"}})',
    "get_session": f'get_session({{webinar_id = "{PRODUCT_UPDATE}", id = "9876543210"}})',
    "list_panelists": f'list_panelists({{webinar_id = "{PRODUCT_UPDATE}"}})',
    "get_current_user": "get_current_user({})",
}
READS = [name for name in CALLS if name != "create_webinar"]

Sim = GoToWebinarSimulator
MakeRuntime = Callable[..., Runtime]


def future_slot(days: int = 30) -> tuple[str, str]:
    """A one-hour slot ``days`` after the demo's start (a test run lasts seconds of simulated time)."""
    start = DEMO_START.replace(minute=0, second=0, microsecond=0) + timedelta(days=days)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def call_of(name: str, account: str | None = None) -> str:
    """The Lua expression calling ``name`` with valid arguments (on ``account`` when given)."""
    expression = CALLS[name] % future_slot() if name == "create_webinar" else CALLS[name]
    return f"{NS}{'.' + account if account else ''}.{expression}"


# -- contract check and fixtures -------------------------------------------------------------


def contract_problems(requests: list[httpx.Request]) -> list[str]:
    """Spec violations of the requests the simulator received.

    ``/admin/rest/v1/me`` is GoTo's Admin API, which the G2W spec does not describe.
    """
    spec = SpecChecker("gotowebinar.yml", SERVER)
    return [
        f"{r.method} {r.url.raw_path.decode()}: {problem}"
        for r in requests
        if r.url.path != ME
        for problem in spec.request_errors(r)
    ]


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo([ID]) as demo:
        yield demo
        requests = demo.simulators[ID].requests
        assert any(r.method == "POST" for r in requests) and any(r.url.path.endswith("/performance") for r in requests)
        problems = contract_problems(requests)
        assert not problems, "requests that do not conform to gotowebinar.yml:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def runtime(demo: Demo) -> Iterator[Runtime]:
    with demo.runtime(retry=RetryPolicy(sleep=lambda seconds: None)) as runtime:
        yield runtime


@pytest.fixture
def sim(demo: Demo) -> Iterator[Sim]:
    """The simulator with its seeded state restored and no faults, for each test."""
    simulator = demo.simulators[ID]
    assert isinstance(simulator, Sim)
    simulator.clear_faults()
    simulator.seed()
    yield simulator
    simulator.clear_faults()


def ok(runtime: Runtime, expression: str) -> Any:
    """The value of a Lua expression calling the integration; fails the test on any error."""
    result = runtime.run(f"return {expression}")
    assert result.ok, result.error.to_dict() if result.error else result
    return result.result


def error(runtime: Runtime, expression: str, **options: Any) -> dict[str, Any]:
    result = runtime.run(f"return {expression}", **options)
    assert not result.ok and result.error is not None
    return result.error.to_dict()


def new_requests(sim: Sim, before: int) -> list[httpx.Request]:
    return sim.requests[before:]


@pytest.fixture
def runtime_with(demo: Demo) -> Iterator[MakeRuntime]:
    """Makes fresh Runtimes (empty memos) whose demo accounts carry extra fields."""
    made: list[Runtime] = []

    def make(**fields: Any) -> Runtime:
        accounts = {name: {**data, **fields} for name, data in demo.accounts_data[ID].items()}
        document = {"integrations": {ID: {"default": "default", "accounts": accounts}}}
        config = AccountsConfig.parse(yaml.safe_dump(document), "(test accounts)",
                                      lambda name: demo.catalog.find(name).manifest, demo.catalog.names)
        made.append(Runtime(accounts=config, store=Store(":memory:"), retry=RetryPolicy(sleep=lambda seconds: None),
                            clock=demo.clock))
        return made[-1]

    yield make
    for runtime in made:
        runtime.close()


# -- list_webinars ---------------------------------------------------------------------------


def test_list_webinars_derives_a_status_for_each_webinar(runtime: Runtime, sim: Sim) -> None:
    result = ok(runtime, f"{NS}.list_webinars({{}})")
    webinars = result["_embedded"]["webinars"]
    assert {w["webinarKey"]: w["status"] for w in webinars} == STATUSES  # cancelled one never listed
    assert result["page"] == {"size": 20, "totalElements": 6, "totalPages": 1, "number": 0}
    first = webinars[0]  # earliest start first, upstream fields kept
    assert first["webinarKey"] == DASHBOARDS and first["subject"] == "Getting Started with Dashboards"
    assert first["registrationUrl"].endswith(DASHBOARDS) and len(first["webinarID"]) == 9
    start, end = (datetime.fromisoformat(result["window"][k]) for k in ("fromTime", "toTime"))
    assert timedelta(days=729) < end - start <= timedelta(days=730)
    assert abs(start + (end - start) / 2 - sim.now()) < timedelta(minutes=1)  # centred on the demo's clock


def test_list_webinars_sends_the_window_and_paging_upstream(runtime: Runtime, sim: Sim) -> None:
    ok(runtime, f"{NS}.get_current_user({{}})")  # organizer key known
    before = len(sim.requests)
    result = ok(runtime, f"{NS}.list_webinars({{page = 1, size = 2}})")
    assert result["page"] == {"size": 2, "totalElements": 6, "totalPages": 3, "number": 1}
    assert [w["webinarKey"] for w in result["_embedded"]["webinars"]] == [OFFICE_HOURS, LIVE_DEMO]
    live, listed = new_requests(sim, before)
    assert live.url.path == f"/G2W/rest/v2/organizers/{ORGANIZERS['default']}/insessionWebinars"
    assert listed.url.path == f"/G2W/rest/v2/organizers/{ORGANIZERS['default']}/webinars"
    params = dict(listed.url.params)
    assert (params["page"], params["size"]) == ("1", "2")
    assert params["fromTime"] == result["window"]["fromTime"] and params["toTime"] == result["window"]["toTime"]
    assert dict(live.url.params) == result["window"]


@pytest.mark.parametrize(
    ("status", "keys"),
    [
        ("ACTIVE", [OFFICE_HOURS, MASTERCLASS, BRIEFING]),
        ("in_session", [LIVE_DEMO]),
        ("Ended", [DASHBOARDS, PRODUCT_UPDATE]),
    ],
)
def test_list_webinars_filters_by_status(runtime: Runtime, sim: Sim, status: str, keys: list[str]) -> None:
    result = ok(runtime, f'{NS}.list_webinars({{status = "{status}"}})')
    assert [w["webinarKey"] for w in result["_embedded"]["webinars"]] == keys
    assert {w["status"] for w in result["_embedded"]["webinars"]} == {status.upper()}
    assert result["page"]["totalElements"] == len(keys) and "warnings" not in result


def test_list_webinars_pages_over_the_filtered_webinars(runtime: Runtime, sim: Sim) -> None:
    result = ok(runtime, f'{NS}.list_webinars({{status = "ENDED", page = 1, size = 1}})')
    assert [w["webinarKey"] for w in result["_embedded"]["webinars"]] == [PRODUCT_UPDATE]
    assert result["page"] == {"size": 1, "totalElements": 2, "totalPages": 2, "number": 1}
    beyond = ok(runtime, f'{NS}.list_webinars({{status = "ENDED", page = 2, size = 1}})')
    assert beyond["_embedded"]["webinars"] == [] and beyond["page"]["totalElements"] == 2


def test_list_webinars_with_status_reads_every_upstream_page(
    runtime: Runtime, sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hooks, "MAX_PAGE_SIZE", 2)
    ok(runtime, f"{NS}.get_current_user({{}})")
    before = len(sim.requests)
    result = ok(runtime, f'{NS}.list_webinars({{status = "ACTIVE"}})')
    assert [w["webinarKey"] for w in result["_embedded"]["webinars"]] == [OFFICE_HOURS, MASTERCLASS, BRIEFING]
    pages = [dict(r.url.params) for r in new_requests(sim, before) if r.url.path.endswith("/webinars")]
    assert [(p["page"], p["size"]) for p in pages] == [("0", "2"), ("1", "2"), ("2", "2")]


@pytest.mark.parametrize(
    ("status", "warning"),
    [("CANCELED", "does not list cancelled webinars"), ("example_status", "unknown status 'example_status'")],
)
def test_list_webinars_status_that_matches_nothing_warns(
    runtime: Runtime, sim: Sim, status: str, warning: str
) -> None:
    before = len(sim.requests)
    result = ok(runtime, f'{NS}.list_webinars({{status = "{status}", page = 1, size = 1}})')
    assert result["_embedded"]["webinars"] == []
    assert result["page"] == {"size": 1, "totalElements": 0, "totalPages": 0, "number": 1}
    (text,) = result["warnings"]
    assert warning in text
    assert len(sim.requests) == before  # nothing can match: GoTo is not asked


def test_seed_metadata_example_runs(runtime: Runtime, sim: Sim) -> None:
    result = runtime.run("""
local result = app.integrations.goto_webinar.gotowebinar_list_webinars({
  page = 1,
  size = 1,
  status = "example_status"
})
print(result)""")
    assert result.ok, result.error
    assert "warnings" in result.output and "totalElements = 0" in result.output


@pytest.mark.parametrize(
    ("arguments", "param"),
    [("size = 0", "size"), ("size = 201", "size"), ("page = -1", "page"), ("status = 3", "status"),
     ('page = "first"', "page"), ('limit = 5', "limit")],
)
def test_list_webinars_validation(runtime: Runtime, sim: Sim, arguments: str, param: str) -> None:
    before = len(sim.requests)
    problem = error(runtime, f"{NS}.list_webinars({{{arguments}}})")
    assert problem["code"] == "invalid_argument" and problem["param"] == param
    assert len(sim.requests) == before


# -- get_webinar -----------------------------------------------------------------------------------


def test_get_webinar(runtime: Runtime, sim: Sim) -> None:
    webinar = ok(runtime, f'{NS}.get_webinar({{id = "{PRODUCT_UPDATE}"}})')
    assert webinar["subject"] == "Quarterly Product Update" and webinar["description"].startswith("A walkthrough")
    assert webinar["webinarKey"] == PRODUCT_UPDATE and webinar["organizerKey"] == ORGANIZERS["default"]  # strings
    assert webinar["status"] == "ENDED" and webinar["inSession"] is False and webinar["numberOfRegistrants"] == 48
    live = ok(runtime, f'{NS}.get_webinar({{id = "{LIVE_DEMO}"}})')
    assert live["status"] == "IN_SESSION" and live["inSession"] is True
    assert ok(runtime, f'{NS}.get_webinar({{id = "{OFFICE_HOURS}"}})')["status"] == "ACTIVE"


@pytest.mark.parametrize(
    "key", [CANCELLED, "999999999", "2938475610293847561"], ids=["cancelled", "unknown", "other-organizer"]
)
def test_get_webinar_not_found(runtime: Runtime, sim: Sim, key: str) -> None:
    problem = error(runtime, f'{NS}.get_webinar({{id = "{key}"}})')
    assert problem["code"] == "upstream_not_found" and problem["status"] == 404
    assert problem["service_code"] == "NotFound" and f"Webinar with key {key} does not exist" in problem["message"]


@pytest.mark.parametrize(("arguments", "param"), [("", "id"), ("id = 1234567890", "id"), ('key = "1"', "key")])
def test_get_webinar_validation(runtime: Runtime, sim: Sim, arguments: str, param: str) -> None:
    problem = error(runtime, f"{NS}.get_webinar({{{arguments}}})")
    assert problem["code"] == "invalid_argument" and problem["param"] == param


# -- create_webinar --------------------------------------------------------------------------------


def test_create_single_session_webinar(runtime: Runtime, sim: Sim) -> None:
    start, end = future_slot(days=40)
    before = len(sim.requests)
    created = ok(runtime, f'{NS}.create_webinar({{subject = "Q2 Product Demo", description = "Live demo.", '
                          f'times = {{{{startTime = "{start}", endTime = "{end}"}}}}}})')
    assert created["type"] == "single_session" and created["webinarKey"].isdigit() and "recurrenceKey" not in created
    (post,) = [r for r in new_requests(sim, before) if r.method == "POST"]
    assert post.url.path == f"/G2W/rest/v2/organizers/{ORGANIZERS['default']}/webinars"
    assert json.loads(post.content) == {"subject": "Q2 Product Demo", "description": "Live demo.",
                                        "times": [{"startTime": start, "endTime": end}], "type": "single_session"}
    webinar = ok(runtime, f'{NS}.get_webinar({{id = "{created["webinarKey"]}"}})')
    assert webinar["subject"] == "Q2 Product Demo" and webinar["times"] == [{"startTime": start, "endTime": end}]
    assert webinar["status"] == "ACTIVE"


def test_create_series_from_several_slots(runtime: Runtime, sim: Sim) -> None:
    (s1, e1), (s2, e2) = future_slot(days=5), future_slot(days=12)
    before = len(sim.requests)
    created = ok(runtime, f'{NS}.create_webinar({{subject = "Roadshow", times = {{'
                          f'{{startTime = "{s1}", endTime = "{e1}"}}, {{startTime = "{s2}", endTime = "{e2}"}}}}}})')
    assert created["type"] == "series" and created["recurrenceKey"].isdigit()
    listed = ok(runtime, f'{NS}.list_webinars({{status = "ACTIVE", size = 200}})')["_embedded"]["webinars"]
    assert sorted(w["times"][0]["startTime"] for w in listed if w["subject"] == "Roadshow") == [s1, s2]
    (post,) = [r for r in new_requests(sim, before) if r.method == "POST"]
    assert json.loads(post.content)["type"] == "series" and len(json.loads(post.content)["times"]) == 2


def test_create_with_past_time_is_refused_upstream(runtime: Runtime, sim: Sim) -> None:
    # GoTo refuses a start that has passed: here, a day before the demo's simulated date.
    start, end = future_slot(days=-1)
    problem = error(runtime, f'{NS}.create_webinar({{subject = "Q2 Product Demo", times = {{'
                             f'{{startTime = "{start}", endTime = "{end}"}}}}}})')
    assert problem["code"] == "upstream_error" and problem["status"] == 400
    assert problem["service_code"] == "InvalidRequest" and "must be in the future" in problem["message"]


@pytest.mark.parametrize(
    ("arguments", "param", "text"),
    [
        ("times = {SLOT}", "subject", "missing required parameter 'subject'"),
        ('subject = "x"', "times", "missing required parameter 'times'"),
        ('subject = "x", times = {}', "times", "at least 1 long"),
        ('subject = "x", times = "tomorrow"', "times", "must be an array"),
        ('subject = "x", times = {"tomorrow"}', "times", "times[1] must be an object"),
        ('subject = "x", times = {{startTime = "2030-01-01T10:00:00Z"}}', "times", "needs endTime as a string"),
        ('subject = "x", times = {{startTime = 1, endTime = 2}}', "times", "needs startTime and endTime as a string"),
        ('subject = "x", times = {{timeZone = "UTC", startTime = "a", endTime = "a"}}', "times", "timeZone"),
        ('subject = "x", times = {{startTime = "next tuesday", endTime = "2030-01-01T10:00:00Z"}}', "times[1].startTime",
         "times[1].startTime' must be an ISO 8601 date-time, got 'next tuesday'"),
        ('subject = string.rep("x", 129), times = {SLOT}', "subject", "at most 128"),
        ('subject = "", times = {SLOT}', "subject", "at least 1 long"),
        ('subject = "x", description = 5, times = {SLOT}', "description", "must be a string"),
        ('subject = "x", type = "series", times = {SLOT}', "type", "unknown parameter 'type'"),
    ],
)
def test_create_webinar_validation(runtime: Runtime, sim: Sim, arguments: str, param: str, text: str) -> None:
    start, end = future_slot()
    arguments = arguments.replace("SLOT", f'{{startTime = "{start}", endTime = "{end}"}}')
    before = len(sim.requests)
    problem = error(runtime, f"{NS}.create_webinar({{{arguments}}})")
    assert problem["code"] == "invalid_argument" and problem["param"] == param and text in problem["message"]
    assert not [r for r in new_requests(sim, before) if r.method == "POST"]


def test_create_webinar_dry_run_sends_nothing(runtime: Runtime, sim: Sim) -> None:
    ok(runtime, f"{NS}.get_current_user({{}})")  # organizer key already known: not even a read is needed
    before = len(sim.requests)
    result = runtime.run(f"return {call_of('create_webinar')}", dry_run=True)
    assert result.ok and result.result["dry_run"] is True
    sent = result.result["would_send"]
    assert sent["method"] == "POST"
    assert sent["url"].endswith(f"/G2W/rest/v2/organizers/{ORGANIZERS['default']}/webinars")
    assert sent["body"]["subject"] == "Launch" and sent["body"]["type"] == "single_session"
    assert len(sim.requests) == before


def test_create_webinar_read_only_is_denied(runtime: Runtime, sim: Sim) -> None:
    before = len(sim.requests)
    problem = error(runtime, call_of("create_webinar"), read_only=True)
    assert problem["type"] == "PermissionDenied" and problem["code"] == "permission_denied"
    assert len(sim.requests) == before


def test_create_webinar_is_not_retried_after_a_server_error(runtime: Runtime, sim: Sim) -> None:
    ok(runtime, f"{NS}.get_current_user({{}})")
    sim.inject(Fault("status", status=503, method="POST", times=None))
    before = len(sim.requests)
    problem = error(runtime, call_of("create_webinar"))
    assert problem["code"] == "service_unavailable" and problem["status"] == 503
    assert len([r for r in new_requests(sim, before) if r.method == "POST"]) == 1


# -- list_sessions / get_session ------------------------------------------------------------------------


def test_list_sessions_exposes_sessions(runtime: Runtime, sim: Sim) -> None:
    result = ok(runtime, f'{NS}.list_sessions({{webinar_id = "{PRODUCT_UPDATE}"}})')
    (session,) = result["_embedded"]["sessions"]
    assert result["_embedded"]["sessionInfoResources"] == [session]
    assert session["sessionKey"] == "9876543210" and session["webinarKey"] == PRODUCT_UPDATE
    assert session["registrantsAttended"] == 6 and session["startTime"].endswith("Z")
    assert result["page"] == {"size": 20, "totalElements": 1, "totalPages": 1, "number": 0}


def test_list_sessions_pages_upstream(runtime: Runtime, sim: Sim) -> None:
    result = ok(runtime, f'{NS}.list_sessions({{webinar_id = "{OFFICE_HOURS}", page = 1, size = 1}})')
    assert [s["sessionKey"] for s in result["_embedded"]["sessions"]] == ["41219876"]
    assert result["page"] == {"size": 1, "totalElements": 2, "totalPages": 2, "number": 1}
    assert dict(sim.requests[-1].url.params) == {"page": "1", "size": "1"}
    upcoming = ok(runtime, f'{NS}.list_sessions({{webinar_id = "{MASTERCLASS}"}})')
    assert upcoming["_embedded"]["sessions"] == [] and upcoming["page"]["totalElements"] == 0


@pytest.mark.parametrize(
    ("arguments", "param"),
    [("", "webinar_id"), ("webinar_id = 5", "webinar_id"), ('webinar_id = "1", size = 500', "size"),
     ('webinar_id = "1", id = "2"', "id")],
)
def test_list_sessions_validation(runtime: Runtime, sim: Sim, arguments: str, param: str) -> None:
    problem = error(runtime, f"{NS}.list_sessions({{{arguments}}})")
    assert problem["code"] == "invalid_argument" and problem["param"] == param


def test_get_session_counts_attendees_and_duration(runtime: Runtime, sim: Sim) -> None:
    session = ok(runtime, f'{NS}.get_session({{webinar_id = "{PRODUCT_UPDATE}", id = "9876543210"}})')
    assert session["attendees"] == 6 and session["duration"] == 3755
    assert (session["sessionKey"], session["webinarKey"]) == ("9876543210", PRODUCT_UPDATE)
    assert session["startTime"] == session["sessionInfo"]["startTime"]
    grace = next(a for a in session["attendeeList"] if a["firstName"] == "Grace")
    assert grace["sessionKey"] == "9876543210" and grace["registrantKey"] == "4829301746529384712"
    assert grace["attendanceTimeInSeconds"] == (1980 - 240) + (3755 - 2105) and len(grace["attendance"]) == 2
    assert session["attendance"]["registrantCount"] == 48 and session["attendance"]["percentageAttendance"] == 12.5
    assert session["pollsAndSurveys"]["pollCount"] == 3


@pytest.mark.parametrize(
    ("webinar", "session"), [(PRODUCT_UPDATE, "1111111"), (DASHBOARDS, "9876543210"), (CANCELLED, "1")],
    ids=["unknown-session", "session-of-other-webinar", "cancelled-webinar"],
)
def test_get_session_not_found(runtime: Runtime, sim: Sim, webinar: str, session: str) -> None:
    problem = error(runtime, f'{NS}.get_session({{webinar_id = "{webinar}", id = "{session}"}})')
    assert problem["code"] == "upstream_not_found" and problem["service_code"] == "NotFound"


@pytest.mark.parametrize(
    ("arguments", "param"),
    [('webinar_id = "1"', "id"), ('id = "1"', "webinar_id"), ('webinar_id = "1", id = {}', "id")],
)
def test_get_session_validation(runtime: Runtime, sim: Sim, arguments: str, param: str) -> None:
    problem = error(runtime, f"{NS}.get_session({{{arguments}}})")
    assert problem["code"] == "invalid_argument" and problem["param"] == param


# -- list_panelists ------------------------------------------------------------------------------------------


def test_list_panelists(runtime: Runtime, sim: Sim) -> None:
    result = ok(runtime, f'{NS}.list_panelists({{webinar_id = "{PRODUCT_UPDATE}"}})')
    assert [(p["name"], p["email"]) for p in result["_embedded"]["panelists"]] == [
        ("Priya Raman", "priya.raman@example.com"), ("Marcus Chen", "marcus.chen@example.com")]
    assert result["_embedded"]["panelists"][0]["joinLink"].startswith("https://global.gotowebinar.com/join/")
    assert result["page"] == {"size": 20, "totalElements": 2, "totalPages": 1, "number": 0}


def test_list_panelists_pages_client_side(runtime: Runtime, sim: Sim) -> None:
    ok(runtime, f"{NS}.get_current_user({{}})")
    before = len(sim.requests)
    result = ok(runtime, f'{NS}.list_panelists({{webinar_id = "{PRODUCT_UPDATE}", page = 1, size = 1}})')
    assert [p["name"] for p in result["_embedded"]["panelists"]] == ["Marcus Chen"]
    assert result["page"] == {"size": 1, "totalElements": 2, "totalPages": 2, "number": 1}
    (request,) = new_requests(sim, before)
    assert not request.url.params  # GoTo's panelist list takes no paging
    empty = ok(runtime, f'{NS}.list_panelists({{webinar_id = "{BRIEFING}"}})')
    assert empty["_embedded"]["panelists"] == [] and empty["page"]["totalPages"] == 0
    problem = error(runtime, f'{NS}.list_panelists({{webinar_id = "999999999"}})')
    assert problem["code"] == "upstream_not_found"


@pytest.mark.parametrize(("arguments", "param"), [("", "webinar_id"), ('webinar_id = "1", page = 1.5', "page"),
                                                  ('webinar_id = "1", size = 0', "size")])
def test_list_panelists_validation(runtime: Runtime, sim: Sim, arguments: str, param: str) -> None:
    problem = error(runtime, f"{NS}.list_panelists({{{arguments}}})")
    assert problem["code"] == "invalid_argument" and problem["param"] == param


# -- get_current_user and the organizer key --------------------------------------------------------------------


def test_get_current_user(runtime: Runtime, sim: Sim) -> None:
    me = ok(runtime, f"{NS}.get_current_user({{}})")
    assert (me["firstName"], me["lastName"], me["email"]) == ("Avery", "Morgan", "avery.morgan@example.com")
    assert me["accountKey"] == "5126718393029384756" and me["key"] == me["organizerKey"] == ORGANIZERS["default"]
    assert me["timeZone"] == "America/New_York"
    problem = error(runtime, f"{NS}.get_current_user({{verbose = true}})")
    assert problem["code"] == "invalid_argument" and problem["param"] == "verbose"


def test_organizer_key_is_looked_up_once_per_account(runtime_with: MakeRuntime, sim: Sim) -> None:
    runtime = runtime_with()
    before = len(sim.requests)
    for _ in range(2):
        ok(runtime, f'{NS}.list_panelists({{webinar_id = "{PRODUCT_UPDATE}"}})')
        ok(runtime, f"{NS}.sales.list_webinars({{}})")
    paths = [r.url.path for r in new_requests(sim, before)]
    assert paths.count(ME) == 2  # one per account
    assert paths[0] == ME and f"/organizers/{ORGANIZERS['sales']}/webinars" in paths[-1]


def test_configured_organizer_key_skips_the_lookup(runtime_with: MakeRuntime, sim: Sim) -> None:
    runtime = runtime_with(organizer_key=ORGANIZERS["default"])
    before = len(sim.requests)
    ok(runtime, f'{NS}.list_panelists({{webinar_id = "{PRODUCT_UPDATE}"}})')
    (request,) = new_requests(sim, before)
    assert request.url.path == f"/G2W/rest/v2/organizers/{ORGANIZERS['default']}/webinars/{PRODUCT_UPDATE}/panelists"


# -- upstream failures, for every function -------------------------------------------------------------------


def fault_path(name: str) -> str:
    return r"^/admin/" if name == "get_current_user" else r"^/G2W/"


@pytest.fixture
def warm(runtime: Runtime, sim: Sim) -> Sim:
    """The simulator, with the default organizer key already known to the runtime."""
    ok(runtime, f"{NS}.get_current_user({{}})")
    return sim


@pytest.mark.parametrize("name", list(CALLS))
def test_bad_token_is_auth_failed(runtime_with: MakeRuntime, sim: Sim, name: str) -> None:
    runtime = runtime_with(access_token="expired-token")
    problem = error(runtime, call_of(name))
    assert problem["code"] == "auth_failed" and problem["status"] == 403
    assert problem["service_code"] == "InvalidToken" and "Invalid token passed" in problem["message"]
    assert "expired-token" not in json.dumps(problem)


@pytest.mark.parametrize("name", list(CALLS))
def test_client_error_is_upstream_error(runtime: Runtime, warm: Sim, name: str) -> None:
    warm.inject(Fault("status", status=400, path=fault_path(name)))
    problem = error(runtime, call_of(name))
    assert problem["code"] == "upstream_error" and problem["status"] == 400
    assert problem["service_code"] == "InvalidRequest" and "Injected fault" in problem["message"]
    assert problem["retryable"] is False


@pytest.mark.parametrize("name", list(CALLS))
def test_not_found_is_upstream_not_found(runtime: Runtime, warm: Sim, name: str) -> None:
    warm.inject(Fault("status", status=404, path=fault_path(name)))
    problem = error(runtime, call_of(name))
    assert problem["code"] == "upstream_not_found" and problem["service_code"] == "NotFound"


@pytest.mark.parametrize("name", READS)
def test_one_server_error_is_retried(runtime: Runtime, warm: Sim, name: str) -> None:
    warm.inject(Fault("status", status=503, path=fault_path(name)))
    result = runtime.run(f"return {call_of(name)}")
    assert result.ok, result.error
    assert result.calls[-1].retries == 1


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize(("status", "code"), [(503, "service_unavailable"), (500, "service_unavailable"),
                                              (429, "rate_limited")])
def test_persistent_failure_is_a_structured_error(
    runtime: Runtime, warm: Sim, name: str, status: int, code: str
) -> None:
    warm.inject(Fault("status", status=status, retry_after=0, path=fault_path(name), times=None))
    problem = error(runtime, call_of(name))
    assert problem["code"] == code and problem["status"] == status
    retryable = status in (429, 503)
    assert problem["retryable"] is retryable
    if status == 429:
        assert problem["retry_after"] == 0 and problem["service_code"] == "TooManyRequests"


# -- credentials and accounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("account", list(DEMO_ACCOUNTS))
def test_token_travels_only_in_the_authorization_header(runtime: Runtime, sim: Sim, account: str) -> None:
    token = DEMO_ACCOUNTS[account]["access_token"]
    before = len(sim.requests)
    webinar = ok(runtime, f"{NS}.{account}.list_webinars({{}})")["_embedded"]["webinars"][0]["webinarKey"]
    calls = [call_of("get_current_user", account), call_of("create_webinar", account)] + [
        f"{NS}.{account}.{call}" for call in (
            f'get_webinar({{id = "{webinar}"}})', f'list_sessions({{webinar_id = "{webinar}"}})',
            f'list_panelists({{webinar_id = "{webinar}"}})')]
    if account == "default":
        calls.append(call_of("get_session"))
    result = runtime.run("\n".join(f"print(json.encode({call}))" for call in calls))
    assert result.ok, result.error
    requests = new_requests(sim, before)
    assert len(requests) >= 6 and {r.method for r in requests} == {"GET", "POST"}
    for request in requests:
        assert request.headers["authorization"] == f"Bearer {token}"
        others = [v for k, v in request.headers.items() if k.lower() != "authorization"]
        assert token not in str(request.url) and token.encode() not in request.content
        assert not any(token in v for v in others)
    assert token not in json.dumps([result.result, result.output]) and "Bearer" not in result.output


@pytest.mark.parametrize("account", list(DEMO_ACCOUNTS))
def test_each_account_is_its_own_organizer(runtime: Runtime, sim: Sim, account: str) -> None:
    before = len(sim.requests)
    namespace = f"{NS}.{account}"
    me = ok(runtime, f"{namespace}.get_current_user({{}})")
    assert (me["firstName"], me["lastName"]) == NAMES[account] and me["organizerKey"] == ORGANIZERS[account]
    webinars = ok(runtime, f"{namespace}.list_webinars({{}})")["_embedded"]["webinars"]
    assert webinars and {w["organizerKey"] for w in webinars} == {ORGANIZERS[account]}
    for request in new_requests(sim, before):
        assert request.headers["authorization"] == f"Bearer {DEMO_ACCOUNTS[account]['access_token']}"
        assert request.url.path == ME or f"/organizers/{ORGANIZERS[account]}/" in request.url.path


def test_default_namespace_is_the_default_account(runtime: Runtime, sim: Sim) -> None:
    plain = ok(runtime, f"{NS}.get_current_user({{}})")
    explicit = ok(runtime, f"{NS}.default.get_current_user({{}})")
    assert plain == explicit and plain["email"] == "avery.morgan@example.com"
    marketing = ok(runtime, f"{NS}.marketing.list_webinars({{}})")["_embedded"]["webinars"]
    assert [w["subject"] for w in marketing] == ["Campaign Launch Preview"]
    assert marketing[0]["status"] == "ACTIVE"


# -- documented examples ---------------------------------------------------------------------------------------


SEED_EXAMPLES = {
    "list_webinars": ("""
local result = app.integrations["goto-webinar"].list_webinars({
  status = "ACTIVE"
})

for _, webinar in ipairs(result._embedded.webinars or {}) do
  print(webinar.subject .. " (" .. webinar.webinarKey .. ")")
end

-- Paginate through past webinars
local result = app.integrations["goto-webinar"].list_webinars({
  status = "ENDED",
  page = 0,
  size = 50
})
""", f"Customer Success Masterclass ({MASTERCLASS})"),
    "get_webinar": ("""
local result = app.integrations["goto-webinar"].get_webinar({
  id = "1234567890"
})
print(result.subject)
print(result.description)
""", "Quarterly Product Update\nA walkthrough"),
    "list_sessions": ("""
local result = app.integrations["goto-webinar"].list_sessions({
  webinar_id = "1234567890"
})
for _, session in ipairs(result._embedded.sessions or {}) do
  print(session.sessionKey .. ": " .. session.startTime)
end
""", "9876543210: 20"),
    "get_session": ("""
local result = app.integrations["goto-webinar"].get_session({
  webinar_id = "1234567890",
  id = "9876543210"
})
print("Attendees: " .. result.attendees)
print("Duration (seconds): " .. result.duration)
""", "Attendees: 6\nDuration (seconds): 3755"),
    "list_panelists": ("""
local result = app.integrations["goto-webinar"].list_panelists({
  webinar_id = "1234567890"
})
for _, panelist in ipairs(result._embedded.panelists or {}) do
  print(panelist.name .. " <" .. panelist.email .. ">")
end
""", "Priya Raman <priya.raman@example.com>\nMarcus Chen <marcus.chen@example.com>"),
    "get_current_user": ("""
local result = app.integrations["goto-webinar"].get_current_user({})
print(result.firstName .. " " .. result.lastName)
print("Email: " .. result.email)
print("Account key: " .. result.accountKey)
""", "Avery Morgan\nEmail: avery.morgan@example.com\nAccount key: 5126718393029384756"),
}


@pytest.mark.parametrize("name", list(SEED_EXAMPLES))
def test_seed_examples_run(runtime: Runtime, sim: Sim, name: str) -> None:
    source, expected = SEED_EXAMPLES[name]
    result = runtime.run(source)
    assert result.ok, result.error.to_dict() if result.error else None
    assert expected in result.output


def doc_examples() -> list[str]:
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "lua_docs" / "integrations" / f"{ID}.md"
    return re.findall(r"```lua\n(.*?)```", page.read_text(), re.S)


@pytest.mark.parametrize("source", doc_examples())
def test_doc_examples_run(runtime: Runtime, sim: Sim, source: str) -> None:
    result = runtime.run(source)
    assert result.ok, result.error.to_dict() if result.error else None
    assert result.output.strip() and "nil" not in result.output
