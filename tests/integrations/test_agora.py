"""The Agora integration end to end: Lua scripts -> handlers -> real loopback HTTP -> the Agora simulator.

One demo (simulator, accounts, store) serves the module; tests that change state use
their own project names and channels. Agora publishes no machine-readable spec, so at
module teardown every request the simulator received is checked against the documented
shapes table of the simulator's tests (``DOCUMENTED`` via ``request_errors``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kosmo_integrations.agora.hooks import RECORDINGS
from kosmo_integrations.agora.simulator import DEMO_ACCOUNTS, SEEDED_RESOURCE_ID, AgoraSimulator

from kosmo_runtime import AccountsConfig, Demo, Fault, RetryPolicy, RunResult, Runtime, Store
from tests.simulators.test_agora_simulator import request_errors
from tests.support import NO_SEEDS, SEEDS

AG = "app.integrations.agora"
DOCS = Path(__file__).resolve().parents[2] / "lua_docs" / "integrations" / "agora.md"
LUA_BLOCK = re.compile(r"```lua\n(.*?)```", re.S)
SEEDED_PROJECT_IDS = ["abc123", "7sdnf3xRH", "Qm4pT8wLz"]
SECRETS = ["AKIAEXAMPLE", "example-secret", "rtc-token-example"]
STORAGE = ('storageConfig = {vendor = 1, region = 3, bucket = "team-recordings", accessKey = "AKIAEXAMPLE", '
           'secretKey = "example-secret", fileNamePrefix = {"reviews", "design"}}')


# -- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo(["agora"]) as started:
        yield started


@pytest.fixture(scope="module")
def sim(demo: Demo) -> AgoraSimulator:
    simulator = demo.simulators["agora"]
    assert isinstance(simulator, AgoraSimulator)
    return simulator


@pytest.fixture(scope="module")
def runtime(demo: Demo) -> Iterator[Runtime]:
    with demo.runtime(retry=RetryPolicy(sleep=lambda seconds: None)) as started:
        yield started


@pytest.fixture(scope="module", autouse=True)
def contract(sim: AgoraSimulator) -> Iterator[None]:
    """At teardown: every request of the module matches Agora's documented requests.

    Only requests are checked (the demo server keeps no responses; the simulator's own tests
    check those). No request is exempt: the error tests use valid requests Agora refuses
    (duplicates, conflicts) or injected faults.
    """
    yield
    problems = [f"{r.method} {r.url.path}: {p}" for r in sim.requests for p in request_errors(r)]
    assert not problems, "requests that do not match Agora's documented shapes:\n" + "\n".join(problems)


@pytest.fixture(autouse=True)
def _no_leftover_faults(sim: AgoraSimulator) -> Iterator[None]:
    yield
    sim.clear_faults()


def ok(runtime: Runtime, source: str, **options: Any) -> Any:
    """Run ``source``; it must succeed. Returns its result."""
    result = runtime.run(source, **options)
    assert result.ok, result.error.to_dict() if result.error else None
    return result.result


def failed(runtime: Runtime, source: str, **options: Any) -> dict[str, Any]:
    """Run ``source``; it must fail. Returns the error as a dict."""
    result = runtime.run(source, **options)
    assert not result.ok and result.error is not None, result.result
    return result.error.to_dict()


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def basic(account: str) -> str:
    fields = DEMO_ACCOUNTS[account]
    return "Basic " + base64.b64encode(f"{fields['customer_id']}:{fields['customer_secret']}".encode()).decode()


def accounts_runtime(demo: Demo, **accounts: dict[str, Any]) -> Runtime:
    """A Runtime (own store) whose agora accounts are ``accounts``; the first is the default."""
    document = {"integrations": {"agora": {"default": next(iter(accounts)), "accounts": accounts}}}
    config = AccountsConfig.parse(yaml.safe_dump(document), "(test accounts)",
                                  lambda name: demo.catalog.find(name).manifest, demo.catalog.names)
    return Runtime(accounts=config, store=Store(":memory:"), retry=RetryPolicy(sleep=lambda seconds: None),
                   clock=demo.clock)


def demo_account(demo: Demo, name: str, *, drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    """Demo account ``name``'s fields, without ``drop`` and with ``changes``."""
    fields = {k: v for k, v in demo.accounts_data["agora"][name].items() if k not in drop}
    return {**fields, **changes}


def start_source(cname: str, uid: str, extra: str = "", account: str = "") -> str:
    """A script starting a recording of ``cname`` as ``uid`` into the test bucket (``extra``: more clientRequest)."""
    target = f"{AG}.{account}" if account else AG
    return (f'return {target}.start_recording({{cname = "{cname}", uid = "{uid}", '
            f"clientRequest = {{{STORAGE}{extra}}}}})")


def start(runtime: Runtime, cname: str, uid: str, extra: str = "", account: str = "") -> dict[str, Any]:
    return ok(runtime, start_source(cname, uid, extra, account))


# -- list_projects ------------------------------------------------------------------------


