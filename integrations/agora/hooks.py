"""Agora handlers: the Lua contract over the Console API (projects) and Cloud Recording.

* Projects keep Agora's fields, gain ``app_id`` (= ``vendor_key``, the App ID) and lose
  ``sign_key``, the App Certificate (a secret), which becomes ``sign_key_enabled``.
* Cloud Recording has no endpoint listing recordings, and ``query`` needs the resource
  ID and mode a recording was started with. So ``start_recording`` keeps a record of
  every recording it starts in the runtime's store (collection ``recordings``, keyed
  by sid; storage keys and tokens are never stored), and ``list_recordings`` and
  ``get_recording`` work from those records.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kosmo_runtime.integration import (
    AccountError,
    BadResponse,
    CallContext,
    ConfigError,
    InvalidArgument,
    NotFound,
    UpstreamError,
    UpstreamNotFound,
)

PROJECTS = "/dev/v1/projects"
RECORDINGS = "recordings"  # store collection
MODES = ("individual", "mix", "web")
STORAGE_FIELDS = ("vendor", "region", "bucket", "fileNamePrefix")  # never accessKey, secretKey, ...
PROJECT_RECORDING_KEYS = {"recording_server"}

# serverResponse.status of query (docs.agora.io, Cloud Recording "query") -> our status string.
STATUS = {0: "starting", 1: "starting", 2: "starting", 3: "starting", 4: "starting",
          5: "recording", 6: "stopping", 7: "stopped", 8: "stopped", 20: "failed"}
NOT_RUNNING = "not_running"

# storageConfig.region for vendor 1 (Amazon S3) -> AWS region
# (AgoraIO/Docs-Source: cloud-recording/reference/region-vendor.mdx).
S3_REGIONS = {
    0: "us-east-1", 1: "us-east-2", 2: "us-west-1", 3: "us-west-2", 4: "eu-west-1", 5: "eu-west-2",
    6: "eu-west-3", 7: "eu-central-1", 8: "ap-southeast-1", 9: "ap-southeast-2", 10: "ap-northeast-1",
    11: "ap-northeast-2", 12: "sa-east-1", 13: "ca-central-1", 14: "ap-south-1", 15: "cn-north-1",
    16: "cn-northwest-1", 18: "af-south-1", 19: "ap-east-1", 20: "ap-northeast-3", 21: "eu-north-1",
    22: "me-south-1", 24: "ap-southeast-3", 25: "eu-south-1",
}
AMAZON_S3, GOOGLE_CLOUD = 1, 6


# -- projects ---------------------------------------------------------------------------


def _project(project: dict[str, Any]) -> dict[str, Any]:
    """A Console project without its App Certificate, plus ``app_id`` and ``sign_key_enabled``."""
    shown = {key: value for key, value in project.items() if key != "sign_key"}
    return {**shown, "app_id": project["vendor_key"], "sign_key_enabled": bool(project.get("sign_key"))}


def _projects(ctx: CallContext) -> list[dict[str, Any]]:
    """Every project of the account, as :func:`_project` shows them."""
    return [_project(p) for p in ctx.http.get(PROJECTS)["projects"]]


def project_listing(ctx: CallContext, args: dict[str, Any], projects: list[dict[str, Any]]) -> dict[str, Any]:
    """All projects: ``data`` (the documented key) and ``projects`` (Agora's key), the same items."""
    shown = [_project(p) for p in projects]
    return {"data": shown, "projects": shown}


def project_by_id(ctx: CallContext, args: dict[str, Any], listed: list[dict[str, Any]]) -> dict[str, Any]:
    """One project by id, found in the project list (Agora's ``GET /dev/v1/project`` also needs the name)."""
    projects = [_project(p) for p in listed]
    for project in projects:
        if project["id"] == args["project_id"]:
            return project
    known = ", ".join(f"{p['id']} ({p['name']})" for p in projects) or "none"
    raise UpstreamNotFound(f"{ctx.label}: the account has no project with id {args['project_id']!r}",
                           hint=f"project ids of this account: {known}")


def _recording_server(args: dict[str, Any]) -> str | None:
    """``recording_config.recording_server``; InvalidArgument for keys the Console API has no place for."""
    config = args.get("recording_config") or {}
    unknown = sorted(set(config) - PROJECT_RECORDING_KEYS)
    if unknown:
        raise InvalidArgument(
            f"agora.create_project: recording_config cannot set {', '.join(unknown)}: Agora's Console API "
            "only stores a legacy On-Premise recording server per project",
            param="recording_config", got=", ".join(unknown),
            hint='use recording_config = {recording_server = "ip:port"}, or pass Cloud Recording options '
                 "(maxIdleTime, streamTypes, ...) to start_recording's clientRequest.recordingConfig",
        )
    server = config.get("recording_server")
    if server is not None and (not isinstance(server, str) or not server):
        raise InvalidArgument("agora.create_project: recording_config.recording_server must be a string \"ip:port\"",
                              param="recording_config", hint='write recording_server = "10.0.0.5:8080"')
    return server


def create_project(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Create the project, then (with ``recording_config``) set its recording server."""
    server = _recording_server(args)
    created = ctx.http.post("/dev/v1/project", json={"name": args["name"], "enable_sign_key": args["sign_key"]})
    project = created["project"]
    if server is not None:
        try:
            configured = ctx.http.post("/dev/v1/recording_config",
                                       json={"id": project["id"], "recording_server": server})
        except UpstreamError as exc:
            exc.message += f" (project {project['id']} was created; only setting its recording server failed)"
            raise
        project = configured["project"]
    return _project(project)


# -- recordings: the local records --------------------------------------------------------


def recording_record(*, sid: str, resource_id: str, cname: str, uid: str, mode: str, app_id: str,
                     started_at: int, storage: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps about a just-started recording: how to query it, where its files go (no keys)."""
    return {
        "sid": sid, "resourceId": resource_id, "cname": cname, "uid": uid, "mode": mode, "app_id": app_id,
        "started_at": started_at, "status": "started", "status_checked_at": started_at,
        "storage": {key: storage[key] for key in STORAGE_FIELDS if key in storage},
    }


def list_recordings(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """The stored recordings matching the filters, newest start first (no request is sent)."""
    wanted = {"cname": args.get("cname"), "resourceId": args.get("resource_id")}
    start, end = args.get("start_ts"), args.get("end_ts")
    matches = [
        record for record in ctx.store.all(RECORDINGS)
        if all(value is None or record[key] == value for key, value in wanted.items())
        and (start is None or record["started_at"] >= start) and (end is None or record["started_at"] <= end)
    ]
    matches.sort(key=lambda record: record["started_at"], reverse=True)
    page = matches[:args["limit"]]
    return {"data": page, "count": len(page), "total": len(matches)}


def _object_url(storage: dict[str, Any], key: str) -> str | None:
    """The URL of object ``key`` in the recording's bucket (Amazon S3 and Google Cloud), else ``None``."""
    bucket, path = storage.get("bucket"), quote(key, safe="/")
    if storage.get("vendor") == AMAZON_S3 and storage.get("region") in S3_REGIONS:
        region = S3_REGIONS[storage["region"]]
        domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://{bucket}.s3.{region}.{domain}/{path}"
    if storage.get("vendor") == GOOGLE_CLOUD:
        return f"https://storage.googleapis.com/{bucket}/{path}"
    return None


def _file_list(server: dict[str, Any], storage: dict[str, Any]) -> list[dict[str, Any]] | None:
    """``serverResponse``'s files (``fileList``, or the web recorder's), each with ``filename`` and ``download_url``."""
    files = server.get("fileList")
    if files is None:
        web = [s.get("payload", {}) for s in server.get("extensionServiceState", [])
               if s.get("serviceName") == "web_recorder_service"]
        files = web[0].get("fileList") if web else None
    if files is None:
        return None
    if isinstance(files, str):  # fileListMode "string": the one M3U8 file of an HLS-only composite recording
        files = [{"fileName": files}]
    shown = []
    for file in files:
        name = file.get("fileName") or file.get("filename")
        url = _object_url(storage, name)
        shown.append({**file, "filename": name, **({"download_url": url} if url else {})})
    return shown


def get_recording(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Query a stored recording; a 404 from Agora (no running session) gives the record as ``not_running``."""
    sid = args["recording_id"]
    record = ctx.store.get(RECORDINGS, sid)
    if record is None:
        raise NotFound(
            f"{ctx.label}: no recording {sid!r} is known for account {ctx.account.name!r}",
            hint="only recordings started through this runtime (start_recording, on this machine) are known, "
                 "because Agora cannot list recordings; see list_recordings")
    path = (f"/v1/apps/{record['app_id']}/cloud_recording/resourceid/{record['resourceId']}"
            f"/sid/{sid}/mode/{record['mode']}/query")
    checked = int(ctx.now().timestamp())
    try:
        body = ctx.http.get(path)
    except UpstreamNotFound as exc:
        if exc.service_code != "404":  # the gateway's "no Route matched": not about this session
            raise
        record.update(status=NOT_RUNNING, status_checked_at=checked)
        ctx.store.put(RECORDINGS, sid, record)
        return {**record, "note": "Agora's query answered 404: the session is not running (it stopped, timed out "
                                  "or failed; during Agora's failover this can also last up to a minute). Its files, "
                                  "if any, are in your storage bucket."}
    server = body.get("serverResponse", {})
    record.update(status=STATUS.get(server.get("status"), "unknown"), status_checked_at=checked)
    ctx.store.put(RECORDINGS, sid, record)
    files = _file_list(server, record["storage"])
    return {**body, **record, **({"file_list": files} if files is not None else {})}


# -- recordings: starting ------------------------------------------------------------------


def _app_id(ctx: CallContext) -> str:
    """The ``app_id`` setting, else the vendor key of the account's only enabled project (memoised)."""
    configured: str | None = ctx.setting("app_id") or ctx.memo.get("app_id")
    if configured:
        return configured
    enabled = [p for p in _projects(ctx) if p["status"] == 1]
    if len(enabled) != 1:
        choices = ", ".join(f"{p['app_id']} ({p['name']})" for p in enabled) or "none: enable a project first"
        raise AccountError(
            f"{ctx.label}: account {ctx.account.name!r} has no app_id setting and "
            f"{len(enabled)} enabled projects, so the App ID to record under is not known",
            hint=f"set app_id for this account in the accounts file; enabled projects: {choices}")
    app_id: str = enabled[0]["app_id"]
    ctx.memo["app_id"] = app_id
    return app_id


def _mode(ctx: CallContext) -> str:
    """The ``recording_mode`` setting; ConfigError when it is not a Cloud Recording mode."""
    mode: str = ctx.setting("recording_mode")
    if mode not in MODES:
        raise ConfigError(f"agora.{ctx.account.name}: recording_mode is {mode!r}",
                          hint=f"set recording_mode to one of {', '.join(MODES)} in the accounts file")
    return mode


def start_recording(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """``acquire`` a resource ID, ``start`` recording with it, and remember the recording."""
    client = args.get("clientRequest") or {}
    if not isinstance(client.get("storageConfig"), dict):
        raise InvalidArgument(
            f"{ctx.label}: clientRequest.storageConfig is missing; Agora Cloud Recording only records "
            "into your own cloud storage", param="clientRequest", expected="clientRequest.storageConfig",
            hint="pass clientRequest = {storageConfig = {vendor = 1, region = 0, bucket = ..., accessKey = ..., "
                 "secretKey = ..., fileNamePrefix = {...}}}")
    mode, app_id = _mode(ctx), _app_id(ctx)
    who = {"cname": args["cname"], "uid": args["uid"]}
    recording = f"/v1/apps/{app_id}/cloud_recording"
    # A web page recording needs scene 1 at acquire; the other modes use the defaults.
    acquire = {"scene": 1} if mode == "web" else {}
    resource_id = ctx.http.post(f"{recording}/acquire", json={**who, "clientRequest": acquire})["resourceId"]
    started = ctx.http.post(f"{recording}/resourceid/{resource_id}/mode/{mode}/start",
                            json={**who, "clientRequest": client})
    if not started.get("sid"):
        raise BadResponse(f"{ctx.label}: Agora answered start without a sid "
                          f"(code {started.get('code')}: {started.get('reason')})")
    record = recording_record(sid=started["sid"], resource_id=resource_id, mode=mode, app_id=app_id,
                              started_at=int(ctx.now().timestamp()), storage=client["storageConfig"], **who)
    ctx.store.put(RECORDINGS, record["sid"], record)
    return {**started, **record}


# -- the account ---------------------------------------------------------------------------


def account_summary(ctx: CallContext, args: dict[str, Any], listed: list[dict[str, Any]]) -> dict[str, Any]:
    """The credentials were verified by listing projects; describe the account from its configuration."""
    projects = [_project(p) for p in listed]
    name = ctx.setting("contact_name") or ctx.account.label or ctx.account.name
    user = {"name": name, "account": ctx.account.name}
    if ctx.setting("contact_email"):
        user["email"] = ctx.setting("contact_email")
    result: dict[str, Any] = {"user": user, "authenticated": True, "project_count": len(projects), "projects": projects}
    if ctx.setting("app_id"):
        result["app_id"] = ctx.setting("app_id")
    return result
