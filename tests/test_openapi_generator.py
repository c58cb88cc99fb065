"""`kosmo integrations new --from-openapi`: manifest-only integrations whose requests follow the spec.

Each generated integration is loaded by the ordinary runtime, its functions are called against a
loopback stub that answers from the spec's own schemas, and every request the stub received is
checked against the official spec with the contract checker.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kosmo_runtime import Runtime
from kosmo_runtime._errors import ConfigError
from kosmo_runtime._manifest import PARSED_COPY, load_manifest, parsed_copy
from kosmo_runtime._openapi import generate, load_spec, snake, write_integration
from kosmo_runtime._simulate import LoopbackServer
from tests.contract.openapi import SpecChecker
from tests.contract.spec_stub import Resolver, SpecStub
from tests.support import SPECS

SECRET = "sk-generated-secret-4242"

# spec file, the spec's server (its path is the prefix of every operation), generator options, operations
CASES = {
    "whereby": ("whereby.json", "https://api.whereby.dev/v1", {},
                ["get_meetings", "post_meetings", "get_meetings_meeting_id", "delete_meetings_meeting_id"]),
    "cal-com": ("calcom.json", "https://api.cal.com", {"base_url": "https://api.cal.com", "auth": "bearer"},
                ["get_me", "get_bookings", "get_booking", "get_event_types", "get_schedules", "create_schedule",
                 "create_webhook"]),
    "goto-webinar": ("gotowebinar.yml", "https://api.getgo.com/G2W/rest/v2", {},
                     ["getWebinars", "getWebinar", "createWebinar", "getAttendees", "getAllRegistrantsForWebinar",
                      "createRegistrant"]),
}


def _document(name: str) -> dict[str, Any]:
    return load_spec(SPECS / name)


def _spec_operation(document: dict[str, Any], upstream: str, prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    method, path = upstream.split(" ", 1)
    item = document["paths"][path[len(prefix):]]
    return item, item[method.lower()]


def _arguments(document: dict[str, Any], function: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Values for every parameter the generated function declares, made from the spec's own schemas."""
    resolver = Resolver(document)
    item, operation = _spec_operation(document, function["upstream"], prefix)
    by_name = {(p["in"], p["name"]): p for p in map(resolver.resolve, [*item.get("parameters", []),
                                                                      *operation.get("parameters", [])])}
    request = function["request"]
    _method, original = function["upstream"].split(" ", 1)
    templates: dict[str, Any] = {}
    for spec_name, lua_name in zip(re.findall(r"\{([^}]+)\}", original), re.findall(r"\{([^}]+)\}", request["path"]), strict=True):
        templates[lua_name] = by_name[("path", spec_name)]["schema"]
    for where in ("query", "headers"):
        for spec_name, template in request.get(where, {}).items():
            templates[template.strip("{}")] = by_name[("query" if where == "query" else "header", spec_name)]["schema"]
    if "body" in request:
        body = resolver.resolve(operation["requestBody"])["content"]
        schema = resolver.resolve(next(iter(body.values()))["schema"])
        properties: dict[str, Any] = {}
        for part in [schema, *schema.get("allOf", [])]:
            properties.update(resolver.resolve(part).get("properties", {}))
        for spec_name, template in request["body"].items():
            templates[template.strip("{}")] = properties[spec_name]
    params = function.get("params", {})
    wanted = {name for name, p in params.items() if p.get("required") or "enum" in p or p["type"] == "object"}
    return {name: resolver.instance(schema) for name, schema in templates.items() if name in wanted}


def _accounts(tmp_path: Path, ident: str, url: str, generated: dict[str, Any]) -> Path:
    fields = {field: SECRET for field in generated["credentials"]}
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "integrations": {
        ident: {"accounts": {"default": {**fields, "base_url": url}}}}}))
    return path


