"""Agora handlers: the Lua contract over the Console API (projects) and Cloud Recording.

* Projects are the manifest's ``project`` shape: Agora's fields, plus ``app_id`` (= ``vendor_key``,
  the App ID), without ``sign_key``, the App Certificate (a secret): ``sign_key_enabled`` instead.
* Cloud Recording has no endpoint listing recordings, and ``query`` needs the resource
  ID and mode a recording was started with. So ``start_recording`` keeps a record of
  every recording it starts in the runtime's store (collection ``recordings``, keyed
  by sid; storage keys and tokens are never stored), and ``list_recordings`` and
  ``get_recording`` work from those records.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kosmo_runtime.integration import BadResponse, CallContext, InvalidArgument, NotFound, UpstreamError, UpstreamNotFound

RECORDINGS = "recordings"  # store collection
STORAGE_FIELDS = ("vendor", "region", "bucket", "fileNamePrefix")  # never accessKey, secretKey, ...
NOT_RUNNING = "not_running"
AMAZON_S3, GOOGLE_CLOUD = 1, 6


# -- projects -----------------------------------------------------------------------------


def project_by_id(ctx: CallContext, args: dict[str, Any], projects: list[dict[str, Any]]) -> dict[str, Any]:
    """Transform of ``get_project``: the project with the id asked for (Agora's ``GET /dev/v1/project`` also needs the name)."""
    for project in projects:
        if project["id"] == args["project_id"]:
            return project
    known = ", ".join(f"{p['id']} ({p['name']})" for p in projects) or "none"
    raise UpstreamNotFound(f"the account has no project with id {args['project_id']!r}",
                           hint=f"project ids of this account: {known}")


def create_project(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Create the project, then (with ``recording_config``, checked by the manifest) set its recording server."""
    server = (args.get("recording_config") or {}).get("recording_server")
    project: dict[str, Any] = ctx.http.post("/dev/v1/project", json={"name": args["name"], "enable_sign_key": args["sign_key"]})["project"]
    if server is not None:
        try:
            project = ctx.http.post("/dev/v1/recording_config", json={"id": project["id"], "recording_server": server})["project"]
        except UpstreamError as exc:
            exc.message += f" (project {project['id']} was created; only setting its recording server failed)"
            raise
    return ctx.shape("project", project)


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


def _object_url(storage: dict[str, Any], key: str, regions: dict[int, str]) -> str | None:
    """The URL of object ``key`` in the recording's bucket (Amazon S3, ``regions`` by code, and Google Cloud)."""
    bucket, path = storage.get("bucket"), quote(key, safe="/")
    if storage.get("vendor") == AMAZON_S3 and storage.get("region") in regions:
        region = regions[storage["region"]]
        domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://{bucket}.s3.{region}.{domain}/{path}"
    if storage.get("vendor") == GOOGLE_CLOUD:
        return f"https://storage.googleapis.com/{bucket}/{path}"
    return None


def _file_list(server: dict[str, Any], storage: dict[str, Any], regions: dict[int, str]) -> list[dict[str, Any]] | None:
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
        url = _object_url(storage, name, regions)
        shown.append({**file, "filename": name, **({"download_url": url} if url else {})})
    return shown


def get_recording(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """Query a stored recording; a 404 from Agora (no running session) gives the record as ``not_running``."""
    sid = args["recording_id"]
    record = ctx.store.get(RECORDINGS, sid)
    if record is None:
        raise NotFound(
            f"no recording {sid!r} is known for account {ctx.account.name!r}",
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
    record.update(status=ctx.table("recording_status").get(server.get("status"), "unknown"), status_checked_at=checked)
    ctx.store.put(RECORDINGS, sid, record)
    files = _file_list(server, record["storage"], ctx.table("s3_regions"))
    return {**body, **record, **({"file_list": files} if files is not None else {})}


# -- recordings: starting ------------------------------------------------------------------


def start_recording(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """``acquire`` a resource ID, ``start`` recording with it, and remember the recording (the manifest
    checks the ``recording_mode`` setting; the App ID is its ``app_id`` lookup)."""
    client = args.get("clientRequest") or {}
    if not isinstance(client.get("storageConfig"), dict):
        raise InvalidArgument(
            "clientRequest.storageConfig is missing; Agora Cloud Recording only records "
            "into your own cloud storage", param="clientRequest", expected="clientRequest.storageConfig",
            hint="pass clientRequest = {storageConfig = {vendor = 1, region = 0, bucket = ..., accessKey = ..., "
                 "secretKey = ..., fileNamePrefix = {...}}}")
    mode, app_id = ctx.setting("recording_mode"), ctx.lookup("app_id")
    who = {"cname": args["cname"], "uid": args["uid"]}
    recording = f"/v1/apps/{app_id}/cloud_recording"
    # A web page recording needs scene 1 at acquire; the other modes use the defaults.
    acquire = {"scene": 1} if mode == "web" else {}
    resource_id = ctx.http.post(f"{recording}/acquire", json={**who, "clientRequest": acquire})["resourceId"]
    started = ctx.http.post(f"{recording}/resourceid/{resource_id}/mode/{mode}/start",
                            json={**who, "clientRequest": client})
    if not started.get("sid"):
        raise BadResponse(f"Agora answered start without a sid "
                          f"(code {started.get('code')}: {started.get('reason')})")
    record = recording_record(sid=started["sid"], resource_id=resource_id, mode=mode, app_id=app_id,
                              started_at=int(ctx.now().timestamp()), storage=client["storageConfig"], **who)
    ctx.store.put(RECORDINGS, record["sid"], record)
    return {**started, **record}
