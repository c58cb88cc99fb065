"""The Agora simulator over real sockets, checked against Agora's documented shapes.

Agora publishes no machine-readable spec, so ``DOCUMENTED`` below is a table of
JSON schemas written by hand from Agora's reference pages:

* Console API: ``AgoraIO/docs-portal``,
  ``content/docs/en/api-reference/api-ref/console/solutions-agora-console-rest-api.md``;
* Cloud Recording: ``AgoraIO/Docs-Source:cloud-recording/reference/restful-api.mdx`` (schemas),
  ``rest-api/{acquire,start,query,stop}.md`` and ``common-errors.md``, and
  ``AgoraIO/docs-portal:.../cloud-recording/status-codes.mdx`` (error bodies and statuses).

Every exchange a test makes through the ``api`` fixture is checked against the
table when the test ends: the request (method, path, query, headers, body) and
the response (a documented status for that endpoint, its body schema, JSON
content type). Requests that are wrong on purpose are sent inside
``api.invalid_requests()``, which skips only the request half of the check.

Documented quirks kept on purpose (the simulator follows the real API):

* Console GETs answer 200, although each endpoint's text says "201 means
  success"; the status table lists 200 as success and POSTs answer 201.
* ``start`` answers HTTP **201** with ``code`` 7 for an already started resource.
* ``stop`` of a web page recording reports the upload service under ``playload``.
* ``fileList`` is a string (an M3U8 name) when ``fileListMode`` is ``"string"``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import jsonschema
import pytest
from kosmo_integrations.agora.simulator import DEMO_ACCOUNTS, SEEDED_RESOURCE_ID, AgoraSimulator

from kosmo_runtime import Fault
from tests.support import Switchboard, serving

DEFAULT = DEMO_ACCOUNTS["default"]
APP_ID = DEFAULT["app_id"]
AUTH = (DEFAULT["customer_id"], DEFAULT["customer_secret"])
RECORDING = f"/v1/apps/{APP_ID}/cloud_recording"
SEEDED_QUERY = f"{RECORDING}/resourceid/{SEEDED_RESOURCE_ID}/sid/sid-abc123/mode/mix/query"
SEEDED_STOP = f"{RECORDING}/resourceid/{SEEDED_RESOURCE_ID}/sid/sid-abc123/mode/mix/stop"
STORAGE = {
    "vendor": 1,
    "region": 0,
    "bucket": "kosmo-test-bucket",
    "accessKey": "demo-s3-access",
    "secretKey": "demo-s3-secret",
    "fileNamePrefix": ["agora", "rec"],
}

# -- the documented shapes ------------------------------------------------------------

STRING = {"type": "string"}
UID = {"type": "string", "pattern": r"^[1-9][0-9]{0,9}$"}
MESSAGE = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": STRING},
    "additionalProperties": False,
}
AUTH_ERROR = {**MESSAGE, "properties": {"message": {"enum": ["Unauthorized", "Invalid authentication credentials"]}}}
NO_ROUTE = {**MESSAGE, "properties": {"message": {"const": "no Route matched with those values"}}}
PROJECT = {
    "type": "object",
    "required": ["id", "name", "vendor_key", "sign_key", "recording_server", "status", "created"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "vendor_key": {"type": "string", "pattern": r"^[0-9a-f]{32}$"},
        "sign_key": {"type": "string", "pattern": r"^([0-9a-f]{32})?$"},
        "recording_server": {"type": ["string", "null"]},
        "status": {"enum": [0, 1]},
        "created": {"type": "integer"},
    },
    "additionalProperties": False,
}
PROJECTS = {
    "type": "object",
    "required": ["projects"],
    "properties": {"projects": {"type": "array", "items": PROJECT}},
    "additionalProperties": False,
}
ONE_PROJECT = {
    "type": "object",
    "required": ["project"],
    "properties": {"project": PROJECT},
    "additionalProperties": False,
}


def _body(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


CREATE_PROJECT = _body(
    ["name", "enable_sign_key"],
    name={"type": "string", "minLength": 1, "maxLength": 255},
    enable_sign_key={"type": "boolean"},
)
PROJECT_STATUS = _body(["id", "status"], id=STRING, status={"enum": [0, 1]})
RECORDING_SERVER = _body(["id", "recording_server"], id=STRING, recording_server=STRING)
SIGN_KEY = _body(["id", "enable"], id=STRING, enable={"type": "boolean"})
RESET_SIGN_KEY = _body(["id"], id=STRING)
GET_PROJECT_QUERY = _body(["id", "name"], id=STRING, name=STRING)

UIDS = {"type": "array", "items": STRING, "maxItems": 32}
STORAGE_CONFIG = {
    "type": "object",
    "required": ["vendor", "region", "bucket", "accessKey", "secretKey"],
    "properties": {
        "vendor": {"type": "integer", "minimum": 0, "maximum": 8},
        "region": {"type": "integer", "minimum": 0},
        "bucket": STRING,
        "accessKey": STRING,
        "secretKey": STRING,
        "stsToken": STRING,
        "stsExpiration": {"type": "integer"},
        "fileNamePrefix": {"type": "array", "items": {"type": "string", "pattern": r"^[A-Za-z0-9]+$"}},
        "extensionParams": {"type": "object"},
    },
    "additionalProperties": False,
}
RECORDING_CONFIG = {
    "type": "object",
    "properties": {
        "channelType": {"enum": [0, 1]},
        "streamTypes": {"enum": [0, 1, 2]},
        "streamMode": {"enum": ["default", "standard", "original"]},
        "decryptionMode": {"type": "integer", "minimum": 0, "maximum": 8},
        "secret": STRING,
        "salt": STRING,
        "audioProfile": {"enum": [0, 1, 2]},
        "videoStreamType": {"enum": [0, 1]},
        "maxIdleTime": {"type": "integer", "minimum": 5, "maximum": 2592000},
        "transcodingConfig": {"type": "object"},
        "subscribeAudioUids": UIDS,
        "unsubscribeAudioUids": UIDS,
        "unSubscribeAudioUids": UIDS,
        "subscribeVideoUids": UIDS,
        "unsubscribeVideoUids": UIDS,
        "unSubscribeVideoUids": UIDS,
        "subscribeUidGroup": {"type": "integer", "minimum": 0, "maximum": 5},
    },
    "additionalProperties": False,
}
ACQUIRE_REQUEST = _body(
    ["cname", "uid"],
    cname=STRING,
    uid=UID,
    clientRequest=_body(
        [],
        scene={"enum": [0, 1, 2]},
        resourceExpiredHour={"type": "integer", "minimum": 1, "maximum": 720},
        region={"enum": ["CN", "AP", "EU", "NA"]},
        regionAffinity={"type": "integer"},
        startParameter={"type": "object"},
        excludeResourceIds={"type": "array", "items": STRING},
    ),
)
START_REQUEST = _body(
    ["cname", "uid", "clientRequest"],
    cname=STRING,
    uid=UID,
    clientRequest=_body(
        ["storageConfig"],
        token=STRING,
        storageConfig=STORAGE_CONFIG,
        recordingConfig=RECORDING_CONFIG,
        recordingFileConfig=_body(
            [], avFileType={"type": "array", "items": {"enum": ["hls", "mp4"]}, "contains": {"const": "hls"}}
        ),
        snapshotConfig=_body(
            [], captureInterval={"type": "integer", "minimum": 1, "maximum": 3600}, fileType={"const": ["jpg"]}
        ),
        extensionServiceConfig={"type": "object"},
        appsCollection={"type": "object"},
        transcodeOptions={"type": "object"},
    ),
)
STOP_REQUEST = _body(
    ["cname", "uid", "clientRequest"], cname=STRING, uid=UID, clientRequest=_body([], async_stop={"type": "boolean"})
)

ACQUIRE_RESPONSE = _body(["resourceId"], cname=STRING, uid=STRING, resourceId=STRING)
START_RESPONSE = _body(["resourceId", "sid"], cname=STRING, uid=STRING, resourceId=STRING, sid=STRING)
FILE = _body(
    ["fileName", "trackType", "uid", "mixedAllUser", "isPlayable", "sliceStartTime"],
    fileName=STRING,
    trackType={"enum": ["audio", "video", "audio_and_video"]},
    uid=STRING,
    mixedAllUser={"type": "boolean"},
    isPlayable={"type": "boolean"},
    sliceStartTime={"type": "integer"},
)
WEB_FILE = _body(["filename", "sliceStartTime"], filename=STRING, sliceStartTime={"type": "integer"})
FILE_LIST = {
    "fileListMode": {"enum": ["string", "json"]},
    "fileList": {"anyOf": [STRING, {"type": "array", "items": FILE}]},
}
FILE_LIST_MODE = {
    "if": {"required": ["fileListMode"], "properties": {"fileListMode": {"const": "string"}}},
    "then": {"properties": {"fileList": STRING}},
    "else": {"properties": {"fileList": {"type": "array"}}},
}
SERVICE_STATE = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["serviceName"],
        "properties": {
            "serviceName": {
                "enum": ["web_recorder_service", "rtmp_publish_service", "upload_service", "aliyun_vod_service"]
            },
            "payload": _body(
                [],
                fileList={"type": "array", "items": WEB_FILE},
                onhold={"type": "boolean"},
                state={"enum": ["init", "inProgress", "exit"]},
            ),
            # Agora's own (misspelt) key for the upload service's state in ``stop``.
            "playload": _body([], uploadingStatus={"enum": ["uploaded", "backuped", "unknown"]}),
        },
        "additionalProperties": False,
    },
}
QUERY_SERVER_RESPONSE = {
    **_body(
        ["status"],
        status={"enum": [0, 1, 2, 3, 4, 5, 6, 7, 8, 20]},
        sliceStartTime={"type": "integer"},
        subServiceStatus={"type": "object"},
        extensionServiceState=SERVICE_STATE,
        **FILE_LIST,
    ),
    **FILE_LIST_MODE,
}
STOP_SERVER_RESPONSE = {
    **_body(
        [],
        uploadingStatus={"enum": ["uploaded", "backuped", "unknown"]},
        extensionServiceState=SERVICE_STATE,
        **FILE_LIST,
    ),
    **FILE_LIST_MODE,
}
SESSION_IDS = {"resourceId": STRING, "sid": STRING, "cname": STRING, "uid": STRING}
QUERY_RESPONSE = _body(["resourceId", "sid", "serverResponse"], serverResponse=QUERY_SERVER_RESPONSE, **SESSION_IDS)
STOP_RESPONSE = _body(["resourceId", "sid", "serverResponse"], serverResponse=STOP_SERVER_RESPONSE, **SESSION_IDS)
RECORDING_ERROR = _body(["code", "reason"], code={"type": "integer"}, reason=STRING, **SESSION_IDS)
ALREADY_STARTED = {**RECORDING_ERROR, "properties": {**RECORDING_ERROR["properties"], "code": {"const": 7}}}
BAD_RECORDING_REQUEST = {
    "anyOf": [RECORDING_ERROR, {**MESSAGE, "properties": {"message": {"const": "appid is invalid"}}}]
}

# Answers the gateway may give on any route (documented statuses only).
GATEWAY = {401: AUTH_ERROR, 429: MESSAGE, 500: MESSAGE, 504: MESSAGE}


@dataclass
class Endpoint:
    """One documented endpoint: its request schemas and a schema per documented status."""

    method: str
    path: str
    responses: dict[int, dict[str, Any]]
    body: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.pattern = re.compile("^" + re.sub(r"\{\w+\}", "[^/]+", self.path) + "$")


SESSION = "/v1/apps/{appid}/cloud_recording/resourceid/{resourceid}/sid/{sid}/mode/{mode}"
DOCUMENTED = [
    Endpoint("GET", "/dev/v1/projects", {200: PROJECTS}),
    Endpoint("GET", "/dev/v1/project", {200: PROJECTS, 400: MESSAGE}, query=GET_PROJECT_QUERY),
    Endpoint("POST", "/dev/v1/project", {201: ONE_PROJECT, 400: MESSAGE, 415: MESSAGE}, body=CREATE_PROJECT),
    Endpoint(
        "POST",
        "/dev/v1/project_status",
        {201: ONE_PROJECT, 400: MESSAGE, 404: MESSAGE, 415: MESSAGE},
        body=PROJECT_STATUS,
    ),
    Endpoint(
        "POST",
        "/dev/v1/recording_config",
        {201: ONE_PROJECT, 400: MESSAGE, 404: MESSAGE, 415: MESSAGE},
        body=RECORDING_SERVER,
    ),
    Endpoint("POST", "/dev/v1/signkey", {201: ONE_PROJECT, 400: MESSAGE, 404: MESSAGE, 415: MESSAGE}, body=SIGN_KEY),
    Endpoint(
        "POST",
        "/dev/v1/reset_signkey",
        {201: ONE_PROJECT, 400: MESSAGE, 404: MESSAGE, 415: MESSAGE},
        body=RESET_SIGN_KEY,
    ),
    Endpoint(
        "POST",
        "/v1/apps/{appid}/cloud_recording/acquire",
        {200: ACQUIRE_RESPONSE, 400: BAD_RECORDING_REQUEST},
        body=ACQUIRE_REQUEST,
    ),
    Endpoint(
        "POST",
        "/v1/apps/{appid}/cloud_recording/resourceid/{resourceid}/mode/{mode}/start",
        {200: START_RESPONSE, 201: ALREADY_STARTED, 400: BAD_RECORDING_REQUEST},
        body=START_REQUEST,
    ),
    Endpoint("GET", SESSION + "/query", {200: QUERY_RESPONSE, 400: BAD_RECORDING_REQUEST, 404: RECORDING_ERROR}),
    Endpoint(
        "POST",
        SESSION + "/stop",
        {200: STOP_RESPONSE, 206: RECORDING_ERROR, 400: BAD_RECORDING_REQUEST, 404: RECORDING_ERROR},
        body=STOP_REQUEST,
    ),
]


def _schema_errors(instance: Any, schema: dict[str, Any], what: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{what}: {error.message} at {list(error.absolute_path)}" for error in validator.iter_errors(instance)]


def request_errors(request: httpx.Request) -> list[str]:
    """How ``request`` departs from the documented request of its endpoint."""
    endpoint = next((e for e in DOCUMENTED if e.method == request.method and e.pattern.match(request.url.path)), None)
    if endpoint is None:
        return [f"{request.method} {request.url.path} is not a documented endpoint"]
    errors = []
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or ":" not in base64.b64decode(token or "").decode():
        errors.append("request: Authorization is not HTTP Basic customer_id:customer_secret")
    if endpoint.query is not None:
        errors += _schema_errors(dict(request.url.params), endpoint.query, "query")
    if endpoint.body is not None:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            errors.append("request: Content-Type is not application/json")
        errors += _schema_errors(json.loads(request.content or b"null"), endpoint.body, "request body")
    return errors


def response_errors(request: httpx.Request, response: httpx.Response) -> list[str]:
    """How ``response`` departs from the documented responses of its endpoint."""
    endpoint = next((e for e in DOCUMENTED if e.method == request.method and e.pattern.match(request.url.path)), None)
    documented = {404: NO_ROUTE, 401: AUTH_ERROR} if endpoint is None else {**GATEWAY, **endpoint.responses}
    schema = documented.get(response.status_code)
    if schema is None:
        return [f"{request.method} {request.url.path}: undocumented status {response.status_code}"]
    if not response.headers.get("content-type", "").startswith("application/json"):
        return [f"{request.method} {request.url.path}: response is not JSON"]
    return _schema_errors(response.json(), schema, f"{request.method} {request.url.path} -> {response.status_code}")


class Api:
    """An ``httpx.Client`` on the simulator that records every exchange for checking."""

    def __init__(self, base_url: str) -> None:
        self.exchanges: list[tuple[httpx.Request, httpx.Response, bool]] = []
        self._check_requests = True
        self._recording = True
        self.client = httpx.Client(base_url=base_url, auth=AUTH, event_hooks={"response": [self._record]})

    def _record(self, response: httpx.Response) -> None:
        if self._recording:
            response.read()
            self.exchanges.append((response.request, response, self._check_requests))

    @contextmanager
    def invalid_requests(self) -> Iterator[None]:
        """Send requests that break the documented request shape on purpose."""
        self._check_requests = False
        try:
            yield
        finally:
            self._check_requests = True

    @contextmanager
    def unchecked(self) -> Iterator[None]:
        """Exchanges that are not checked at all (injected faults)."""
        self._recording = False
        try:
            yield
        finally:
            self._recording = True

    def problems(self) -> list[str]:
        problems = []
        for request, response, check_request in self.exchanges:
            if check_request:
                problems += request_errors(request)
            problems += response_errors(request, response)
        return problems



@pytest.fixture(scope="module")
def switchboard() -> Iterator[Switchboard[AgoraSimulator]]:
    with serving(AgoraSimulator) as board:
        yield board


@pytest.fixture
def sim(switchboard: Switchboard[AgoraSimulator]) -> AgoraSimulator:
    """A fresh simulator (fresh seed data) behind the module's server."""
    return switchboard.reset()


