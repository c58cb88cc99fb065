"""The simulator base: demo accounts and seed data from data files, auth parsing, ISO times, paging."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from kosmo_runtime.integration import Simulator

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 15, 10, 37, 12, 345678, tzinfo=timezone.utc)


class Plain(Simulator):
    service = "plain"
    demo_accounts: ClassVar[dict[str, dict[str, str]]] = {"default": {"user": "u1", "secret": "s1"}, "other": {"user": "u2", "secret": "s2"}}
    credential_fields = ("user", "secret")

    def authenticate(self, request: httpx.Request) -> httpx.Response | None:
        return None if self.accepts(self.basic_credential(request)) else self.error(401, "no")


def request(authorization: str | None) -> httpx.Request:
    return httpx.Request("GET", "http://sim/x", headers={"Authorization": authorization} if authorization else {})


def test_default_credentials_join_the_credential_fields_of_every_demo_account() -> None:
    assert Plain().credentials == {"u1:s1", "u2:s2"}
    assert Plain(["only"]).credentials == {"only"}


def test_bearer_and_basic_credentials() -> None:
    assert Simulator.bearer_token(request("Bearer  tok ")) == "tok"
    assert Simulator.bearer_token(request("bearer tok")) == "tok"
    assert Simulator.bearer_token(request("Basic tok")) is None
    assert Simulator.bearer_token(request(None)) is None
    basic = "Basic " + base64.b64encode(b"u1:s1").decode()
    assert Simulator.basic_credential(request(basic)) == "u1:s1"
    assert Simulator.basic_credential(request("Basic ")) is None
    assert Simulator.basic_credential(request("Bearer u1:s1")) is None
    assert Simulator.basic_credential(request("Basic not-base64!")) == ""
    simulator = Plain()
    assert simulator(request(basic)).status_code == 404  # authenticated; no such route
    assert simulator(request("Basic " + base64.b64encode(b"u1:wrong").decode())).status_code == 401
    assert not simulator.accepts(None) and not simulator.accepts("")


def test_iso_times() -> None:
    moment = datetime(2026, 3, 15, 12, 37, 12, 345678, tzinfo=timezone(timedelta(hours=2)))
    assert Simulator.format_iso(moment) == "2026-03-15T10:37:12Z"
    assert Simulator.format_iso(moment, milliseconds=True) == "2026-03-15T10:37:12.345Z"
    assert Simulator.parse_iso("2026-03-15T12:37:12+02:00") == NOW.replace(microsecond=0)
    assert Simulator.parse_iso("2026-03-15T10:37:12.345678Z") == NOW
    assert Simulator.parse_iso("2026-03-15T10:37:12.345678z") == NOW
    assert Simulator.parse_iso("2026-03-15") == datetime(2026, 3, 15, tzinfo=timezone.utc)
    assert Simulator.parse_iso("2026-03-15T10:00:00", assume_utc=False) == datetime(2026, 3, 15, 10)
    assert Simulator.parse_iso("next tuesday") is None
    assert Simulator.parse_iso(20260315) is None


def test_seed_times_are_absolute_or_relative_to_the_clock() -> None:
    simulator = Plain(clock=lambda: NOW)
    midnight = datetime(2026, 3, 15, tzinfo=timezone.utc)
    assert simulator.midnight() == midnight
    assert simulator.at({"days": -14, "hours": 15}) == midnight - timedelta(days=14) + timedelta(hours=15)
    assert simulator.at({}) == midnight
    assert simulator.at({"from": "hour", "minutes": 90}) == datetime(2026, 3, 15, 11, 30, tzinfo=timezone.utc)
    assert simulator.at({"from": "now", "seconds": 1}) == datetime(2026, 3, 15, 10, 37, 13, tzinfo=timezone.utc)
    assert simulator.at("2025-01-15T10:00:00Z") == datetime(2025, 1, 15, 10, tzinfo=timezone.utc)
    assert simulator.at(datetime(2025, 1, 15, 10)) == datetime(2025, 1, 15, 10, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        simulator.at({"from": "tomorrow"})
    with pytest.raises(ValueError):
        simulator.at("soon")


def test_offset_pages() -> None:
    page = Simulator.page(list(range(25)), 20, 10)
    assert (page.items, page.total, page.end, page.has_next, page.total_pages) == ([20, 21, 22, 23, 24], 25, 30, False, 3)
    first = Simulator.page(list(range(25)), 0, 10)
    assert first.items == list(range(10)) and first.has_next and first.end == 10
    assert Simulator.page([], 0, 10).total_pages == 0


@pytest.mark.parametrize("name", ["agora", "whereby", "goto_webinar", "cal_com"])
def test_seed_data_is_a_packaged_file_beside_the_simulator(name: str) -> None:
    assert (ROOT / "integrations" / name / "simulator_data.yaml").is_file()
    data = Simulator.read_data(f"kosmo_integrations.{name}")
    assert data["demo_accounts"]["default"]
    data["demo_accounts"].clear()  # every read is a fresh copy
    assert Simulator.read_data(f"kosmo_integrations.{name}")["demo_accounts"]
    assert "*.yaml" in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
