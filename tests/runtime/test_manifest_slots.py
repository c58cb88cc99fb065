"""The manifest slots behind GoTo's and Agora's declarations: ``string_keys``, ``remember``, lookups with
``one``, settings' ``enum``, ``tables``, a parameter's ``hint``, whole-value shapes, the time and
account expression functions, ``ctx.path``, and the file:line of a manifest's refusal."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from kosmo_runtime._accounts import Account, Secret
from kosmo_runtime._calls import run_declarative
from kosmo_runtime._context import CallContext
from kosmo_runtime._discovery import Catalog
from kosmo_runtime._errors import AccountError, ConfigError, InvalidArgument, ManifestError
from kosmo_runtime._expressions import Scope, apply_shape, evaluate
from kosmo_runtime._manifest import FunctionSpec, Manifest, load_manifest
from kosmo_runtime._string_keys import string_keys
from kosmo_runtime._validation import validate_arguments

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 1, 15, 11, 0, 0, tzinfo=timezone.utc)


def _manifest(ident: str, **top: Any) -> Manifest:
    data = Catalog().find(ident).manifest.model_dump(exclude_defaults=True)  # type: ignore[union-attr]
    return Manifest.model_validate({**data, **top})


class _Http:
    """Answers by path, recording every request."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers: dict[str, Any] = answers
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **options: Any) -> Any:
        self.sent.append((method, path))
        return self.answers[path]

    def get(self, path: str, **options: Any) -> Any:
        return self.request("GET", path, **options)


def _context(manifest: Manifest, http: _Http, label: str | None = None, **settings: Any) -> CallContext:
    account = Account(manifest.id, "work", {"base_url": "https://x.example", **settings}, {"k": Secret("s")}, label=label)
    return CallContext(manifest.id, "f", account, http, None, {}, lambda: NOW,  # type: ignore[arg-type]
                       manifest.lookups, manifest)


def test_string_keys_turn_integer_key_fields_into_strings_at_any_depth() -> None:
    answer = {"webinarKey": 12, "OrganizerKEY": 3, "count": 4, "flagKey": True, "key": "already",
              "items": [{"sessionKey": 5, "name": "a"}, {"name": "b"}], "nested": {"deep": {"registrantKey": 6}}}
    assert string_keys(answer, ("*key",)) == {
        "webinarKey": "12", "OrganizerKEY": "3", "count": 4, "flagKey": True, "key": "already",
        "items": [{"sessionKey": "5", "name": "a"}, {"name": "b"}], "nested": {"deep": {"registrantKey": "6"}}}
    untouched = {"items": [{"name": "b"}], "count": 1}
    assert string_keys(untouched, ("*key",)) is untouched  # nothing to change: not copied
    assert string_keys([1, "x"], ("*key",)) == [1, "x"]
    with pytest.raises(ValueError, match=r"string_keys\.0"):
        _manifest("goto-webinar", string_keys=[""])


def test_string_keys_apply_to_handlers_and_declarations_alike(tmp_path: Path) -> None:
    from kosmo_runtime._calls import _code

    loaded = Catalog().find("goto-webinar")
    assert loaded is not None and loaded.manifest.string_keys == ["*key"]
    http = _Http({"/admin/rest/v1/me": {"key": 200000000000123456, "accountKey": 5, "firstName": "A"}})
    context = _context(loaded.manifest, http)
    me = _code(loaded, "get_current_user", loaded.manifest.functions["get_current_user"])(context, {})
    assert me == {"key": "200000000000123456", "accountKey": "5", "firstName": "A", "organizerKey": "200000000000123456"}
    assert context.memo["organizer_key"] == 200000000000123456  # remember: later paths need not ask /me


def test_remember_keeps_a_value_for_a_lookup_and_the_lookup_then_asks_nothing() -> None:
    manifest = _manifest("goto-webinar")
    http = _Http({"/admin/rest/v1/me": {"key": 77}, "/G2W/rest/v2/organizers/77/webinars/9": {"times": []}})
    context = _context(manifest, http)
    run_declarative(manifest.functions["get_current_user"], context, {})
    run_declarative(manifest.functions["get_webinar"], context, {"id": "9"})
    assert http.sent == [("GET", "/admin/rest/v1/me"), ("GET", "/G2W/rest/v2/organizers/77/webinars/9")]
    with pytest.raises(ValueError, match=r"remember names \['nope'\], which 'lookups' does not declare"):
        data = manifest.model_dump(exclude_defaults=True)
        data["functions"]["get_current_user"]["response"]["remember"] = {"nope": "key"}
        Manifest.model_validate(data)