@pytest.fixture(scope="module")
def module_api(switchboard: Switchboard[AgoraSimulator]) -> Iterator[Api]:
    api = Api(switchboard.url)
    yield api
    api.client.close()


@pytest.fixture
def api(module_api: Api, sim: AgoraSimulator) -> Iterator[Api]:
    """The client every test uses; at teardown, every exchange must match ``DOCUMENTED``."""
    module_api.exchanges.clear()
    yield module_api
    assert module_api.problems() == []
    assert module_api.exchanges, "the test made no checked exchange"


@pytest.fixture
def http(api: Api) -> httpx.Client:
    return api.client


def acquire(http: httpx.Client, cname: str = "standup-room", uid: str = "1001", **client: Any) -> str:
    response = http.post(f"{RECORDING}/acquire", json={"cname": cname, "uid": uid, "clientRequest": client})
    assert response.status_code == 200, response.text
    return response.json()["resourceId"]


def start_body(cname: str = "standup-room", uid: str = "1001", **client: Any) -> dict[str, Any]:
    request = {
        "recordingConfig": {"channelType": 0, "streamTypes": 2, "maxIdleTime": 30},
        "storageConfig": STORAGE,
        **client,
    }
    return {"cname": cname, "uid": uid, "clientRequest": request}


def start(http: httpx.Client, resource_id: str, mode: str = "mix", **body: Any) -> httpx.Response:
    return http.post(f"{RECORDING}/resourceid/{resource_id}/mode/{mode}/start", json=start_body(**body))


