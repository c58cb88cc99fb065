"""Loopback simulator of Agora's Console REST API and Cloud Recording REST API.

Both APIs live on one host (``https://api.agora.io``; ``api.sd-rtn.com`` is the
documented alternative) behind Agora's API gateway, and both use HTTP Basic auth
with ``base64(customer_id:customer_secret)``.

Console API (``/dev/v1/...``): list, get (``id`` *and* ``name`` required),
create, enable/disable a project, set the legacy recording server, enable,
disable or reset the primary app certificate. ``vendor_key`` is the App ID.

Cloud Recording (``/v1/apps/{appid}/cloud_recording/...``): ``acquire`` ->
``start`` -> ``query`` -> ``stop``. A resource ID is single-use and expires five
minutes after ``acquire``; ``query`` answers 404 once a recording has stopped, a
repeated ``stop`` answers code 49. The App ID in the path must be the
``vendor_key`` of one of the caller's projects.

Error bodies, as documented:

* gateway (auth, unknown route or method, rate limit, unknown App ID):
  ``{"message": "..."}``, e.g. 401 ``Unauthorized`` (no Basic credentials) or
  ``Invalid authentication credentials``; 404 ``no Route matched with those values``;
* Console API: ``{"message": "..."}`` with 400, 404 or 415;
* Cloud Recording: ``{"code": <int>, "reason": "..."}`` (plus the ``cname``,
  ``uid``, ``resourceId`` and ``sid`` it concerns), e.g. 400 code 2 (invalid
  parameter), 201 code 7 (already started), 404 code 404 (``failed to find worker``).

Seeded data, per demo customer (see ``DEMO_ACCOUNTS``), in ``simulator_data.yaml`` beside this module:

* ``default``: projects ``abc123`` (``kosmo-demo-meetings``, enabled, app
  certificate on), ``7sdnf3xRH`` (``support-calls``, enabled, no certificate)
  and ``Qm4pT8wLz`` (``legacy-webinars``, disabled, recording server set); a
  running composite (``mix``) recording on ``abc123``'s App ID: sid
  ``sid-abc123``, resource ID ``SEEDED_RESOURCE_ID``, cname ``meeting-room``, uid
  ``100200``, HLS + MP4 files (the ``SEEDED_*`` constants). Its uid is not
  ``527841``, the recording uid of Agora's own examples, so that starting a
  recording of ``meeting-room`` as ``527841`` does not collide with it (code 53);
* ``production``: project ``prd4k2Jw9``; ``staging``: project ``stg7Hq3Vn``.

Deliberate choices and quirks:

* Console GETs answer 200 and POSTs 201. The docs' per-endpoint text says "201
  means success" even for GETs, but their status table lists 200 as success,
  the original Dashboard API docs give 200, and clients accept both.
* ``GET /dev/v1/project`` filters by ``id`` and ``name`` and answers
  ``{"projects": []}`` when nothing matches (inferred from the array response).
* Stop of a web page recording reports its upload service under the key
  ``playload``: that misspelling is Agora's own documented response.
* The gateway checks credentials before routing, so an unknown path without
  credentials answers 401, not 404 (the base class authenticates first).
* Not simulated: the 10 QPS limit (inject a 429 ``Fault`` instead), ``update``,
  ``updateLayout``, usage reports and the asynchronous recording errors
  (token expiry, upload failure).
"""

from __future__ import annotations

import re
import secrets
import string
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from kosmo_runtime.integration import Simulator, route

__all__ = [
    "DEMO_ACCOUNTS",
    "SEEDED_CLIENT_REQUEST",
    "SEEDED_CNAME",
    "SEEDED_RESOURCE_ID",
    "SEEDED_SID",
    "SEEDED_STARTED_MS",
    "SEEDED_UID",
    "AgoraSimulator",
]

_DATA = Simulator.read_data(__package__)  # simulator_data.yaml beside this module

# Credentials, plus the integration's non-secret settings: ``app_id``, ``contact_name`` and
# ``contact_email`` (Agora has no identity endpoint; see the manifest).
DEMO_ACCOUNTS: dict[str, dict[str, str]] = _DATA["demo_accounts"]