def test_list_projects_adds_app_id_and_hides_the_app_certificate(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    result = ok(runtime, f"return {AG}.list_projects({{}})")
    assert [p["id"] for p in result["data"]][:3] == SEEDED_PROJECT_IDS
    assert result["projects"] == result["data"]
    first = result["data"][0]
    assert first == {
        "id": "abc123", "name": "kosmo-demo-meetings", "vendor_key": DEMO_ACCOUNTS["default"]["app_id"],
        "app_id": DEMO_ACCOUNTS["default"]["app_id"], "sign_key_enabled": True, "recording_server": None,
        "status": 1, "created": 1689238800,
    }
    assert [p["sign_key_enabled"] for p in result["data"][1:3]] == [False, False]
    assert all("sign_key" not in p for p in result["data"])
    [request] = sim.requests[mark:]
    assert (request.method, request.url.path, request.url.query) == ("GET", "/dev/v1/projects", b"")
    assert request.headers["content-type"] == "application/json;charset=utf-8"


def test_list_projects_never_shows_a_certificate(runtime: Runtime, sim: AgoraSimulator) -> None:
    certificate = sim._projects[DEMO_ACCOUNTS["default"]["customer_id"]]["abc123"].sign_key
    result = runtime.run(f"local r = {AG}.list_projects({{}}) print(r.data[1].name) return r")
    assert certificate not in json.dumps(result.to_dict())


def test_list_projects_validation(runtime: Runtime) -> None:
    error = failed(runtime, f"return {AG}.list_projects({{limit = 5}})")
    assert (error["type"], error["param"]) == ("InvalidArgument", "limit")


def test_list_projects_single_503_is_retried(runtime: Runtime, sim: AgoraSimulator) -> None:
    sim.inject(Fault("status", status=503, path="^/dev/v1/projects$"))
    result = runtime.run(f"return #{AG}.list_projects({{}}).data")
    assert result.ok and result.result >= 3
    assert result.calls[0].retries == 1


def test_list_projects_persistent_429_and_503(runtime: Runtime, sim: AgoraSimulator) -> None:
    sim.inject(Fault("status", status=429, retry_after=1, path="^/dev/v1/projects$", times=None))
    error = failed(runtime, f"return {AG}.list_projects({{}})")
    assert (error["type"], error["status"], error["retry_after"], error["retryable"]) == ("RateLimited", 429, 1.0, True)
    assert "API rate limit exceeded" in error["message"]
    sim.clear_faults()
    sim.inject(Fault("status", status=503, path="^/dev/v1/projects$", times=None))
    error = failed(runtime, f"return {AG}.list_projects({{}})")
    assert (error["type"], error["code"], error["status"]) == ("ServiceUnavailable", "service_unavailable", 503)


# -- get_project --------------------------------------------------------------------------


def test_get_project_by_id(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    project = ok(runtime, f'return {AG}.get_project({{project_id = "Qm4pT8wLz"}})')
    assert (project["name"], project["status"], project["recording_server"]) == ("legacy-webinars", 0, "10.12.1.5:8080")
    assert project["app_id"] == project["vendor_key"] == "e1d2c3b4a5968778695a4b3c2d1e0f9a"
    assert project["sign_key_enabled"] is False and "sign_key" not in project
    assert [r.url.path for r in sim.requests[mark:]] == ["/dev/v1/projects"]


def test_get_project_unknown_id_is_upstream_not_found(runtime: Runtime) -> None:
    error = failed(runtime, f'return {AG}.get_project({{project_id = "nope"}})')
    assert (error["type"], error["code"]) == ("UpstreamNotFound", "upstream_not_found")
    assert "'nope'" in error["message"] and "abc123 (kosmo-demo-meetings)" in error["hint"]


@pytest.mark.parametrize("args,param", [("{}", "project_id"), ("{project_id = 7}", "project_id"),
                                        ('{project_id = "abc123", name = "x"}', "name")])
def test_get_project_validation_sends_nothing(runtime: Runtime, sim: AgoraSimulator, args: str, param: str) -> None:
    mark = len(sim.requests)
    error = failed(runtime, f"return {AG}.get_project({args})")
    assert (error["type"], error["param"]) == ("InvalidArgument", param)
    assert sim.requests[mark:] == []


def test_get_project_5xx_and_bad_credentials(runtime: Runtime, demo: Demo, sim: AgoraSimulator) -> None:
    sim.inject(Fault("status", status=500, path="^/dev/v1/projects$", times=None))
    error = failed(runtime, f'return {AG}.get_project({{project_id = "abc123"}})')
    assert (error["type"], error["status"]) == ("ServiceUnavailable", 500)
    sim.clear_faults()
    with accounts_runtime(demo, bad=demo_account(demo, "default", customer_secret="wrong")) as broken:
        error = failed(broken, f'return {AG}.get_project({{project_id = "abc123"}})')
    assert (error["type"], error["status"]) == ("AuthFailed", 401)
    assert "Invalid authentication credentials" in error["message"]


# -- create_project -----------------------------------------------------------------------


def test_create_project_maps_sign_key(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    project = ok(runtime, f'return {AG}.create_project({{name = "kosmo-test-signed", sign_key = true}})')
    assert project["name"] == "kosmo-test-signed" and project["status"] == 1 and project["sign_key_enabled"] is True
    assert re.fullmatch(r"[0-9a-f]{32}", project["app_id"]) and project["app_id"] == project["vendor_key"]
    assert "sign_key" not in project
    [request] = sim.requests[mark:]
    assert (request.method, request.url.path) == ("POST", "/dev/v1/project")
    assert body(request) == {"name": "kosmo-test-signed", "enable_sign_key": True}
    plain = ok(runtime, f'return {AG}.create_project({{name = "kosmo-test-plain"}})')
    assert plain["sign_key_enabled"] is False
    assert body(sim.requests[-1]) == {"name": "kosmo-test-plain", "enable_sign_key": False}
    listed = ok(runtime, f'return {AG}.get_project({{project_id = "{plain["id"]}"}})')
    assert listed["name"] == "kosmo-test-plain"


def test_create_project_recording_server_is_a_second_call(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    project = ok(runtime, f'return {AG}.create_project({{name = "kosmo-test-onprem", '
                          f'recording_config = {{recording_server = "10.0.0.5:8080"}}}})')
    assert project["recording_server"] == "10.0.0.5:8080"
    created, configured = sim.requests[mark:]
    assert (created.url.path, configured.url.path) == ("/dev/v1/project", "/dev/v1/recording_config")
    assert body(configured) == {"id": project["id"], "recording_server": "10.0.0.5:8080"}


@pytest.mark.parametrize("args,param", [
    ("{}", "name"),
    ('{name = ""}', "name"),
    (f'{{name = "{"x" * 256}"}}', "name"),
    ('{name = "p", sign_key = "yes"}', "sign_key"),
    ('{name = "p", recording_config = "10.0.0.5:8080"}', "recording_config"),
    ('{name = "p", recording_config = {max_idle_time = 30, stream_types = 2}}', "recording_config"),
    ('{name = "p", recording_config = {recording_server = 8080}}', "recording_config"),
    ('{name = "p", region = "eu"}', "region"),
])
def test_create_project_validation_sends_nothing(runtime: Runtime, sim: AgoraSimulator, args: str, param: str) -> None:
    mark = len(sim.requests)
    error = failed(runtime, f"return {AG}.create_project({args})")
    assert (error["type"], error["param"]) == ("InvalidArgument", param)
    assert sim.requests[mark:] == []


def test_create_project_unmappable_recording_config_says_where_it_belongs(runtime: Runtime) -> None:
    error = failed(runtime, f'return {AG}.create_project({{name = "p", recording_config = {{max_idle_time = 30}}}})')
    assert "max_idle_time" in error["message"] and "start_recording" in error["hint"]


def test_create_project_duplicate_name_is_agoras_400(runtime: Runtime) -> None:
    error = failed(runtime, f'return {AG}.create_project({{name = "kosmo-demo-meetings"}})')
    assert (error["type"], error["code"], error["status"]) == ("HTTPStatusError", "upstream_error", 400)
    assert "Duplicate project name: kosmo-demo-meetings" in error["message"]


def test_create_project_503_is_not_retried_but_429_is(runtime: Runtime, sim: AgoraSimulator) -> None:
    sim.inject(Fault("status", status=503, method="POST", path="^/dev/v1/project$"))
    mark = len(sim.requests)
    error = failed(runtime, f'return {AG}.create_project({{name = "kosmo-test-503"}})')
    assert (error["type"], error["status"]) == ("ServiceUnavailable", 503) and len(sim.requests) == mark + 1
    sim.inject(Fault("status", status=429, method="POST", path="^/dev/v1/project$"))
    assert ok(runtime, f'return {AG}.create_project({{name = "kosmo-test-429"}}).name') == "kosmo-test-429"


def test_create_project_failed_second_call_says_the_project_exists(runtime: Runtime, sim: AgoraSimulator) -> None:
    sim.inject(Fault("status", status=500, path="^/dev/v1/recording_config$"))
    error = failed(runtime, f'return {AG}.create_project({{name = "kosmo-test-half", '
                            f'recording_config = {{recording_server = "10.0.0.9:80"}}}})')
    assert error["type"] == "ServiceUnavailable" and "was created" in error["message"]
    projects = ok(runtime, f"return {AG}.list_projects({{}}).data")
    assert "kosmo-test-half" in [p["name"] for p in projects]


def test_create_project_dry_run_and_read_only_send_nothing(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    result = ok(runtime, f'return {AG}.create_project({{name = "kosmo-test-dry", sign_key = true}})', dry_run=True)
    assert result["dry_run"] is True and result["would_send"]["method"] == "POST"
    assert result["would_send"]["url"].endswith("/dev/v1/project")
    assert result["would_send"]["body"] == {"name": "kosmo-test-dry", "enable_sign_key": True}
    error = failed(runtime, f'return {AG}.create_project({{name = "kosmo-test-ro"}})', read_only=True)
    assert error["type"] == "PermissionDenied"
    assert sim.requests[mark:] == []


# -- list_recordings ----------------------------------------------------------------------


def test_list_recordings_comes_from_the_store_and_sends_nothing(runtime: Runtime, sim: AgoraSimulator) -> None:
    sim.inject(Fault("status", status=503, times=None))  # would break any request
    mark = len(sim.requests)
    source = f'return {AG}.list_recordings({{cname = "meeting-room", resource_id = "{SEEDED_RESOURCE_ID}"}})'
    result = ok(runtime, source)
    assert sim.requests[mark:] == []
    [record] = result["data"]
    assert (result["count"], result["total"]) == (1, 1)
    assert record == {
        "sid": "sid-abc123", "resourceId": SEEDED_RESOURCE_ID, "cname": "meeting-room", "uid": "100200",
        "mode": "mix", "app_id": DEMO_ACCOUNTS["default"]["app_id"], "started_at": 1718098205,
        "status": record["status"], "status_checked_at": record["status_checked_at"],
        "storage": {"vendor": 1, "region": 0, "bucket": "kosmo-demo-recordings",
                    "fileNamePrefix": ["kosmo", "meetingroom"]},
    }
    assert isinstance(record["status"], str)


def test_list_recordings_filters_sort_and_limit(runtime: Runtime) -> None:
    first = start(runtime, "kosmo-list-a", "3001")
    second = start(runtime, "kosmo-list-b", "3002")
    everything = ok(runtime, f"return {AG}.list_recordings({{limit = 100}})")
    started = [r["started_at"] for r in everything["data"]]
    assert started == sorted(started, reverse=True) and everything["data"][-1]["sid"] == "sid-abc123"
    assert {first["sid"], second["sid"]} <= {r["sid"] for r in everything["data"]}
    one = ok(runtime, f"return {AG}.list_recordings({{limit = 1}})")
    assert one["count"] == 1 and one["total"] == everything["total"] and one["data"][0] == everything["data"][0]
    by_channel = ok(runtime, f'return {AG}.list_recordings({{cname = "kosmo-list-b"}})')
    assert [r["sid"] for r in by_channel["data"]] == [second["sid"]]
    by_resource = ok(runtime, f'return {AG}.list_recordings({{resource_id = "{first["resourceId"]}"}})')
    assert [r["sid"] for r in by_resource["data"]] == [first["sid"]]
    old = ok(runtime, f"return {AG}.list_recordings({{start_ts = 1718000000, end_ts = 1718100000}})")
    assert [r["sid"] for r in old["data"]] == ["sid-abc123"]
    recent = ok(runtime, f"return {AG}.list_recordings({{start_ts = {first['started_at']}}})")
    assert "sid-abc123" not in {r["sid"] for r in recent["data"]} and recent["total"] >= 2
    assert ok(runtime, f'return {AG}.list_recordings({{cname = "no-such-channel"}})')["data"] == []


@pytest.mark.parametrize("args,param", [
    ("{limit = 0}", "limit"), ('{limit = "5"}', "limit"), ("{start_ts = -1}", "start_ts"),
    ("{end_ts = 1.5}", "end_ts"), ("{cname = 5}", "cname"), ("{status = 1}", "status"),
])
def test_list_recordings_validation(runtime: Runtime, args: str, param: str) -> None:
    error = failed(runtime, f"return {AG}.list_recordings({args})")
    assert (error["type"], error["param"]) == ("InvalidArgument", param)


# -- get_recording ------------------------------------------------------------------------


def test_get_recording_queries_agora_and_derives_download_urls(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    rec = ok(runtime, f'return {AG}.get_recording({{recording_id = "sid-abc123"}})')
    [request] = sim.requests[mark:]
    assert request.method == "GET" and request.url.path == (
        f"/v1/apps/{DEMO_ACCOUNTS['default']['app_id']}/cloud_recording/resourceid/{SEEDED_RESOURCE_ID}"
        "/sid/sid-abc123/mode/mix/query")
    assert (rec["sid"], rec["cname"], rec["uid"]) == ("sid-abc123", "meeting-room", "100200")
    assert rec["status"] == "recording"
    assert rec["serverResponse"]["status"] == 5 and rec["serverResponse"]["fileListMode"] == "json"
    bucket = "https://kosmo-demo-recordings.s3.us-east-1.amazonaws.com/"
    assert [(f["filename"], f["download_url"]) for f in rec["file_list"]] == [
        ("kosmo/meetingroom/sid-abc123_meeting-room.m3u8", bucket + "kosmo/meetingroom/sid-abc123_meeting-room.m3u8"),
        ("kosmo/meetingroom/sid-abc123_meeting-room_20240611093005123.mp4",
         bucket + "kosmo/meetingroom/sid-abc123_meeting-room_20240611093005123.mp4"),
    ]
    assert rec["file_list"][0]["trackType"] == "audio_and_video" and rec["file_list"][0]["fileName"]
    listed = ok(runtime, f'return {AG}.list_recordings({{cname = "meeting-room"}}).data')
    assert {r["sid"]: r["status"] for r in listed}["sid-abc123"] == "recording"


def test_get_recording_single_file_string_and_other_vendors(runtime: Runtime) -> None:
    hls = start(runtime, "kosmo room #1", "4001")  # HLS only: fileList is one M3U8 name
    rec = ok(runtime, f'return {AG}.get_recording({{recording_id = "{hls["sid"]}"}})')
    assert rec["serverResponse"]["fileListMode"] == "string"
    [file] = rec["file_list"]
    assert file["filename"] == f"reviews/design/{hls['sid']}_kosmo room #1.m3u8"
    assert file["download_url"] == (f"https://team-recordings.s3.us-west-2.amazonaws.com/reviews/design/"
                                    f"{hls['sid']}_kosmo%20room%20%231.m3u8")
    gcs = ok(runtime, f'return {AG}.start_recording({{cname = "kosmo-gcs", uid = "4002", clientRequest = '
                      f'{{storageConfig = {{vendor = 6, region = 0, bucket = "gcs-bucket", accessKey = "AKIAEXAMPLE", '
                      f'secretKey = "example-secret"}}}}}})')
    url = ok(runtime, f'return {AG}.get_recording({{recording_id = "{gcs["sid"]}"}}).file_list[1].download_url')
    assert url == f"https://storage.googleapis.com/gcs-bucket/{gcs['sid']}_kosmo-gcs.m3u8"
    oss = ok(runtime, f'return {AG}.start_recording({{cname = "kosmo-oss", uid = "4003", clientRequest = '
                      f'{{storageConfig = {{vendor = 2, region = 1, bucket = "oss-bucket", accessKey = "AKIAEXAMPLE", '
                      f'secretKey = "example-secret"}}}}}})')
    [file] = ok(runtime, f'return {AG}.get_recording({{recording_id = "{oss["sid"]}"}}).file_list')
    assert file == {"fileName": f"{oss['sid']}_kosmo-oss.m3u8", "filename": f"{oss['sid']}_kosmo-oss.m3u8"}


def test_get_recording_of_a_stopped_session_is_not_running(runtime: Runtime, demo: Demo, sim: AgoraSimulator) -> None:
    started = start(runtime, "kosmo-stopped", "5001")
    app_id = DEMO_ACCOUNTS["default"]["app_id"]
    stop = (f"{demo.servers['agora'].url}/v1/apps/{app_id}/cloud_recording/resourceid/{started['resourceId']}"
            f"/sid/{started['sid']}/mode/mix/stop")
    response = httpx.post(stop, json={"cname": "kosmo-stopped", "uid": "5001", "clientRequest": {}},
                          headers={"Authorization": basic("default")})
    assert response.status_code == 200
    rec = ok(runtime, f'return {AG}.get_recording({{recording_id = "{started["sid"]}"}})')
    assert rec["status"] == "not_running" and "404" in rec["note"]
    assert "file_list" not in rec and "serverResponse" not in rec
    assert (rec["sid"], rec["resourceId"], rec["cname"]) == (started["sid"], started["resourceId"], "kosmo-stopped")
    [listed] = ok(runtime, f'return {AG}.list_recordings({{cname = "kosmo-stopped"}}).data')
    assert listed["status"] == "not_running"


def test_get_recording_unknown_sid_sends_nothing(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    error = failed(runtime, f'return {AG}.get_recording({{recording_id = "sid-unknown"}})')
    assert (error["type"], error["code"]) == ("NotFound", "not_found")
    assert "sid-unknown" in error["message"] and "started through this runtime" in error["hint"]
    assert sim.requests[mark:] == []


@pytest.mark.parametrize("args,param", [("{}", "recording_id"), ("{recording_id = 12}", "recording_id"),
                                        ('{recording_id = "sid-abc123", mode = "mix"}', "mode")])
def test_get_recording_validation(runtime: Runtime, args: str, param: str) -> None:
    error = failed(runtime, f"return {AG}.get_recording({args})")
    assert (error["type"], error["param"]) == ("InvalidArgument", param)


def test_get_recording_upstream_errors(runtime: Runtime, sim: AgoraSimulator) -> None:
    query = "/query$"
    sim.inject(Fault("status", status=404, path=query))  # the gateway's "no Route matched": no code, raised
    error = failed(runtime, f'return {AG}.get_recording({{recording_id = "sid-abc123"}})')
    assert (error["type"], error["status"]) == ("UpstreamNotFound", 404) and "no Route matched" in error["message"]
    sim.inject(Fault("status", status=504, path=query))
    assert ok(runtime, f'return {AG}.get_recording({{recording_id = "sid-abc123"}}).status') == "recording"
    sim.inject(Fault("status", status=429, retry_after=2, path=query, times=None))
    error = failed(runtime, f'return {AG}.get_recording({{recording_id = "sid-abc123"}})')
    assert (error["type"], error["retry_after"]) == ("RateLimited", 2.0)
    sim.clear_faults()
    sim.inject(Fault("status", status=500, path=query, times=None))
    error = failed(runtime, f'return {AG}.get_recording({{recording_id = "sid-abc123"}})')
    assert error["type"] == "ServiceUnavailable"


# -- start_recording ----------------------------------------------------------------------


def test_start_recording_acquires_starts_and_remembers(runtime: Runtime, demo: Demo, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    result = start(runtime, "kosmo-start", "6001", ', recordingConfig = {maxIdleTime = 60, streamTypes = 0}, '
                   'recordingFileConfig = {avFileType = {"hls", "mp4"}}, token = "rtc-token-example"')
    acquire, started = sim.requests[mark:]
    app_id = DEMO_ACCOUNTS["default"]["app_id"]
    assert acquire.url.path == f"/v1/apps/{app_id}/cloud_recording/acquire"
    assert body(acquire) == {"cname": "kosmo-start", "uid": "6001", "clientRequest": {}}
    assert started.url.path == f"/v1/apps/{app_id}/cloud_recording/resourceid/{result['resourceId']}/mode/mix/start"
    assert body(started) == {"cname": "kosmo-start", "uid": "6001", "clientRequest": {
        "recordingConfig": {"maxIdleTime": 60, "streamTypes": 0}, "recordingFileConfig": {"avFileType": ["hls", "mp4"]},
        "token": "rtc-token-example",
        "storageConfig": {"vendor": 1, "region": 3, "bucket": "team-recordings", "accessKey": "AKIAEXAMPLE",
                          "secretKey": "example-secret", "fileNamePrefix": ["reviews", "design"]}}}
    assert re.fullmatch(r"[0-9a-f]{32}", result["sid"])
    assert (result["cname"], result["uid"], result["mode"], result["app_id"], result["status"]) == (
        "kosmo-start", "6001", "mix", app_id, "started")
    assert result["storage"] == {"vendor": 1, "region": 3, "bucket": "team-recordings",
                                 "fileNamePrefix": ["reviews", "design"]}
    stored = demo.store.scoped("agora", "default").get(RECORDINGS, result["sid"])
    assert stored == {k: v for k, v in result.items() if k in stored}
    assert not any(s in json.dumps(stored) for s in SECRETS)
    assert not any(s in json.dumps(result) for s in SECRETS)
    live = ok(runtime, f'return {AG}.get_recording({{recording_id = "{result["sid"]}"}})')
    assert live["status"] == "recording" and len(live["file_list"]) == 2


def test_start_recording_without_storage_sends_nothing(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    for args in ('{cname = "c", uid = "1"}', '{cname = "c", uid = "1", clientRequest = {recordingConfig = {}}}'):
        error = failed(runtime, f"return {AG}.start_recording({args})")
        assert (error["type"], error["param"]) == ("InvalidArgument", "clientRequest")
        assert "storageConfig" in error["message"]
    assert sim.requests[mark:] == []


@pytest.mark.parametrize("args,param", [
    ('{uid = "1"}', "cname"), ('{cname = "c"}', "uid"), ('{cname = "c", uid = 527841}', "uid"),
    ('{cname = "c", uid = "1", clientRequest = "x"}', "clientRequest"),
    ('{cname = "c", uid = "1", mode = "web"}', "mode"),
])
def test_start_recording_validation(runtime: Runtime, sim: AgoraSimulator, args: str, param: str) -> None:
    mark = len(sim.requests)
    error = failed(runtime, f"return {AG}.start_recording({args})")
    assert (error["type"], error["param"]) == ("InvalidArgument", param)
    assert sim.requests[mark:] == []


def test_start_recording_conflict_is_agoras_code_53(runtime: Runtime) -> None:
    start(runtime, "kosmo-conflict", "7001")
    error = failed(runtime, start_source("kosmo-conflict", "7001"))
    assert (error["type"], error["status"], error["service_code"]) == ("HTTPStatusError", 400, "53")
    assert "task conflict" in error["message"]
    assert not any(s in json.dumps(error) for s in SECRETS)


def test_start_recording_upstream_errors_on_acquire(runtime: Runtime, sim: AgoraSimulator) -> None:
    acquire = "/acquire$"
    sim.inject(Fault("status", status=500, path=acquire))
    mark = len(sim.requests)
    error = failed(runtime, start_source("kosmo-500", "8001"))
    assert (error["type"], error["status"]) == ("ServiceUnavailable", 500) and len(sim.requests) == mark + 1
    sim.inject(Fault("status", status=429, path=acquire))
    assert start(runtime, "kosmo-429", "8002")["sid"]
    sim.inject(Fault("status", status=429, path=acquire, times=None))
    error = failed(runtime, start_source("kosmo-429b", "8003"))
    assert error["type"] == "RateLimited"


def test_start_recording_dry_run_and_read_only_send_nothing(runtime: Runtime, demo: Demo, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    source = start_source("kosmo-dry", "9001")
    result = ok(runtime, source, dry_run=True)
    assert result["dry_run"] is True and result["would_send"]["url"].endswith("/cloud_recording/acquire")
    assert failed(runtime, source, read_only=True)["type"] == "PermissionDenied"
    assert sim.requests[mark:] == []
    assert not [r for r in demo.store.scoped("agora", "default").all(RECORDINGS) if r["cname"] == "kosmo-dry"]


def test_start_recording_app_id_from_the_only_enabled_project(demo: Demo, sim: AgoraSimulator) -> None:
    with accounts_runtime(demo, prod=demo_account(demo, "production", drop=("app_id",))) as prod:
        first = start(prod, "kosmo-derived", "9101")
        second = start(prod, "kosmo-derived", "9102")
    assert first["app_id"] == second["app_id"] == DEMO_ACCOUNTS["production"]["app_id"]
    paths = [r.url.path for r in sim.requests[-5:]]
    assert paths.count("/dev/v1/projects") == 1  # resolved once, then memoised


def test_start_recording_without_app_id_and_several_projects(demo: Demo, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    with accounts_runtime(demo, multi=demo_account(demo, "default", drop=("app_id",))) as multi:
        error = failed(multi, start_source("kosmo-x", "1"))
    assert (error["type"], error["code"]) == ("AccountError", "account_error")
    assert "app_id" in error["hint"] and DEMO_ACCOUNTS["default"]["app_id"] in error["hint"]
    assert [r.url.path for r in sim.requests[mark:]] == ["/dev/v1/projects"]


def test_start_recording_web_mode_and_bad_mode(demo: Demo, sim: AgoraSimulator) -> None:
    web_service = ('extensionServiceConfig = {extensionServices = {{serviceName = "web_recorder_service", '
                   'serviceParam = {url = "https://example.com/board", audioProfile = 0, videoWidth = 1280, '
                   'videoHeight = 720, maxRecordingHour = 1}}}}')
    with accounts_runtime(demo, web=demo_account(demo, "default", recording_mode="web"),
                          odd=demo_account(demo, "default", recording_mode="composite")) as custom:
        mark = len(sim.requests)
        result = start(custom, "kosmo-web", "9201", ", " + web_service)
        assert result["mode"] == "web"
        acquire, started = sim.requests[mark:]
        assert body(acquire)["clientRequest"] == {"scene": 1} and started.url.path.endswith("/mode/web/start")
        rec = ok(custom, f'return {AG}.get_recording({{recording_id = "{result["sid"]}"}})')
        assert rec["file_list"][0]["filename"] == f"reviews/design/{result['sid']}_kosmo-web_0.m3u8"
        assert rec["file_list"][0]["download_url"].startswith("https://team-recordings.s3.us-west-2.amazonaws.com/")
        mark = len(sim.requests)
        error = failed(custom, start_source("k", "1", account="odd"))
        assert (error["type"], error["code"]) == ("ConfigError", "config_error")
        assert "recording_mode" in error["message"]
        assert sim.requests[mark:] == []


# -- get_current_user ---------------------------------------------------------------------


def test_get_current_user_reports_the_configured_account(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    me = ok(runtime, f"return {AG}.get_current_user({{}})")
    assert me["user"] == {"name": "Kosmo Demo Video Team", "email": "video-team@kosmo-demo.example",
                          "account": "default"}
    assert me["authenticated"] is True and me["app_id"] == DEMO_ACCOUNTS["default"]["app_id"]
    assert me["project_count"] == len(me["projects"]) >= 3
    assert all("sign_key" not in p for p in me["projects"])
    assert [r.url.path for r in sim.requests[mark:]] == ["/dev/v1/projects"]


def test_get_current_user_name_falls_back_to_label_then_account_name(demo: Demo) -> None:
    bare = demo_account(demo, "staging", drop=("contact_name", "contact_email", "app_id"))
    with accounts_runtime(demo, plain=bare, labelled={**bare, "label": "Staging (QA team)"}) as custom:
        plain = ok(custom, f"return {AG}.get_current_user({{}})")
        labelled = ok(custom, f"return {AG}.labelled.get_current_user({{}}).user")
    assert plain["user"] == {"name": "plain", "account": "plain"} and "app_id" not in plain
    assert [p["id"] for p in plain["projects"]] == ["stg7Hq3Vn"]
    assert labelled == {"name": "Staging (QA team)", "account": "labelled"}


def test_get_current_user_errors(runtime: Runtime, demo: Demo, sim: AgoraSimulator) -> None:
    assert failed(runtime, f"return {AG}.get_current_user({{verbose = true}})")["param"] == "verbose"
    with accounts_runtime(demo, bad=demo_account(demo, "default", customer_id="someone-else")) as broken:
        error = failed(broken, f"return {AG}.get_current_user({{}})")
    assert (error["type"], error["code"], error["status"]) == ("AuthFailed", "auth_failed", 401)
    sim.inject(Fault("status", status=502, times=None))
    assert failed(runtime, f"return {AG}.get_current_user({{}})")["type"] == "ServiceUnavailable"


# -- credentials and accounts ---------------------------------------------------------------


def test_credentials_only_travel_in_the_authorization_header(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    result = runtime.run(f"""
        local agora = {AG}
        local me = agora.get_current_user({{}})
        local projects = agora.list_projects({{}})
        local project = agora.get_project({{project_id = "abc123"}})
        local created = agora.create_project({{name = "kosmo-test-creds"}})
        local started = agora.start_recording({{cname = "kosmo-creds", uid = "9301", clientRequest = {{{STORAGE}}}}})
        local rec = agora.get_recording({{recording_id = started.sid}})
        local listed = agora.list_recordings({{}})
        print(me.user.name, #projects.data, project.name, created.name, rec.status, listed.count)
        local ok, err = pcall(agora.get_project, {{project_id = "missing"}})
        print(tostring(err))
        return {{me, projects, project, created, started, rec, listed}}
    """)
    assert result.ok, result.error and result.error.to_dict()
    requests = sim.requests[mark:]
    assert len(requests) >= 7
    secrets = [DEMO_ACCOUNTS["default"]["customer_id"], DEMO_ACCOUNTS["default"]["customer_secret"]]
    encoded = basic("default").split()[1]
    for request in requests:
        assert request.headers["authorization"] == basic("default")
        others = [v for k, v in request.headers.items() if k.lower() != "authorization"]
        for value in [*secrets, encoded]:
            assert value not in str(request.url) and value.encode() not in request.content
            assert not any(value in other for other in others)
    shown = json.dumps(result.to_dict())
    assert not any(value in shown for value in [*secrets, encoded, *SECRETS])


def test_failed_calls_do_not_leak_credentials(demo: Demo) -> None:
    fields = demo_account(demo, "default", customer_secret="wrong-secret-value")
    with accounts_runtime(demo, bad=fields) as broken:
        result = broken.run(f"return {AG}.list_projects({{}})")
    shown = json.dumps(result.to_dict())
    assert result.error is not None and result.error.type == "AuthFailed"
    assert fields["customer_id"] not in shown and "wrong-secret-value" not in shown


def test_accounts_reach_agora_with_their_own_credentials(runtime: Runtime, sim: AgoraSimulator) -> None:
    mark = len(sim.requests)
    result = ok(runtime, f"""
        local agora = {AG}
        local out = {{}}
        for _, name in ipairs({{"default", "production", "staging"}}) do
          out[name] = agora[name].list_projects({{}}).data[1].id
        end
        out.plain = agora.list_projects({{}}).data[1].id
        out.user = agora.production.get_current_user({{}}).user.email
        out.recordings = agora.production.list_recordings({{}}).count
        return out
    """)
    assert result == {"default": "abc123", "production": "prd4k2Jw9", "staging": "stg7Hq3Vn", "plain": "abc123",
                      "user": "rtc-ops@acme.example", "recordings": 0}
    assert [r.headers["authorization"] for r in sim.requests[mark:]] == [
        basic("default"), basic("production"), basic("staging"), basic("default"), basic("production")]


def test_production_recordings_stay_with_production(runtime: Runtime) -> None:
    started = start(runtime, "kosmo-prod", "9401", account="production")
    assert started["app_id"] == DEMO_ACCOUNTS["production"]["app_id"]
    status = ok(runtime, f'return {AG}.production.get_recording({{recording_id = "{started["sid"]}"}}).status')
    assert status == "recording"
    error = failed(runtime, f'return {AG}.get_recording({{recording_id = "{started["sid"]}"}})')
    assert error["type"] == "NotFound" and error["account"] == "default"


# -- the examples -------------------------------------------------------------------------


def _examples() -> list[str]:
    seed = (SEEDS / "agora.txt").read_text(encoding="utf-8").split("Raw agent markdown", 1)[1]
    blocks = LUA_BLOCK.findall(seed) + LUA_BLOCK.findall(DOCS.read_text(encoding="utf-8"))
    return [block for block in blocks if "function_name" not in block]


@pytest.mark.skipif(not SEEDS.is_dir(), reason=NO_SEEDS)
def test_seed_and_doc_examples_run_in_a_fresh_demo() -> None:
    with Demo(["agora"]) as fresh, fresh.runtime() as rt:
        results: list[RunResult] = [rt.run(source) for source in _examples()]
        sent = fresh.simulators["agora"].requests
        problems = [f"{r.method} {r.url.path}: {p}" for r in sent for p in request_errors(r)]
    assert len(results) >= 15
    for source, result in zip(_examples(), results, strict=True):
        assert result.ok, (source, result.error and result.error.to_dict())
        assert "print(" not in source or result.output.strip()
    outputs = "\n".join(r.output for r in results)
    assert "App ID: a3f9c2e47b1d4e8f9a6b5c4d3e2f1a0b" in outputs and "Email: video-team@kosmo-demo.example" in outputs
    assert "-> https://kosmo-demo-recordings.s3.us-east-1.amazonaws.com/kosmo/meetingroom/" in outputs
    assert problems == []