@pytest.mark.parametrize("service", list(CASES))
def test_generated_requests_validate_against_the_spec(service: str, tmp_path: Path) -> None:
    spec_file, server, options, operations = CASES[service]
    document = _document(spec_file)
    ident = f"gen-{service}"
    generated = generate(document, ident, operations=operations, **options)
    assert len(generated.manifest["functions"]) == len(operations)
    root = tmp_path / "integrations"
    write_integration(generated, root)
    prefix = "/" + server.split("/", 3)[3] if server.count("/") > 2 else ""
    stub = SpecStub(document, prefix)
    checker = SpecChecker(spec_file, server)
    with LoopbackServer(stub) as loopback:
        accounts = _accounts(tmp_path, ident, loopback.url, generated.manifest)
        with Runtime(accounts=accounts, integration_paths=[root]) as runtime:
            for name, function in generated.manifest["functions"].items():
                arguments = _arguments(document, function, prefix)
                before = len(stub.requests)
                result = runtime.call(f"{ident}.{name}", arguments)
                assert result.ok, (name, arguments, result.error and result.error.message)
                sent = stub.requests[before:]
                assert len(sent) == 1, name
                method, _path = function["upstream"].split(" ", 1)
                assert sent[0].method == method
                assert sent[0].headers["authorization"] == f"Bearer {SECRET}"
                problems = checker.request_errors(sent[0])
                assert problems == [], (name, problems)
                assert SECRET not in json.dumps(result.to_dict(), default=str)


def test_a_generated_integration_reads_as_docs_and_shows_its_request_in_a_dry_run(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "", "HOME": str(tmp_path)}
    kosmo = [sys.executable, "-m", "kosmo_runtime"]
    made = subprocess.run([*kosmo, "integrations", "new", "meet", "--from-openapi", str(SPECS / "whereby.json"),
                           "--operations", "get_meetings,post_meetings"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    assert "2 functions" in made.stdout and "MEET_TOKEN" in made.stdout
    docs = subprocess.run([*kosmo, "docs", "read", "integrations.meet.post_meetings"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert docs.returncode == 0, docs.stderr
    assert "Create meeting" in docs.stdout and "end_date" in docs.stdout
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("version: 1\nintegrations:\n  meet:\n    accounts:\n      default:\n        token: ${MEET_TOKEN}\n")
    call = subprocess.run([*kosmo, "call", "meet.post_meetings", "--accounts", str(accounts), "--dry-run", "--json",
                           "--arg", "end_date=2025-02-01T10:00:00Z", "--arg", "room_mode=group"],
                          capture_output=True, text=True, env={**env, "MEET_TOKEN": SECRET}, timeout=60)
    assert call.returncode == 0, call.stdout + call.stderr
    envelope = json.loads(call.stdout)
    sent = envelope["result"]["would_send"]
    assert sent["method"] == "POST" and sent["url"] == "https://api.whereby.dev/v1/meetings"
    assert sent["body"] == {"endDate": "2025-02-01T10:00:00Z", "roomMode": "group"}
    assert SECRET not in call.stdout + call.stderr
    again = subprocess.run(made.args, capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr


def test_every_operation_of_every_spec_is_generated_or_refused_with_a_reason() -> None:
    for spec_file, _server, options, _ops in CASES.values():
        document = _document(spec_file)
        generated = generate(document, "everything", **options)
        total = sum(1 for item in document["paths"].values() for m in ("get", "post", "put", "patch", "delete")
                    if m in item)
        assert len(generated.manifest["functions"]) + len(generated.refused) == total
        assert all(why for why in generated.refused.values())
        assert len(generated.manifest["functions"]) > total * 0.8, generated.refused
        functions = generated.manifest["functions"]
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in functions)


def test_generated_manifests_pass_the_manifest_checks(tmp_path: Path) -> None:
    for service, (spec_file, _server, options, _ops) in CASES.items():
        generated = generate(_document(spec_file), f"all-{service}", **options)
        folder = write_integration(generated, tmp_path)
        loaded = load_manifest(folder, None)
        assert set(loaded.manifest.functions) == set(generated.manifest["functions"])
        assert all(f.request is not None and f.handler is None for f in loaded.manifest.functions.values())


def test_the_parsed_copy_is_the_yaml_and_is_ignored_once_the_yaml_is_edited(tmp_path: Path) -> None:
    for service, (spec_file, _server, options, _ops) in CASES.items():
        folder = write_integration(generate(_document(spec_file), f"copy-{service}", **options), tmp_path)
        text = (folder / "manifest.yaml").read_text(encoding="utf-8")
        assert parsed_copy(folder, text) == yaml.safe_load(text)  # the copy says exactly what the YAML says
    edited = text.replace("\nname: ", "\nname: Edited ", 1)
    (folder / "manifest.yaml").write_text(edited, encoding="utf-8")
    assert parsed_copy(folder, edited) is None
    assert load_manifest(folder, None).manifest.name.startswith("Edited ")  # the YAML, parsed again
    (folder / PARSED_COPY).write_text("{not json", encoding="utf-8")
    assert parsed_copy(folder, edited) is None and load_manifest(folder, None).manifest.name.startswith("Edited ")


def _tiny_spec(**operation: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "Tiny", "version": "1"}, "servers": [{"url": "https://api.tiny.test/v3"}],
            "components": {"securitySchemes": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}}},
            "paths": {"/things": {"get": {"operationId": "listThings", "responses": {"200": {"description": "ok"}}},
                                  **operation}}}


def test_what_cannot_be_expressed_is_refused_with_the_reason() -> None:
    multipart = {"requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object"}}}},
                 "responses": {"201": {"description": "made"}}}
    callbacks = {"callbacks": {"done": {}}, "responses": {"201": {"description": "made"}}}
    one_of = {"requestBody": {"content": {"application/json": {"schema": {"oneOf": [
        {"type": "object", "properties": {"a": {"type": "string"}}},
        {"type": "object", "properties": {"b": {"type": "string"}}}]}}}}, "responses": {"201": {"description": "made"}}}
    for body, reason in ((multipart, "multipart/form-data, not JSON"), (callbacks, "callbacks"), (one_of, "oneOf")):
        generated = generate(_tiny_spec(post={"operationId": "makeThing", **body}), "tiny")
        assert "make_thing" not in generated.manifest["functions"]
        assert reason in generated.refused["makeThing"]
    with pytest.raises(ConfigError, match="no servers") as no_servers:
        generate({**_tiny_spec(), "servers": []}, "tiny")
    assert "--base-url" in (no_servers.value.hint or "")
    with pytest.raises(ConfigError, match="no securitySchemes") as no_auth:
        generate({**_tiny_spec(), "components": {}}, "tiny")
    assert "--auth" in (no_auth.value.hint or "")
    with pytest.raises(ConfigError, match="did you mean 'listThings'"):
        generate(_tiny_spec(), "tiny", operations=["listThing"])