def test_include_sends_the_reads_first_and_puts_each_answer_under_its_name() -> None:
    manifest = _manifest("goto-webinar")
    session = "/G2W/rest/v2/organizers/5/webinars/w%2F1/sessions/9"
    performance = {"sessionInfo": {"sessionKey": 9, "startTime": "2025-01-15T10:00:00Z", "endTime": "2025-01-15T11:00:00Z"}}
    http = _Http({session: [{"registrantKey": 1}, {"registrantKey": 2}], f"{session}/performance": performance})
    result = run_declarative(manifest.functions["get_session"], _context(manifest, http, organizer_key="5"),
                             {"webinar_id": "w/1", "id": "9"})
    assert http.sent == [("GET", session), ("GET", f"{session}/performance")]  # the included read first
    assert (result["attendees"], result["duration"], result["webinarKey"]) == (2, 3600, "w/1")
    assert result["attendeeList"] == [{"registrantKey": 1}, {"registrantKey": 2}]
    empty = _Http({session: None, f"{session}/performance": performance})  # no attendees: GoTo may answer nothing
    assert run_declarative(manifest.functions["get_session"], _context(manifest, empty, organizer_key="5"),
                           {"webinar_id": "w/1", "id": "9"})["attendees"] == 0
    data = manifest.model_dump(exclude_defaults=True)
    data["functions"]["get_session"]["request"]["include"]["attendeeList"]["method"] = "POST"
    with pytest.raises(ValueError, match="include attendeeList: an included request is a GET"):
        Manifest.model_validate(data)


def test_time_account_and_omit_expression_functions() -> None:
    scope = Scope(account="work", label="Work (QA)", now=lambda: NOW)
    assert evaluate("now()", {}, scope) == "2025-01-15T11:00:00Z"
    assert evaluate("seconds_between(a, b)", {"a": "2025-01-15T10:00:00Z", "b": "2025-01-15T11:02:35+00:00"}, scope) == 3755
    assert evaluate("seconds_between(a, b)", {"a": "2025-01-15T10:00:00.600Z", "b": "2025-01-15T10:00:02Z"}, scope) == 1
    assert evaluate("seconds_between(a, missing)", {"a": "2025-01-15T10:00:00Z"}, scope) is None
    ahead = "times[?seconds_between(now(), endTime) > `0`]"
    times = {"times": [{"endTime": "2025-01-15T10:59:59Z"}, {"endTime": "2025-01-15T11:00:01Z"}]}
    assert evaluate(ahead, times, scope) == [{"endTime": "2025-01-15T11:00:01Z"}]
    assert (evaluate("account_label()", {}, scope), evaluate("account_label()", {}, Scope())) == ("Work (QA)", None)
    assert evaluate("omit(@, 'secret', 'other')", {"secret": "s", "other": 1, "kept": 2}, scope) == {"kept": 2}


def test_an_answer_without_the_expected_shape_is_a_type_error_not_a_crash() -> None:
    with pytest.raises(TypeError, match=r"length\(projects\): In function length\(\), invalid type"):
        evaluate("length(projects)", {}, Scope())  # the Invoker makes it a bad_response after a 2xx answer
    manifest = _manifest("agora")
    context = _context(manifest, _Http({"/dev/v1/projects": {"message": "not the project list"}}))
    with pytest.raises(TypeError):
        run_declarative(manifest.functions["list_projects"], context, {})


def test_a_shape_that_is_one_expression_replaces_each_object() -> None:
    scope = Scope(shapes={"project": "merge(omit(@, 'sign_key'), {app_id: vendor_key, sign_key_enabled: !!sign_key})"})
    projects = [{"id": "a", "vendor_key": "v1", "sign_key": "secret"}, {"id": "b", "vendor_key": "v2", "sign_key": ""}]
    assert apply_shape("project", projects, scope) == [
        {"id": "a", "vendor_key": "v1", "app_id": "v1", "sign_key_enabled": True},
        {"id": "b", "vendor_key": "v2", "app_id": "v2", "sign_key_enabled": False}]
    assert apply_shape("project", projects[0], scope)["app_id"] == "v1"
    with pytest.raises(ValueError, match=r"shape project: expression .merge\(. cannot be read"):
        _manifest("agora", shapes={"project": "merge("})


