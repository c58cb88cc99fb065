"""One clock per world: ``Runtime(clock=...)``, ``ctx.now()``, the script's ``os.time``/``os.date``,
``Simulator(clock=...)`` and the demo's simulated date, which starts at ``DEMO_START`` and advances."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from kosmo_integrations.agora.simulator import DEMO_ACCOUNTS as AGORA_ACCOUNTS
from kosmo_integrations.agora.simulator import AgoraSimulator
from kosmo_integrations.cal_com.simulator import CalComSimulator
from kosmo_integrations.goto_webinar.simulator import GoToWebinarSimulator
from kosmo_integrations.whereby.simulator import WherebySimulator

from kosmo_runtime import Demo, Runtime, Simulator, Store
from kosmo_runtime._cli import main
from kosmo_runtime._demo import DEMO_START

FIXED = datetime(2030, 5, 17, 12, 30, 45, tzinfo=timezone.utc)
GW = 'app.integrations["goto-webinar"]'
ISO = "!%Y-%m-%dT%H:%M:%SZ"


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def window_centre(window: dict[str, str]) -> datetime:
    start, end = parse(window["fromTime"]), parse(window["toTime"])
    return start + (end - start) / 2


# -- Runtime(clock=...) ---------------------------------------------------------------------------


def test_runtime_clock_reaches_handlers_and_scripts() -> None:
    with Demo(["goto-webinar"], start=None) as demo, \
            Runtime(accounts=demo.accounts(), store=Store(":memory:"), clock=lambda: FIXED) as runtime:
        result = runtime.run(f'return {GW}.list_webinars{{}}.window, os.time(), os.date("{ISO}"), os.date("!*t").year')
    assert result.ok, result.error and result.error.to_dict()
    window, seconds, text, year = result.result
    assert window == {"fromTime": "2029-05-17T12:30:45Z", "toTime": "2031-05-17T12:30:45Z"}  # ctx.now() +- 1 year
    assert (seconds, text, year) == (int(FIXED.timestamp()), "2030-05-17T12:30:45Z", 2030)


def test_explicit_times_are_standard_lua_whatever_the_clock() -> None:
    with Runtime(store=Store(":memory:"), clock=lambda: FIXED) as runtime:
        result = runtime.run('return os.date("!%Y-%m-%d", 0), os.time(os.date("*t", 86400)), math.type(os.time()),'
                             ' os.date(nil, 0) == os.date("%c", 0), pcall(os.time, 5)')
    assert result.ok, result.error and result.error.to_dict()
    assert result.result[:4] == ["1970-01-01", 86400, "integer", True]
    assert result.result[4] is False and "table expected" in result.result[5]


def test_the_real_clock_by_default() -> None:
    with Demo(["goto-webinar"], start=None) as demo, \
            Runtime(accounts=demo.accounts(), store=Store(":memory:")) as runtime:
        before = time.time()
        result = runtime.run(f"return os.time(), {GW}.list_webinars{{}}.window")
        after = time.time()
    assert result.ok, result.error and result.error.to_dict()
    seconds, window = result.result
    assert int(before) <= seconds <= after
    assert abs(window_centre(window) - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert abs(demo.now() - datetime.now(timezone.utc)) < timedelta(seconds=5)  # start=None: the real clock


# -- Simulator(clock=...) -------------------------------------------------------------------------


def test_simulator_now_is_its_clock_and_the_real_one_by_default() -> None:
    class Bare(Simulator):
        def authenticate(self, request: httpx.Request) -> None:
            return None

    assert abs(Bare([]).now() - datetime.now(timezone.utc)) < timedelta(seconds=5)
    assert Bare([], clock=lambda: FIXED).now() == FIXED
    assert Bare([], clock=lambda: FIXED.replace(tzinfo=None)).now() == FIXED  # naive is taken as UTC


def test_simulators_seed_relative_to_their_clock() -> None:
    midnight = FIXED.replace(hour=0, minute=0, second=0)
    meetings = WherebySimulator(clock=lambda: FIXED)._meetings
    assert parse(meetings["84417203"]["startDate"]) == midnight - timedelta(days=60) + timedelta(hours=8)
    assert meetings["71234501"]["startDate"] == "2025-01-06T09:00:00.000Z"  # absolute dates stay absolute
    assert CalComSimulator(clock=lambda: FIXED)._bookings[123].start == midnight + timedelta(days=2, hours=9)


def test_simulators_judge_past_and_stamp_times_by_their_clock() -> None:
    def create_webinar(simulator: GoToWebinarSimulator) -> httpx.Response:
        return simulator(httpx.Request(
            "POST", "https://api.getgo.com/G2W/rest/v2/organizers/200000000000123456/webinars",
            headers={"Authorization": "Bearer demo-goto-webinar-token-default"},
            json={"subject": "Q2", "times": [{"startTime": "2026-04-15T14:00:00Z", "endTime": "2026-04-15T15:00:00Z"}]},
        ))

    assert create_webinar(GoToWebinarSimulator(clock=lambda: DEMO_START)).status_code == 201
    assert create_webinar(GoToWebinarSimulator(clock=lambda: FIXED)).status_code == 400  # has passed

    account = AGORA_ACCOUNTS["default"]
    basic = base64.b64encode(f"{account['customer_id']}:{account['customer_secret']}".encode()).decode()
    created = AgoraSimulator(clock=lambda: FIXED)(httpx.Request(
        "POST", "https://api.agora.io/dev/v1/project", headers={"Authorization": f"Basic {basic}"}, json={"name": "p"},
    ))
    assert created.status_code == 201 and created.json()["project"]["created"] == int(FIXED.timestamp())


# -- the demo ------------------------------------------------------------------------------------


def test_demo_simulators_handlers_and_scripts_share_one_advancing_clock() -> None:
    with Demo(["goto-webinar", "whereby"]) as demo, demo.runtime() as runtime:
        first = demo.now()
        result = runtime.run(f"""
            local room = app.integrations.whereby.create_room{{}}      -- endDate: the handler's now + 1 hour
            return os.time(), os.date("{ISO}"), {GW}.list_webinars{{}}.window, room.startDate, room.endDate
        """)
        time.sleep(0.2)
        later = demo.now()
        assert abs(demo.simulators["whereby"].now() - later) < timedelta(seconds=1)
    assert result.ok, result.error and result.error.to_dict()
    seconds, text, window, opened, ends = result.result
    assert DEMO_START <= first < DEMO_START + timedelta(minutes=5)
    assert timedelta(seconds=0.2) <= later - first < timedelta(seconds=30)  # it advances in real time
    for moment in (datetime.fromtimestamp(seconds, timezone.utc), parse(text), window_centre(window),
                   parse(opened), parse(ends) - timedelta(hours=1)):
        assert first - timedelta(seconds=1) <= moment <= later + timedelta(seconds=1)


def test_demo_cli_banner_names_the_simulated_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--demo", "-e", 'return os.date("!%Y-%m-%d")']) == 0
    out, err = capsys.readouterr()
    assert "(simulated date 2025-01-10)" in err and "2025-01-10" in out