# The running composite recording seeded on the default customer's first project.
_SEEDED: dict[str, Any] = _DATA["recording"]
SEEDED_RESOURCE_ID: str = _SEEDED["resource_id"]
SEEDED_SID: str = _SEEDED["sid"]
SEEDED_CNAME: str = _SEEDED["cname"]
SEEDED_UID: str = _SEEDED["uid"]
SEEDED_STARTED_MS: int = _SEEDED["started_ms"]  # 2024-06-11T09:30:05.123Z
SEEDED_CLIENT_REQUEST: dict[str, Any] = _SEEDED["client_request"]

NO_ROUTE = "no Route matched with those values"
RESOURCE_TTL_SECONDS = 300
MODES = frozenset({"individual", "mix", "web"})
TRACK_TYPES = {0: "audio", 1: "video", 2: "audio_and_video"}
# Characters the docs allow in a channel name (besides letters and digits).
CNAME_PUNCTUATION = set(" !#$%&()+-:;<=.>?@[]^_{}|~,")
PREFIX_PART = re.compile(r"^[A-Za-z0-9]+$")
UINT32_MAX = 2**32 - 1


@dataclass
class Project:
    """One Console project, serialised exactly as the Console API returns it."""

    id: str
    name: str
    vendor_key: str
    sign_key: str
    recording_server: str | None
    status: int
    created: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Resource:
    """A cloud recording resource handed out by ``acquire``."""

    resource_id: str
    appid: str
    cname: str
    uid: str
    scene: int
    issued_at: float
    sid: str | None = None


@dataclass
class Recording:
    """A recording session started by ``start``."""

    sid: str
    resource_id: str
    appid: str
    cname: str
    uid: str
    mode: str
    client_request: dict[str, Any]
    started_ms: int
    stopped: bool = False

    def echo(self) -> dict[str, str]:
        """The identifying fields Agora echoes in responses about this session."""
        return {"cname": self.cname, "uid": self.uid, "resourceId": self.resource_id, "sid": self.sid}


def _is_json(request: httpx.Request) -> bool:
    media_type: str = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json"


def _valid_uid(uid: Any) -> bool:
    return isinstance(uid, str) and uid.isdigit() and 1 <= int(uid) <= UINT32_MAX


def _valid_channel(cname: str) -> bool:
    return len(cname.encode()) < 64 and all(c.isascii() and (c.isalnum() or c in CNAME_PUNCTUATION) for c in cname)