def session(resource_id: str, sid: str, mode: str = "mix") -> str:
    return f"{RECORDING}/resourceid/{resource_id}/sid/{sid}/mode/{mode}"


def stop_body(cname: str = "standup-room", uid: str = "1001") -> dict[str, Any]:
    return {"cname": cname, "uid": uid, "clientRequest": {}}


# -- the checker itself ----------------------------------------------------------------


def test_checker_flags_undocumented_shapes() -> None:
    request = httpx.Request("GET", "https://api.agora.io/dev/v1/projects", headers={"Authorization": "Bearer x"})
    bad = httpx.Response(200, json={"data": []})
    assert request_errors(request)
    assert response_errors(request, bad)
    assert response_errors(request, httpx.Response(201, json={"projects": []}))
    create = httpx.Request("POST", "https://api.agora.io/dev/v1/project", json={"name": 42})
    assert any("request body" in error for error in request_errors(_with_auth(create)))


def _with_auth(request: httpx.Request) -> httpx.Request:
    token = base64.b64encode(":".join(AUTH).encode()).decode()
    request.headers["Authorization"] = f"Basic {token}"
    return request


# -- auth and routing --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/dev/v1/projects", SEEDED_QUERY])
def test_missing_credentials_are_unauthorized(api: Api, http: httpx.Client, path: str) -> None:
    with api.invalid_requests():
        response = http.get(path, auth=None)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"demo-agora-customer-default:wrong").decode(),
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"nobody:x").decode(),
    ],
)
def test_wrong_credentials_are_rejected(api: Api, http: httpx.Client, authorization: str) -> None:
    with api.invalid_requests():
        response = http.get("/dev/v1/projects", auth=None, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid authentication credentials"}


def test_bearer_token_is_not_basic_auth(api: Api, http: httpx.Client) -> None:
    with api.invalid_requests():
        response = http.get(
            "/dev/v1/projects", auth=None, headers={"Authorization": "Bearer demo-agora-secret-default"}
        )
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


def test_every_demo_account_authenticates(api: Api, http: httpx.Client) -> None:
    for account in DEMO_ACCOUNTS.values():
        response = http.get("/dev/v1/projects", auth=(account["customer_id"], account["customer_secret"]))
        assert response.status_code == 200
        assert account["app_id"] in [p["vendor_key"] for p in response.json()["projects"]]


def test_unknown_route_and_wrong_method_are_gateway_404s(api: Api, http: httpx.Client) -> None:
    with api.invalid_requests():
        unknown = http.get("/dev/v2/projects")
        wrong_method = http.get(f"{RECORDING}/acquire")
    for response in (unknown, wrong_method):
        assert response.status_code == 404
        assert response.json() == {"message": "no Route matched with those values"}


# -- Console API ------------------------------------------------------------------------------


def test_list_projects_returns_the_seeded_projects(http: httpx.Client) -> None:
    response = http.get("/dev/v1/projects", headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    projects = {p["id"]: p for p in response.json()["projects"]}
    assert set(projects) == {"abc123", "7sdnf3xRH", "Qm4pT8wLz"}
    assert projects["abc123"]["vendor_key"] == APP_ID
    assert projects["abc123"]["status"] == 1
    assert projects["7sdnf3xRH"]["sign_key"] == ""
    assert projects["Qm4pT8wLz"] == {**projects["Qm4pT8wLz"], "status": 0, "recording_server": "10.12.1.5:8080"}


def test_accounts_see_only_their_own_projects(http: httpx.Client) -> None:
    account = DEMO_ACCOUNTS["production"]
    response = http.get("/dev/v1/projects", auth=(account["customer_id"], account["customer_secret"]))
    assert [p["id"] for p in response.json()["projects"]] == ["prd4k2Jw9"]


def test_get_project_needs_id_and_name(api: Api, http: httpx.Client) -> None:
    found = http.get("/dev/v1/project", params={"id": "abc123", "name": "kosmo-demo-meetings"})
    assert found.status_code == 200
    assert [p["id"] for p in found.json()["projects"]] == ["abc123"]
    other_name = http.get("/dev/v1/project", params={"id": "abc123", "name": "support-calls"})
    assert other_name.json() == {"projects": []}
    with api.invalid_requests():
        missing = http.get("/dev/v1/project", params={"id": "abc123"})
    assert missing.status_code == 400
    assert missing.json()["message"]


def test_created_project_is_listed_and_fetchable(http: httpx.Client) -> None:
    response = http.post("/dev/v1/project", json={"name": "my-video-app", "enable_sign_key": True})
    assert response.status_code == 201
    project = response.json()["project"]
    assert project["name"] == "my-video-app"
    assert project["status"] == 1 and project["recording_server"] is None
    assert len(project["sign_key"]) == 32 and project["vendor_key"] != project["sign_key"]
    listed = http.get("/dev/v1/projects").json()["projects"]
    assert project in listed
    fetched = http.get("/dev/v1/project", params={"id": project["id"], "name": "my-video-app"})
    assert fetched.json() == {"projects": [project]}


def test_project_without_sign_key_has_an_empty_certificate(http: httpx.Client) -> None:
    response = http.post("/dev/v1/project", json={"name": "no-cert", "enable_sign_key": False})
    assert response.json()["project"]["sign_key"] == ""


def test_duplicate_project_name_is_a_400(http: httpx.Client) -> None:
    response = http.post("/dev/v1/project", json={"name": "kosmo-demo-meetings", "enable_sign_key": False})
    assert response.status_code == 400
    assert "Duplicate" in response.json()["message"]


def test_invalid_project_name_is_a_400(api: Api, http: httpx.Client) -> None:
    with api.invalid_requests():
        for name in ("", "x" * 256, 42):
            response = http.post("/dev/v1/project", json={"name": name, "enable_sign_key": False})
            assert response.status_code == 400


def test_console_post_needs_a_json_content_type(api: Api, http: httpx.Client) -> None:
    with api.invalid_requests():
        response = http.post(
            "/dev/v1/project", content=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    assert response.status_code == 415
    assert response.json() == {"message": "Unsupported Media Type"}


def test_project_settings_are_stateful(http: httpx.Client) -> None:
    server = http.post("/dev/v1/recording_config", json={"id": "7sdnf3xRH", "recording_server": "10.0.0.7:8080"})
    assert server.status_code == 201
    assert server.json()["project"]["recording_server"] == "10.0.0.7:8080"
    enabled = http.post("/dev/v1/signkey", json={"id": "7sdnf3xRH", "enable": True}).json()["project"]
    assert len(enabled["sign_key"]) == 32
    reset = http.post("/dev/v1/reset_signkey", json={"id": "7sdnf3xRH"}).json()["project"]
    assert reset["sign_key"] != enabled["sign_key"]
    disabled = http.post("/dev/v1/project_status", json={"id": "7sdnf3xRH", "status": 0}).json()["project"]
    assert disabled["status"] == 0
    listed = {p["id"]: p for p in http.get("/dev/v1/projects").json()["projects"]}
    assert listed["7sdnf3xRH"] == disabled == {**reset, "status": 0}
    cleared = http.post("/dev/v1/signkey", json={"id": "7sdnf3xRH", "enable": False}).json()["project"]
    assert cleared["sign_key"] == ""


def test_unknown_project_id_is_a_404(http: httpx.Client) -> None:
    for path, body in [
        ("/dev/v1/recording_config", {"recording_server": "10.0.0.7:8080"}),
        ("/dev/v1/signkey", {"enable": True}),
    ]:
        response = http.post(path, json={"id": "nope", **body})
        assert response.status_code == 404
        assert response.json()["message"]


# -- Cloud Recording --------------------------------------------------------------------------


def test_seeded_recording_is_queryable(http: httpx.Client) -> None:
    response = http.get(SEEDED_QUERY)
    assert response.status_code == 200
    body = response.json()
    assert (body["resourceId"], body["sid"], body["cname"], body["uid"]) == (
        SEEDED_RESOURCE_ID,
        "sid-abc123",
        "meeting-room",
        "100200",
    )
    server = body["serverResponse"]
    assert server["status"] == 5 and server["fileListMode"] == "json"
    names = [f["fileName"] for f in server["fileList"]]
    assert names == [
        "kosmo/meetingroom/sid-abc123_meeting-room.m3u8",
        "kosmo/meetingroom/sid-abc123_meeting-room_20240611093005123.mp4",
    ]
    assert all(
        f["uid"] == "0" and f["mixedAllUser"] and f["trackType"] == "audio_and_video" for f in server["fileList"]
    )


def test_recording_lifecycle(http: httpx.Client) -> None:
    resource_id = acquire(http, resourceExpiredHour=24, region="NA")
    started = start(http, resource_id, recordingFileConfig={"avFileType": ["hls", "mp4"]})
    assert started.status_code == 200
    sid = started.json()["sid"]
    assert started.json() == {"cname": "standup-room", "uid": "1001", "resourceId": resource_id, "sid": sid}
    query = http.get(session(resource_id, sid) + "/query")
    assert query.status_code == 200
    files = query.json()["serverResponse"]["fileList"]
    assert [f["fileName"].rsplit(".", 1)[1] for f in files] == ["m3u8", "mp4"]
    assert files[0]["fileName"] == f"agora/rec/{sid}_standup-room.m3u8"
    stopped = http.post(session(resource_id, sid) + "/stop", json=stop_body())
    assert stopped.status_code == 200
    assert stopped.json()["serverResponse"] == {
        "fileListMode": "json",
        "fileList": files,
        "uploadingStatus": "uploaded",
    }
    gone = http.get(session(resource_id, sid) + "/query")
    assert gone.status_code == 404
    assert gone.json() == {"resourceId": resource_id, "sid": sid, "code": 404, "reason": "failed to find worker"}
    again = http.post(session(resource_id, sid) + "/stop", json=stop_body())
    assert again.status_code == 400
    assert again.json()["code"] == 49


def test_stopping_the_seeded_recording_returns_its_files(http: httpx.Client) -> None:
    files = http.get(SEEDED_QUERY).json()["serverResponse"]["fileList"]
    stopped = http.post(SEEDED_STOP, json=stop_body("meeting-room", "100200"))
    assert stopped.status_code == 200
    assert stopped.json()["serverResponse"]["fileList"] == files
    assert http.get(SEEDED_QUERY).status_code == 404


def test_hls_only_composite_recording_lists_a_single_m3u8_string(http: httpx.Client) -> None:
    resource_id = acquire(http)
    sid = start(http, resource_id).json()["sid"]
    server = http.get(session(resource_id, sid) + "/query").json()["serverResponse"]
    assert server["fileListMode"] == "string"
    assert server["fileList"] == f"agora/rec/{sid}_standup-room.m3u8"


def test_individual_recording_has_a_file_per_user_and_track(http: httpx.Client) -> None:
    resource_id = acquire(http)
    config = {
        "channelType": 0,
        "streamTypes": 2,
        "subscribeAudioUids": ["123", "456"],
        "subscribeVideoUids": ["123"],
        "subscribeUidGroup": 0,
    }
    sid = start(http, resource_id, mode="individual", recordingConfig=config).json()["sid"]
    files = http.get(session(resource_id, sid, "individual") + "/query").json()["serverResponse"]["fileList"]
    assert [(f["uid"], f["trackType"]) for f in files] == [
        ("123", "audio"),
        ("123", "video"),
        ("456", "audio"),
        ("456", "video"),
    ]
    assert files[0]["fileName"] == f"agora/rec/{sid}_standup-room__uid_s_123__uid_e_audio.m3u8"
    assert not any(f["mixedAllUser"] for f in files)


def test_stop_without_recorded_data_is_a_206(http: httpx.Client) -> None:
    resource_id = acquire(http)
    sid = start(
        http, resource_id, mode="individual", recordingConfig={"channelType": 0, "subscribeUidGroup": 0}
    ).json()["sid"]
    stopped = http.post(session(resource_id, sid, "individual") + "/stop", json=stop_body())
    assert stopped.status_code == 206
    assert stopped.json()["code"] == 435


def test_web_page_recording_reports_extension_services(http: httpx.Client) -> None:
    resource_id = acquire(http, "board-42", "2002", scene=1)
    web = {
        "extensionServices": [
            {
                "serviceName": "web_recorder_service",
                "serviceParam": {
                    "url": "https://example.com/board",
                    "audioProfile": 0,
                    "videoWidth": 1280,
                    "videoHeight": 720,
                    "maxRecordingHour": 3,
                },
            }
        ]
    }
    body = start_body(
        "board-42", "2002", recordingFileConfig={"avFileType": ["hls", "mp4"]}, extensionServiceConfig=web
    )
    del body["clientRequest"]["recordingConfig"]
    sid = http.post(f"{RECORDING}/resourceid/{resource_id}/mode/web/start", json=body).json()["sid"]
    query = http.get(session(resource_id, sid, "web") + "/query").json()["serverResponse"]
    assert query["extensionServiceState"][0]["serviceName"] == "web_recorder_service"
    assert query["extensionServiceState"][0]["payload"]["state"] == "inProgress"
    stopped = http.post(session(resource_id, sid, "web") + "/stop", json=stop_body("board-42", "2002")).json()[
        "serverResponse"
    ]
    upload, recorder = stopped["extensionServiceState"]
    assert upload == {"playload": {"uploadingStatus": "uploaded"}, "serviceName": "upload_service"}
    assert [f["filename"].rsplit(".", 1)[1] for f in recorder["payload"]["fileList"]] == ["m3u8", "mp4"]


def test_start_without_storage_config_is_invalid(api: Api, http: httpx.Client) -> None:
    resource_id = acquire(http)
    body = start_body()
    del body["clientRequest"]["storageConfig"]
    with api.invalid_requests():
        response = http.post(f"{RECORDING}/resourceid/{resource_id}/mode/mix/start", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == 2
    assert response.json()["reason"] == "Start: invalid storageConfig value!"


def test_mp4_without_hls_is_invalid(api: Api, http: httpx.Client) -> None:
    resource_id = acquire(http)
    with api.invalid_requests():
        response = start(http, resource_id, recordingFileConfig={"avFileType": ["mp4"]})
    assert (response.status_code, response.json()["code"]) == (400, 2)


def test_starting_a_resource_twice_is_code_7_with_http_201(http: httpx.Client) -> None:
    resource_id = acquire(http)
    sid = start(http, resource_id).json()["sid"]
    again = start(http, resource_id)
    assert again.status_code == 201
    assert again.json() == {
        "cname": "standup-room",
        "uid": "1001",
        "resourceId": resource_id,
        "sid": sid,
        "code": 7,
        "reason": "already started",
    }


def test_unknown_and_expired_resource_ids(switchboard: Switchboard[AgoraSimulator], http: httpx.Client) -> None:
    now = [datetime.now(timezone.utc)]
    switchboard.target = AgoraSimulator(clock=lambda: now[0])  # a clock the test moves
    unknown = start(http, "not-a-resource-id")
    assert (unknown.status_code, unknown.json()["code"]) == (400, 1001)
    resource_id = acquire(http)
    now[0] += timedelta(seconds=301)
    expired = start(http, resource_id)
    assert (expired.status_code, expired.json()["code"]) == (400, 433)


def test_start_must_match_the_acquired_channel_and_uid(http: httpx.Client) -> None:
    resource_id = acquire(http)
    response = start(http, resource_id, uid="1002")
    assert (response.status_code, response.json()["code"]) == (400, 432)


def test_a_second_task_for_the_same_channel_and_uid_conflicts(http: httpx.Client) -> None:
    first, second = acquire(http), acquire(http)
    assert start(http, first).status_code == 200
    conflict = start(http, second)
    assert (conflict.status_code, conflict.json()["code"], conflict.json()["reason"]) == (400, 53, "task conflict")


def test_app_id_must_belong_to_the_customer(http: httpx.Client) -> None:
    for appid in ("0" * 32, DEMO_ACCOUNTS["production"]["app_id"]):
        response = http.post(
            f"/v1/apps/{appid}/cloud_recording/acquire", json={"cname": "room", "uid": "1", "clientRequest": {}}
        )
        assert response.status_code == 400
        assert response.json() == {"message": "appid is invalid"}


def test_acquire_validates_its_parameters(api: Api, http: httpx.Client) -> None:
    with api.invalid_requests():
        numeric_uid = http.post(f"{RECORDING}/acquire", json={"cname": "room", "uid": 527841, "clientRequest": {}})
        bad_hours = http.post(
            f"{RECORDING}/acquire", json={"cname": "room", "uid": "1", "clientRequest": {"resourceExpiredHour": 0}}
        )
        wrong_type = http.post(f"{RECORDING}/acquire", content=b"cname=room", headers={"Content-Type": "text/plain"})
    assert (numeric_uid.status_code, numeric_uid.json()["code"]) == (400, 2)
    assert bad_hours.json() == {
        "cname": "room",
        "uid": "1",
        "code": 2,
        "reason": "Acquire: invalid resourceExpiredHour value!",
    }
    assert (wrong_type.status_code, wrong_type.json()["code"]) == (400, 8)


def test_acquire_rejects_an_invalid_channel_name(http: httpx.Client) -> None:
    response = http.post(f"{RECORDING}/acquire", json={"cname": "room/with/slashes", "uid": "1", "clientRequest": {}})
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_channel_name"


def test_acquire_on_a_disabled_project_is_refused(http: httpx.Client) -> None:
    response = http.post(
        "/v1/apps/e1d2c3b4a5968778695a4b3c2d1e0f9a/cloud_recording/acquire",
        json={"cname": "room", "uid": "1", "clientRequest": {}},
    )
    assert (response.status_code, response.json()["code"], response.json()["reason"]) == (400, 405, "no_active_status")


def test_unknown_sid_is_a_404(http: httpx.Client) -> None:
    response = http.get(session(SEEDED_RESOURCE_ID, "0123456789abcdef0123456789abcdef") + "/query")
    assert response.status_code == 404
    assert response.json()["reason"] == "failed to find worker"


def test_sid_of_another_resource_does_not_match(http: httpx.Client) -> None:
    resource_id = acquire(http)
    start(http, resource_id)
    response = http.get(session(resource_id, "sid-abc123") + "/query")
    assert (response.status_code, response.json()["code"]) == (400, 1003)


# -- faults ------------------------------------------------------------------------------------


def test_latency_fault_delays_but_answers(sim: AgoraSimulator, http: httpx.Client) -> None:
    fault = sim.inject(Fault("latency", seconds=0.01, path="/dev/v1/projects"))
    response = http.get("/dev/v1/projects")
    assert response.status_code == 200
    assert [r.url.path for r in sim.requests] == ["/dev/v1/projects"]
    assert fault.times == 0


def test_rate_limit_fault_has_retry_after(sim: AgoraSimulator, http: httpx.Client) -> None:
    sim.inject(Fault("status", status=429, retry_after=2, path="/acquire$"))
    limited = http.post(f"{RECORDING}/acquire", json={"cname": "room", "uid": "1", "clientRequest": {}})
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert limited.json() == {"message": "API rate limit exceeded"}
    assert http.post(f"{RECORDING}/acquire", json={"cname": "room", "uid": "1", "clientRequest": {}}).status_code == 200


def test_server_error_fault(sim: AgoraSimulator, http: httpx.Client) -> None:
    sim.inject(Fault("status", status=500, method="GET"))
    response = http.get("/dev/v1/projects")
    assert response.status_code == 500
    assert response.json()["message"]


def test_malformed_body_fault(sim: AgoraSimulator, api: Api, http: httpx.Client) -> None:
    sim.inject(Fault("malformed"))
    with api.unchecked():
        response = http.get(SEEDED_QUERY)
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert http.get(SEEDED_QUERY).status_code == 200


def test_dropped_connection_fault(sim: AgoraSimulator, api: Api, http: httpx.Client) -> None:
    sim.inject(Fault("drop"))
    with api.unchecked(), pytest.raises(httpx.TransportError):
        http.get("/dev/v1/projects")
    assert http.get("/dev/v1/projects").status_code == 200
