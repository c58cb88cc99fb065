"""``endpoint_headers``: headers per endpoint family, templated from account settings, sent on every
request below the path (declarations and hooks alike); and ``ctx.parse_time``/``ctx.format_time``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from kosmo_runtime._accounts import Account, Secret
from kosmo_runtime._context import CallContext
from kosmo_runtime._discovery import Catalog
from kosmo_runtime._endpoint_headers import headers_for, path_headers
from kosmo_runtime._http import ClientPool, Http
from kosmo_runtime._manifest import Manifest

RULES = {"/v2/bookings": {"cal-api-version": "{bookings}"}, "/v2/bookings/special": {"X-Mode": "{mode}-v{bookings}"},
         "/v2/event-types/": {"cal-api-version": "{event_types}"}}


def test_headers_are_filled_from_settings_and_matched_by_path_segments() -> None:
    rules = path_headers(RULES, {"bookings": "2024-08-13", "event_types": "2024-06-14", "mode": "fast"})
    assert headers_for(rules, "/v2/bookings") == {"cal-api-version": "2024-08-13"}
    assert headers_for(rules, "v2/bookings/abc?x=1") == {"cal-api-version": "2024-08-13"}
    assert headers_for(rules, "https://api.cal.com/v2/bookings/abc") == {"cal-api-version": "2024-08-13"}
    assert headers_for(rules, "/v2/bookings/special/1") == {"cal-api-version": "2024-08-13", "x-mode": "fast-v2024-08-13"}
    longer = path_headers({"/a": {"h": "1", "i": "2"}, "/a/b": {"h": "3"}}, {})
    assert headers_for(longer, "/a/b/c") == {"h": "3", "i": "2"} and headers_for(longer, "/a") == {"h": "1", "i": "2"}
    assert headers_for(rules, "/v2/event-types") == {"cal-api-version": "2024-06-14"}  # a trailing slash is ignored
    for other in ("/v2/bookingsX", "/v2/teams/5/event-types", "/v2", "/"):
        assert headers_for(rules, other) is None, other


def test_a_setting_not_set_leaves_its_header_out() -> None:
    rules = path_headers(RULES, {"bookings": "2024-08-13", "event_types": None})
    assert headers_for(rules, "/v2/event-types/7") is None
    assert headers_for(rules, "/v2/bookings/special") == {"cal-api-version": "2024-08-13"}  # {mode} not set: no x-mode


def _manifest(**extra: Any) -> dict[str, Any]:
    data = Catalog().find("cal-com").manifest.model_dump(exclude_defaults=True)  # type: ignore[union-attr]
    return {**data, **extra}


def test_the_manifest_checks_paths_and_settings() -> None:
    assert Manifest.model_validate(_manifest()).endpoint_headers["/v2/bookings"] == {
        "cal-api-version": "{bookings_api_version}"}
    with pytest.raises(ValueError, match=r"endpoint_headers /v2/x: \['nope'\] name no setting of this manifest"):
        Manifest.model_validate(_manifest(endpoint_headers={"/v2/x": {"h": "{nope}"}}))
    with pytest.raises(ValueError, match="'v2/x' must be a path starting with '/'"):
        Manifest.model_validate(_manifest(endpoint_headers={"v2/x": {"h": "1"}}))


def test_every_request_of_a_hook_gets_them_and_its_own_headers_win() -> None:
    manifest = Catalog().find("cal-com").manifest  # type: ignore[union-attr]
    account = Account("cal-com", "default", {"base_url": "http://127.0.0.1:9", "bookings_api_version": "2026-02-25",
                                             "event_types_api_version": "2024-06-14"}, {"api_key": Secret("cal_x")})
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "pagination": {"hasNextPage": False}})

    pool = ClientPool(transport=httpx.MockTransport(answer))
    http = Http(pool.client(manifest, account), manifest, function="t", account="default", remaining=lambda: 10.0)
    http.get("/v2/bookings/abc")
    http.get("/v2/teams/5/event-types")
    http.get("/v2/event-types", headers={"cal-api-version": "2099-01-01"})
    http.post("/v2/bookings", json={})
    assert [r.headers.get("cal-api-version") for r in seen] == ["2026-02-25", None, "2099-01-01", "2026-02-25"]
    assert all(r.headers["authorization"] == "Bearer cal_x" for r in seen)


def test_times_for_hooks() -> None:
    assert CallContext.parse_time("2025-01-15T10:00:00Z") == datetime(2025, 1, 15, 10, tzinfo=timezone.utc)
    assert CallContext.parse_time("2025-01-15T10:00:00z") == datetime(2025, 1, 15, 10, tzinfo=timezone.utc)
    assert CallContext.parse_time("2025-01-15T10:00") == datetime(2025, 1, 15, 10, tzinfo=timezone.utc)  # no offset: UTC
    moment = CallContext.parse_time("2025-01-15T12:00:00.750+02:00")
    assert moment.utcoffset() == timedelta(hours=2)
    assert CallContext.format_time(moment) == "2025-01-15T10:00:00Z"  # UTC, to the second
    assert CallContext.parse_time(None) is None
    with pytest.raises(ValueError):
        CallContext.parse_time("tomorrow")