class AgoraSimulator(Simulator):
    """Agora's Console and Cloud Recording REST APIs, in memory."""

    service = "agora"
    demo_accounts = DEMO_ACCOUNTS
    credential_fields = ("customer_id", "customer_secret")

    # -- state -------------------------------------------------------------------

    def seed(self) -> None:
        """Projects per demo customer and the running recording, from ``simulator_data.yaml``."""
        data = self.seed_data()
        self._projects: dict[str, dict[str, Project]] = {}
        self._resources: dict[str, Resource] = {}
        self._recordings: dict[str, Recording] = {}
        for account, projects in data["projects"].items():
            customer = DEMO_ACCOUNTS[account]["customer_id"]
            self._projects[customer] = {fields["id"]: Project(**fields) for fields in projects}
        seeded = data["recording"]
        appid = DEMO_ACCOUNTS[seeded["account"]]["app_id"]
        resource = Resource(
            seeded["resource_id"], appid, seeded["cname"], seeded["uid"], 0, seeded["started_ms"] / 1000, sid=seeded["sid"]
        )
        self._resources[resource.resource_id] = resource
        self._recordings[seeded["sid"]] = Recording(
            sid=seeded["sid"],
            resource_id=seeded["resource_id"],
            appid=appid,
            cname=seeded["cname"],
            uid=seeded["uid"],
            mode=seeded["mode"],
            client_request=seeded["client_request"],
            started_ms=seeded["started_ms"],
        )

    # -- auth and errors ---------------------------------------------------------

    def authenticate(self, request: httpx.Request) -> httpx.Response | None:
        """HTTP Basic ``customer_id:customer_secret``; no credentials at all is the gateway's bare ``Unauthorized``."""
        credential = self.basic_credential(request)
        if credential is None:
            return self.error(401, "Unauthorized")
        if not self.accepts(credential):
            return self.error(401, "Invalid authentication credentials")
        return None

    def error(self, status: int, message: str, **extra: Any) -> httpx.Response:
        """The API gateway's error: ``{"message": ...}``; a wrong method is an unknown route."""
        if status in (404, 405):
            status, message = 404, NO_ROUTE
        elif status == 429:
            message = "API rate limit exceeded"
        return self.json(status, {"message": message, **extra})

    def _message(self, status: int, message: str) -> httpx.Response:
        """A Console API error."""
        return self.json(status, {"message": message})

    def _fail(self, status: int, code: int, reason: str, **echo: str | None) -> httpx.Response:
        """A Cloud Recording error: the fields it concerns, then ``code`` and ``reason``."""
        return self.json(status, {**{k: v for k, v in echo.items() if v is not None}, "code": code, "reason": reason})

    def _customer(self, request: httpx.Request) -> dict[str, Project]:
        """The projects of the authenticated customer."""
        customer = (self.basic_credential(request) or "").partition(":")[0]
        return self._projects.setdefault(customer, {})

    # -- Console API ---------------------------------------------------------------

    def _console_body(self, request: httpx.Request) -> dict[str, Any] | httpx.Response:
        if not _is_json(request):
            return self._message(415, "Unsupported Media Type")
        body = self.body(request)
        if not isinstance(body, dict):
            return self._message(400, "Invalid request body: expected a JSON object")
        return body

    def _target(self, request: httpx.Request) -> tuple[dict[str, Any], Project] | httpx.Response:
        """The JSON body of a project update and the caller's project named by its ``id``."""
        body = self._console_body(request)
        if isinstance(body, httpx.Response):
            return body
        project_id = body.get("id")
        if not isinstance(project_id, str) or not project_id:
            return self._message(400, "id is required")
        project = self._customer(request).get(project_id)
        if project is None:
            return self._message(404, f"Project {project_id} not found")
        return body, project

    @route("GET", "/dev/v1/projects")
    def list_projects(self, request: httpx.Request) -> httpx.Response:
        """All projects of the customer."""
        return self.json(200, {"projects": [p.as_json() for p in self._customer(request).values()]})

    @route("GET", "/dev/v1/project")
    def get_project(self, request: httpx.Request) -> httpx.Response:
        """The projects matching both ``id`` and ``name`` (both required)."""
        project_id, name = request.url.params.get("id"), request.url.params.get("name")
        if not project_id or not name:
            return self._message(400, "id and name are required")
        matches = [p.as_json() for p in self._customer(request).values() if p.id == project_id and p.name == name]
        return self.json(200, {"projects": matches})

    @route("POST", "/dev/v1/project")
    def create_project(self, request: httpx.Request) -> httpx.Response:
        """Create a project; the name must be 1-255 characters and unique."""
        body = self._console_body(request)
        if isinstance(body, httpx.Response):
            return body
        name, enable = body.get("name"), body.get("enable_sign_key", False)
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            return self._message(400, "name must be a string of 1 to 255 characters")
        if not isinstance(enable, bool):
            return self._message(400, "enable_sign_key must be a boolean")
        projects = self._customer(request)
        if any(p.name == name for p in projects.values()):
            return self._message(400, f"Duplicate project name: {name}")
        project_id = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(9))
        sign_key = uuid.uuid4().hex if enable else ""
        project = Project(project_id, name, uuid.uuid4().hex, sign_key, None, 1, int(self.now().timestamp()))
        projects[project_id] = project
        return self.json(201, {"project": project.as_json()})

    @route("POST", "/dev/v1/project_status")
    def set_project_status(self, request: httpx.Request) -> httpx.Response:
        """Enable (1) or disable (0) a project."""
        target = self._target(request)
        if isinstance(target, httpx.Response):
            return target
        body, project = target
        if body.get("status") not in (0, 1) or isinstance(body.get("status"), bool):
            return self._message(400, "status must be 0 or 1")
        project.status = body["status"]
        return self.json(201, {"project": project.as_json()})

    @route("POST", "/dev/v1/recording_config")
    def set_recording_server(self, request: httpx.Request) -> httpx.Response:
        """Set the (legacy On-Premise Recording) recording server ``ip:port``."""
        target = self._target(request)
        if isinstance(target, httpx.Response):
            return target
        body, project = target
        server = body.get("recording_server")
        if not isinstance(server, str) or not server:
            return self._message(400, "recording_server is required")
        project.recording_server = server
        return self.json(201, {"project": project.as_json()})

    @route("POST", "/dev/v1/signkey")
    def set_sign_key(self, request: httpx.Request) -> httpx.Response:
        """Enable or disable the primary app certificate."""
        target = self._target(request)
        if isinstance(target, httpx.Response):
            return target
        body, project = target
        enable = body.get("enable")
        if not isinstance(enable, bool):
            return self._message(400, "enable must be a boolean")
        if not enable:
            project.sign_key = ""
        elif not project.sign_key:
            project.sign_key = uuid.uuid4().hex
        return self.json(201, {"project": project.as_json()})

    @route("POST", "/dev/v1/reset_signkey")
    def reset_sign_key(self, request: httpx.Request) -> httpx.Response:
        """Replace the primary app certificate with a new one."""
        target = self._target(request)
        if isinstance(target, httpx.Response):
            return target
        _, project = target
        if not project.sign_key:
            return self._message(400, "The primary app certificate is not enabled")
        project.sign_key = uuid.uuid4().hex
        return self.json(201, {"project": project.as_json()})

    # -- Cloud Recording: shared checks ----------------------------------------------

    def _app(self, request: httpx.Request, appid: str) -> Project | httpx.Response:
        """The caller's project whose App ID is ``appid``."""
        for project in self._customer(request).values():
            if project.vendor_key == appid:
                return project
        return self.error(400, "appid is invalid")

    def _recording_body(self, request: httpx.Request, method: str) -> dict[str, Any] | httpx.Response:
        """The JSON body with string ``cname``, uint32-string ``uid`` and object ``clientRequest``."""
        if not _is_json(request):
            return self._fail(400, 8, "Content-type is wrong, use application/json;charset=utf-8")
        body = self.body(request)
        if not isinstance(body, dict):
            return self._fail(400, 8, "The request is not valid JSON")
        if not isinstance(body.get("cname"), str) or not body["cname"]:
            return self._fail(400, 2, f"{method}: invalid cname value!")
        if not _valid_uid(body.get("uid")):
            return self._fail(400, 2, f"{method}: invalid uid value!", cname=body["cname"])
        if not isinstance(body.get("clientRequest", {}), dict):
            return self._fail(400, 2, f"{method}: invalid clientRequest value!", cname=body["cname"], uid=body["uid"])
        return body

    def _session(self, appid: str, resourceid: str, sid: str, mode: str) -> Recording | httpx.Response:
        """The live session addressed by a ``query``/``stop`` path."""
        recording = self._recordings.get(sid)
        if recording is None or recording.mode != mode:
            return self._fail(404, 404, "failed to find worker", resourceId=resourceid, sid=sid)
        if recording.resource_id != resourceid or recording.appid != appid:
            return self._fail(400, 1003, "appid, resourceId and sid do not match", resourceId=resourceid, sid=sid)
        return recording

    # -- Cloud Recording: acquire and start --------------------------------------------

    @route("POST", "/v1/apps/{appid}/cloud_recording/acquire")
    def acquire(self, request: httpx.Request, appid: str) -> httpx.Response:
        """Hand out a single-use resource ID, valid for five minutes."""
        project = self._app(request, appid)
        if isinstance(project, httpx.Response):
            return project
        body = self._recording_body(request, "Acquire")
        if isinstance(body, httpx.Response):
            return body
        cname, uid, client = body["cname"], body["uid"], body.get("clientRequest", {})
        problem = self._acquire_problem(client)
        if problem:
            return self._fail(400, 2, f"Acquire: invalid {problem} value!", cname=cname, uid=uid)
        scene = client.get("scene", 0)
        if scene != 1 and not _valid_channel(cname):
            return self._fail(400, 401, "invalid_channel_name", cname=cname, uid=uid)
        if project.status != 1:
            return self._fail(400, 405, "no_active_status", cname=cname, uid=uid)
        resource = Resource(secrets.token_urlsafe(132), appid, cname, uid, scene, self.now().timestamp())
        self._resources[resource.resource_id] = resource
        return self.json(200, {"cname": cname, "uid": uid, "resourceId": resource.resource_id})

    @staticmethod
    def _acquire_problem(client: dict[str, Any]) -> str | None:
        """The name of the first invalid ``clientRequest`` field of ``acquire``, if any."""
        hours = client.get("resourceExpiredHour", 72)
        if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= 720:
            return "resourceExpiredHour"
        if client.get("scene", 0) not in (0, 1, 2) or isinstance(client.get("scene"), bool):
            return "scene"
        if client.get("region", "NA") not in ("CN", "AP", "EU", "NA"):
            return "region"
        return None

    @route("POST", "/v1/apps/{appid}/cloud_recording/resourceid/{resourceid}/mode/{mode}/start")
    def start(self, request: httpx.Request, appid: str, resourceid: str, mode: str) -> httpx.Response:
        """Start recording with a fresh resource ID; answers the recording ID ``sid``."""
        if isinstance(app := self._app(request, appid), httpx.Response):
            return app
        body = self._recording_body(request, "Start")
        if isinstance(body, httpx.Response):
            return body
        cname, uid, client = body["cname"], body["uid"], body.get("clientRequest", {})
        echo = {"cname": cname, "uid": uid, "resourceId": resourceid}
        problem = "mode" if mode not in MODES else self._start_problem(mode, client)
        if problem:
            return self._fail(400, 2, f"Start: invalid {problem} value!", **echo)
        if mode != "web" and not _valid_channel(cname):
            return self._fail(400, 1013, "invalid channel name", **echo)
        resource = self._resources.get(resourceid)
        if resource is None:
            return self._fail(400, 1001, "failed to parse resourceId", **echo)
        refused = self._start_refusal(resource, appid, cname, uid, echo)
        if refused is not None:
            return refused
        recording = Recording(uuid.uuid4().hex, resourceid, appid, cname, uid, mode, client, int(self.now().timestamp() * 1000))
        resource.sid = recording.sid
        self._recordings[recording.sid] = recording
        return self.json(200, {"cname": cname, "uid": uid, "resourceId": resourceid, "sid": recording.sid})

    def _start_refusal(
        self, resource: Resource, appid: str, cname: str, uid: str, echo: dict[str, str]
    ) -> httpx.Response | None:
        """Why ``resource`` cannot start a recording of ``cname``/``uid`` now, if it cannot."""
        if resource.sid is not None:
            return self._fail(201, 7, "already started", **echo, sid=resource.sid)
        if resource.appid != appid:
            return self._fail(400, 1003, "appid does not match resourceId", **echo)
        if (resource.cname, resource.uid) != (cname, uid):
            return self._fail(400, 432, "cname or uid does not match resourceId", **echo)
        if self.now().timestamp() - resource.issued_at > RESOURCE_TTL_SECONDS:
            return self._fail(400, 433, "resourceId expired", **echo)
        for running in self._recordings.values():
            if not running.stopped and (running.appid, running.cname, running.uid) == (appid, cname, uid):
                return self._fail(400, 53, "task conflict", **echo)
        return None

    @staticmethod
    def _start_problem(mode: str, client: dict[str, Any]) -> str | None:
        """The name of the first invalid ``clientRequest`` field of ``start``, if any."""
        storage = client.get("storageConfig")
        if not isinstance(storage, dict):
            return "storageConfig"
        if not all(isinstance(storage.get(key), int) for key in ("vendor", "region")):
            return "storageConfig"
        if not all(isinstance(storage.get(key), str) and storage[key] for key in ("bucket", "accessKey", "secretKey")):
            return "storageConfig"
        prefix = storage.get("fileNamePrefix", [])
        if not isinstance(prefix, list) or not all(
            isinstance(part, str) and PREFIX_PART.match(part) for part in prefix
        ):
            return "storageConfig.fileNamePrefix"
        if len("/".join(prefix)) > 127:
            return "storageConfig.fileNamePrefix"
        recording = client.get("recordingConfig", {})
        if not isinstance(recording, dict):
            return "recordingConfig"
        if recording.get("streamTypes", 2) not in (0, 1, 2) or recording.get("channelType", 0) not in (0, 1):
            return "recordingConfig"
        if mode == "individual" and "subscribeUidGroup" not in recording:
            return "recordingConfig.subscribeUidGroup"
        files = client.get("recordingFileConfig", {})
        file_types = files.get("avFileType", ["hls"]) if isinstance(files, dict) else None
        # "mp4" must come with "hls" (documented: otherwise error code 2).
        if not isinstance(file_types, list) or not set(file_types) <= {"hls", "mp4"} or "hls" not in file_types:
            return "recordingFileConfig.avFileType"
        if mode == "web" and not AgoraSimulator._web_page(client):
            return "extensionServiceConfig"
        return None

    @staticmethod
    def _web_page(client: dict[str, Any]) -> str | None:
        """The URL of the ``web_recorder_service`` in ``extensionServiceConfig``, if set."""
        config = client.get("extensionServiceConfig")
        services = config.get("extensionServices") if isinstance(config, dict) else None
        for service in services if isinstance(services, list) else []:
            if isinstance(service, dict) and service.get("serviceName") == "web_recorder_service":
                url = (service.get("serviceParam") or {}).get("url")
                return url if isinstance(url, str) and url else None
        return None

    # -- Cloud Recording: query and stop ---------------------------------------------

    @route("GET", "/v1/apps/{appid}/cloud_recording/resourceid/{resourceid}/sid/{sid}/mode/{mode}/query")
    def query(self, request: httpx.Request, appid: str, resourceid: str, sid: str, mode: str) -> httpx.Response:
        """The status and files of a running recording; 404 once it has stopped."""
        if isinstance(app := self._app(request, appid), httpx.Response):
            return app
        recording = self._session(appid, resourceid, sid, mode)
        if isinstance(recording, httpx.Response):
            return recording
        if recording.stopped:
            return self._fail(404, 404, "failed to find worker", resourceId=resourceid, sid=sid)
        return self.json(
            200,
            {
                "resourceId": resourceid,
                "sid": sid,
                "serverResponse": self._status(recording),
                "cname": recording.cname,
                "uid": recording.uid,
            },
        )

    @route("POST", "/v1/apps/{appid}/cloud_recording/resourceid/{resourceid}/sid/{sid}/mode/{mode}/stop")
    def stop(self, request: httpx.Request, appid: str, resourceid: str, sid: str, mode: str) -> httpx.Response:
        """Stop a recording and answer its final file list."""
        if isinstance(app := self._app(request, appid), httpx.Response):
            return app
        body = self._recording_body(request, "Stop")
        if isinstance(body, httpx.Response):
            return body
        recording = self._session(appid, resourceid, sid, mode)
        if isinstance(recording, httpx.Response):
            return recording
        if recording.stopped:
            return self._fail(400, 49, "invalid operation", **recording.echo())
        if (body["cname"], body["uid"]) != (recording.cname, recording.uid):
            return self._fail(400, 432, "cname or uid does not match resourceId", **recording.echo())
        recording.stopped = True
        result = self._stopped(recording)
        if result.get("fileList") == []:
            return self._fail(206, 435, "no recorded data", **recording.echo())
        return self.json(
            200,
            {
                "resourceId": resourceid,
                "sid": sid,
                "serverResponse": result,
                "cname": recording.cname,
                "uid": recording.uid,
            },
        )

    def _status(self, recording: Recording) -> dict[str, Any]:
        """``serverResponse`` of ``query`` for a running recording (status 5: in progress)."""
        client = recording.client_request
        if recording.mode == "web":
            payload = {"fileList": self._web_files(recording), "onhold": False, "state": "inProgress"}
            return {"status": 5, "extensionServiceState": [{"payload": payload, "serviceName": "web_recorder_service"}]}
        if "snapshotConfig" in client and "recordingFileConfig" not in client:
            return {"status": 5, "sliceStartTime": recording.started_ms}
        return {**self._file_list(recording), "status": 5, "sliceStartTime": recording.started_ms}

    def _stopped(self, recording: Recording) -> dict[str, Any]:
        """``serverResponse`` of ``stop``."""
        if recording.mode == "web":
            payload = {"fileList": self._web_files(recording), "onhold": False, "state": "exit"}
            return {
                "extensionServiceState": [
                    {"playload": {"uploadingStatus": "uploaded"}, "serviceName": "upload_service"},
                    {"payload": payload, "serviceName": "web_recorder_service"},
                ]
            }
        if "snapshotConfig" in recording.client_request and "recordingFileConfig" not in recording.client_request:
            return {"uploadingStatus": "uploaded"}
        return {**self._file_list(recording), "uploadingStatus": "uploaded"}

    def _file_list(self, recording: Recording) -> dict[str, Any]:
        """``fileListMode`` and ``fileList``: a bare M3U8 name for HLS-only composite recordings."""
        files = self._files(recording)
        if recording.mode == "mix" and self._file_types(recording) == ["hls"]:
            return {"fileListMode": "string", "fileList": files[0]["fileName"]}
        return {"fileListMode": "json", "fileList": files}

    @staticmethod
    def _file_types(recording: Recording) -> list[str]:
        return list(recording.client_request.get("recordingFileConfig", {}).get("avFileType", ["hls"]))

    @staticmethod
    def _prefix(recording: Recording) -> str:
        parts = recording.client_request["storageConfig"].get("fileNamePrefix", [])
        return "".join(f"{part}/" for part in parts)

    def _files(self, recording: Recording) -> list[dict[str, Any]]:
        """The recorded files, named the way Agora names them in the bucket."""
        config = recording.client_request.get("recordingConfig", {})
        base = f"{self._prefix(recording)}{recording.sid}_{recording.cname}"
        if recording.mode == "mix":
            track = TRACK_TYPES[config.get("streamTypes", 2)]
            names = [f"{base}.m3u8"]
            if "mp4" in self._file_types(recording):
                started = datetime.fromtimestamp(recording.started_ms / 1000, tz=timezone.utc)
                names.append(f"{base}_{started:%Y%m%d%H%M%S}{recording.started_ms % 1000:03d}.mp4")
            return [self._file(recording, name, track, "0", mixed=True) for name in names]
        uids = [
            uid
            for key in ("subscribeAudioUids", "subscribeVideoUids")
            for uid in config.get(key, [])
            if uid != "#allstream#"
        ]
        tracks = {0: ["audio"], 1: ["video"], 2: ["audio", "video"]}[config.get("streamTypes", 2)]
        return [
            self._file(recording, f"{base}__uid_s_{uid}__uid_e_{track}.m3u8", track, uid, mixed=False)
            for uid in dict.fromkeys(uids)
            for track in tracks
        ]

    @staticmethod
    def _file(recording: Recording, name: str, track: str, uid: str, *, mixed: bool) -> dict[str, Any]:
        return {
            "fileName": name,
            "trackType": track,
            "uid": uid,
            "mixedAllUser": mixed,
            "isPlayable": True,
            "sliceStartTime": recording.started_ms,
        }

    def _web_files(self, recording: Recording) -> list[dict[str, Any]]:
        """The files of a web page recording (``filename``, start in seconds)."""
        base = f"{self._prefix(recording)}{recording.sid}_{recording.cname}"
        extensions = ["m3u8"] + (["mp4"] if "mp4" in self._file_types(recording) else [])
        return [{"filename": f"{base}_0.{ext}", "sliceStartTime": recording.started_ms // 1000} for ext in extensions]