def test_a_lookup_with_one_takes_the_only_candidate_or_names_them_all() -> None:
    manifest = _manifest("agora")
    one = {"projects": [{"status": 1, "vendor_key": "v1", "name": "a"}, {"status": 0, "vendor_key": "v0", "name": "z"}]}
    context = _context(manifest, _Http({"/dev/v1/projects": one}))
    assert context.lookup("app_id") == "v1" and context.memo["app_id"] == "v1"
    assert _context(manifest, _Http({}), app_id="configured").lookup("app_id") == "configured"
    several = {"projects": [{"status": 1, "vendor_key": "v1", "name": "a"}, {"status": 1, "vendor_key": "v2", "name": "b"}]}
    with pytest.raises(AccountError, match="has no app_id setting and 2 enabled projects, so its app_id is not known") as caught:
        _context(manifest, _Http({"/dev/v1/projects": several})).lookup("app_id")
    assert caught.value.hint == "set app_id for this account in the accounts file; enabled projects: v1 (a), v2 (b)"
    with pytest.raises(AccountError) as none:
        _context(manifest, _Http({"/dev/v1/projects": {"projects": []}})).lookup("app_id")
    assert none.value.hint is not None and none.value.hint.endswith("enabled projects: none")


def test_a_setting_outside_its_enum_is_a_config_error_when_read() -> None:
    manifest = _manifest("agora")
    assert _context(manifest, _Http({}), recording_mode="web").setting("recording_mode") == "web"
    with pytest.raises(ConfigError, match=r"agora\.work: recording_mode is .composite.") as caught:
        _context(manifest, _Http({}), recording_mode="composite").setting("recording_mode")
    assert caught.value.hint == "set recording_mode to one of individual, mix, web in the accounts file"
    data = manifest.model_dump(exclude_defaults=True)
    data["settings"]["recording_mode"]["default"] = "composite"
    with pytest.raises(ValueError, match="default 'composite' is not one of its enum"):
        Manifest.model_validate(data)


def test_tables_and_ctx_path() -> None:
    agora = _context(_manifest("agora"), _Http({}))
    assert agora.table("s3_regions")[3] == "us-west-2" and agora.table("recording_status")[5] == "recording"
    goto = _context(_manifest("goto-webinar"), _Http({"/admin/rest/v1/me": {"key": 42}}))
    assert goto.path("/organizers/{organizer_key}/webinars/{id}", id="a/b c") == "/organizers/42/webinars/a%2Fb%20c"
    assert goto.path("/organizers/{organizer_key}") == "/organizers/42"  # the lookup asked once, then remembered
    assert goto.http.sent == [("GET", "/admin/rest/v1/me")]  # type: ignore[attr-defined]


def test_a_parameters_hint_joins_every_refusal_of_it() -> None:
    spec = FunctionSpec.model_validate({"description": "d", "operation": "write", "handler": "h", "params": {
        "config": {"type": "object", "description": "c", "hint": "other options go to start_recording",
                   "properties": {"server": {"type": "string", "min_length": 1, "description": "s"}}},
        "name": {"type": "string", "description": "n"}}})
    assert validate_arguments("x.f", spec, {"config": {"server": "a:1"}}) == {"config": {"server": "a:1"}}
    assert validate_arguments("x.f", spec, {"config": {"other": None}}) == {"config": {}}  # null: absent, as Lua's nil
    with pytest.raises(InvalidArgument, match="unknown field") as unknown:
        validate_arguments("x.f", spec, {"config": {"max_idle": 3}})
    assert unknown.value.hint is not None and unknown.value.hint.endswith("; other options go to start_recording")
    with pytest.raises(InvalidArgument) as other:
        validate_arguments("x.f", spec, {"name": 5})
    assert other.value.hint is not None and "start_recording" not in other.value.hint


def test_a_manifest_refusal_names_the_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "whereby"
    folder.mkdir()
    text = (ROOT / "integrations" / "whereby" / "manifest.yaml").read_text(encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "response: {transform: room_page}" in row)
    (folder / "manifest.yaml").write_text(text.replace(
        "response: {transform: room_page}", "response: {transform: room_page, remember: {nope: cursor}}"), encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder, None)
    assert str(caught.value).startswith(f"{folder / 'manifest.yaml'}:{line}: functions.list_rooms.response.remember: ")
    assert caught.value.hint is not None and "functions.list_rooms.response.remember" in caught.value.hint
    (folder / "manifest.yaml").write_text(text.replace("    operation: read\n", "    operation: reed\n", 1), encoding="utf-8")
    with pytest.raises(ManifestError, match=r"manifest.yaml:\d+: functions.list_rooms.operation: Input should be"):
        load_manifest(folder, None)