def test_a_spec_that_is_not_openapi_3_is_refused_naming_the_file(tmp_path: Path) -> None:
    swagger = tmp_path / "old.json"
    swagger.write_text(json.dumps({"swagger": "2.0", "paths": {}}))
    with pytest.raises(ConfigError, match=r"old\.json: an OpenAPI 3\.x document is needed \(swagger 2\.0\)"):
        load_spec(swagger)
    broken = tmp_path / "broken.yaml"
    broken.write_text("openapi: [3\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not JSON or YAML"):
        load_spec(broken)


@pytest.mark.parametrize("where", ["query", "header"])
def test_an_api_key_goes_where_the_spec_says_and_nowhere_else(where: str, tmp_path: Path) -> None:
    spec = _tiny_spec()
    spec["components"]["securitySchemes"]["key"]["in"] = where
    generated = generate(spec, "tiny")
    assert generated.manifest["auth"] == {"kind": "api_key", "key": "api_key", where: "api_key"}
    root = tmp_path / "integrations"
    write_integration(generated, root)
    seen: list[Any] = []

    def answer(request: Any) -> Any:
        import httpx

        seen.append(request)
        return httpx.Response(200, json={"things": []})

    with LoopbackServer(answer) as server, \
            Runtime(accounts=_accounts(tmp_path, "tiny", server.url, generated.manifest), integration_paths=[root]) as runtime:
        result = runtime.run('return app.integrations.tiny.list_things()')
    assert result.ok, result.error
    sent = seen[0]
    assert (sent.url.params.get("api_key") if where == "query" else sent.headers.get("api_key")) == SECRET
    assert SECRET not in json.dumps(result.to_dict(), default=str)


def test_snake_case_names_are_valid_lua_names() -> None:
    assert snake("getBookingByUid") == "get_booking_by_uid"
    assert snake("HTTPStatus-check") == "http_status_check"
    assert snake("2fa") == "p_2fa"
    assert snake("") == "value"


def test_a_plain_pagination_is_declared_and_the_function_returns_one_page() -> None:
    spec_file, _server, options, _ops = CASES["whereby"]
    manifest = generate(_document(spec_file), "paged", **options).manifest
    # Whereby's GET /meetings: limit (maximum 100) and cursor
    assert manifest["paginations"]["get_meetings"] == {"strategy": "cursor", "size": 100, "size_param": "limit",
                                                       "cursor_param": "cursor"}
    request = manifest["functions"]["get_meetings"]["request"]
    assert request["paginate"] == {"using": "get_meetings"}  # no collect: one page per call, as described
    assert {"limit", "cursor"} <= set(request["query"])
    assert "one page per call" in manifest["functions"]["get_meetings"]["description"]
    assert all(f["operation"] == "read" for f in manifest["functions"].values() if "paginate" in f["request"])
