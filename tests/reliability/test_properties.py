"""Property-based reliability tests (Hypothesis), without network.

1. Argument validation: random argument tables for every function of every built-in
   integration and of the test integration, checked directly with ``validate_arguments``,
   through ``Runtime.call`` and through a Lua script (``json.decode`` of embedded JSON),
   plus a few end-to-end runs against the Whereby simulator on loopback (``Demo``).
2. The accounts loader: arbitrary text and structurally plausible documents (real and
   fake keys, values of random types, duplicated keys, tabs, bad indentation, anchors
   and aliases, deep nesting) either load or raise ``AccountsFileError`` with ``file``,
   a line inside the document (or None) and a hint; loaded configs check and describe
   without showing a credential.
3. Values crossing Lua <-> Python: JSON-compatible data round-trips through
   ``json.decode``/``json.encode`` and Lua table constructors by the documented rules,
   or fails with a clean, structured error.

The loader bugs this suite found (alias bombs, recursive aliases, non-text keys, bad
tags, path-like or over-long ids, control characters) are pinned by the examples at the end.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, note, reject, settings
from hypothesis import strategies as st

from kosmo_runtime import (
    Account,
    AccountsConfig,
    AccountsFileError,
    Demo,
    InvalidArgument,
    KosmoError,
    Limits,
    Runtime,
    Secret,
)
from kosmo_runtime._accounts import ACCOUNT_KEYS, POLICIES, TIMEOUT_KEYS
from kosmo_runtime._manifest import FunctionSpec, ParamSpec
from kosmo_runtime._validation import validate_arguments

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "integrations"
BUILTIN = ("agora", "cal-com", "goto-webinar", "whereby")
EXPECTED_IDS = (*BUILTIN, "test-notes")
LIMITS = Limits(wall_time=5)
PYTHON_TRACEBACK = "Traceback (most recent call last)"
INT64 = (-(2**63), 2**63 - 1)

COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------------------------
# shared objects (module-level so Hypothesis never sees function-scoped fixtures)
# --------------------------------------------------------------------------------------------

_ISOLATED_ENV = ("KOSMO_ACCOUNTS", "KOSMO_INTEGRATIONS_PATH", "KOSMO_AUDIT_LOG")


@pytest.fixture(scope="module", autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory):
    """No accounts file, extra integrations or audit log of the machine leaks into these tests."""
    with pytest.MonkeyPatch.context() as mp:
        for name in _ISOLATED_ENV:
            mp.delenv(name, raising=False)
        base = tmp_path_factory.mktemp("reliability-home")
        mp.setenv("XDG_CONFIG_HOME", str(base / "config"))
        mp.setenv("XDG_DATA_HOME", str(base / "data"))
        yield


RT = Runtime(integration_paths=[FIXTURES], store=":memory:", accounts=AccountsConfig.empty())


@pytest.fixture(scope="module", autouse=True)
def _close_runtime():
    yield
    RT.close()


def _functions() -> list[tuple[str, str, FunctionSpec]]:
    found = []
    for ident in EXPECTED_IDS:
        manifest = RT._manifest_for(ident)
        assert manifest is not None, f"integration {ident} is not installed"
        found += [(ident, name, spec) for name, spec in manifest.functions.items()]
    return found


FUNCTIONS = _functions()
WHEREBY_FUNCTIONS = [f for f in FUNCTIONS if f[0] == "whereby"]


def test_every_integration_and_function_is_covered() -> None:
    assert {ident for ident, _, _ in FUNCTIONS} == set(EXPECTED_IDS)
    assert len(FUNCTIONS) >= 30


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Deep equality that also requires the same JSON types (1 is not 1.0, [] is not {})."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def one_line(text: str) -> bool:
    return len(text.splitlines()) <= 1


def lua_string(text: str) -> str:
    """A Lua string literal for ``text``, exact for any content (decimal byte escapes)."""
    out = []
    for byte in text.encode("utf-8"):
        out.append(chr(byte) if 32 <= byte < 127 and byte not in (34, 92) else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_literal(value: Any) -> str:
    """A Lua expression building ``value`` by the documented rules (json.null, json.array())."""
    if value is None:
        return "json.null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "math.mininteger" if value == INT64[0] else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "json.array({" + ", ".join(lua_literal(v) for v in value) + "})"
    return "{" + ", ".join(f"[{lua_string(k)}] = {lua_literal(v)}" for k, v in value.items()) + "}"


def lua_normalised(value: Any) -> Any:
    """What a JSON value looks like after crossing into Lua and back: ints beyond 64 bits become floats."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if INT64[0] <= value <= INT64[1] else float(value)
    if isinstance(value, list):
        return [lua_normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: lua_normalised(v) for k, v in value.items()}
    return value


def assert_structured(result: Any) -> None:
    """A run or call ended ok, or with a KosmoError that has a code and shows no Python traceback."""
    assert PYTHON_TRACEBACK not in result.output
    if result.ok:
        assert result.error is None
        return
    error = result.error
    assert isinstance(error, KosmoError), error
    assert isinstance(error.code, str) and error.code
    assert PYTHON_TRACEBACK not in error.message
    assert PYTHON_TRACEBACK not in (getattr(error, "traceback", None) or "")
    json.dumps(error.to_dict())  # the envelope stays JSON


# --------------------------------------------------------------------------------------------
# 1. argument validation
# --------------------------------------------------------------------------------------------

# Strings without surrogates; parameter names also without control or line-break characters
# (a name with a line break is shown escaped, so messages stay on one line).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=16)
NAME_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12)
HUGE_INTS = st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30), 10**300, -(10**300)])
INTS = st.one_of(st.integers(), st.integers(*INT64), HUGE_INTS)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=10,
)

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def coerced(kind: str, value: Any) -> Any:
    """The documented leniencies: {} for an empty list or object, 3.0 for the integer 3."""
    if kind == "array" and isinstance(value, dict) and not value:
        return []
    if kind == "object" and isinstance(value, list) and not value:
        return {}
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def expected_value(param: ParamSpec, value: Any) -> Any:
    value = coerced(param.type, value)
    if param.items is not None and isinstance(value, list):
        value = [coerced(param.items, item) for item in value]
    if param.properties is not None:
        fields = param.properties
        shaped = [{**{k: v for k, v in item.items() if k not in fields},  # unknown fields stay: they are refused
                   **{k: expected_value(f, item[k]) for k, f in fields.items() if item.get(k) is not None}}
                  if isinstance(item, dict) else item for item in (value if isinstance(value, list) else [value])]
        value = shaped if isinstance(value, list) else shaped[0]
    return value


def _fields_conform(fields: dict[str, ParamSpec], value: Any, formats: bool) -> bool:
    return isinstance(value, dict) and all(key in fields for key in value) and all(
        (value.get(key) is None and not field.required) or (value.get(key) is not None and conforms(field, value[key], formats))
        for key, field in fields.items())


def conforms(param: ParamSpec, value: Any, formats: bool = True) -> bool:
    """Whether a present (non-None) value satisfies its declaration (independent of the product code)."""
    if param.properties is not None and any(  # an unknown field with a value is refused (expected_value drops it)
            isinstance(item, dict) and any(key not in param.properties and field is not None for key, field in item.items())
            for item in (value if isinstance(value, list) else [value])):
        return False
    value = expected_value(param, value)
    if not _TYPES[param.type](value):
        return False
    if param.enum is not None and value not in param.enum:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if param.minimum is not None and value < param.minimum:
            return False
        if param.maximum is not None and value > param.maximum:
            return False
    if isinstance(value, (str, list)):
        if param.min_length is not None and len(value) < param.min_length:
            return False
        if param.max_length is not None and len(value) > param.max_length:
            return False
    if param.items is not None and not all(_TYPES[param.items](item) for item in value):
        return False
    if param.item_enum is not None and not all(item in param.item_enum for item in value):
        return False
    if param.properties is not None and not all(
            _fields_conform(param.properties, item, formats) for item in (value if param.type == "array" else [value])):
        return False
    return not formats or param.format is None or _FORMATS[param.format](value)


def _parses(parse: Callable[[str], Any], text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda v: _parses(datetime.fromisoformat, v[:-1] + "+00:00" if v.endswith(("Z", "z")) else v),
    "date": lambda v: _parses(date.fromisoformat, v),
    "email": lambda v: v.count("@") == 1 and "." in v.split("@")[1] and not any(c.isspace() for c in v)
    and all(v.split("@")) and all(v.split("@")[1].split(".")),
    "uri": lambda v: bool(urlsplit(v).scheme) and bool(urlsplit(v).netloc or urlsplit(v).path),
}


def typed(param: ParamSpec, kind: str | None = None) -> st.SearchStrategy[Any]:
    """Values of a parameter's declared type, near its bounds, so that many calls pass validation."""
    kind = kind or param.type
    if kind == "string":
        options = [TEXT]
        if param.enum and kind == param.type:
            options.append(st.sampled_from(param.enum))
        if param.format == "date-time" and kind == param.type:
            options.append(ISO_DATES)
        if param.item_enum and kind == param.items:
            options.append(st.sampled_from(param.item_enum))
        if param.max_length is not None and kind == param.type:
            options.append(st.text(min_size=max(param.max_length - 1, 0), max_size=param.max_length + 1))
        return st.one_of(*options)
    if kind == "integer":
        low = int(param.minimum) - 3 if param.minimum is not None and kind == param.type else -1000
        high = int(param.maximum) + 3 if param.maximum is not None and kind == param.type else 1000
        return st.one_of(st.integers(low, high), st.integers(low, high).map(float), INTS)
    if kind == "number":
        return st.one_of(FLOATS, st.integers(-1000, 1000))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        item = typed(param, param.items) if param.items and param.items != "array" else JSON
        return st.one_of(st.lists(st.one_of(item, JSON), max_size=3), st.just({}), st.just([]))
    return st.one_of(st.dictionaries(TEXT, JSON, max_size=3), st.just([]), st.just({}))


ISO_DATES = st.datetimes(min_value=datetime(2000, 1, 1)).map(lambda d: d.isoformat(timespec="seconds") + "Z")


@st.composite
def call_arguments(draw: st.DrawFn, functions: list[tuple[str, str, FunctionSpec]] = FUNCTIONS, wild: bool = True):
    """(ident, function, spec, arguments): declared names with typed or random values, sometimes unknown names.

    ``wild=False`` keeps to declared names and typed values (ISO dates for *_date), so most calls are valid.
    """
    ident, function, spec = draw(st.sampled_from(functions))
    arguments: dict[str, Any] = {}
    for name, param in spec.params.items():
        how = draw(st.sampled_from(["absent", "typed", "typed", "typed", "random", "none"] if wild else ["absent", "typed"]))
        if how == "typed":
            arguments[name] = draw(ISO_DATES if name.endswith("_date") and not wild else typed(param))
        elif how == "random":
            arguments[name] = draw(JSON)
        elif how == "none":
            arguments[name] = None
    if wild and draw(st.integers(0, 3)) == 0:
        near = [n + "s" for n in spec.params] + [n.upper() for n in spec.params] + ["", "limit", "id", "_"]
        for name in draw(st.lists(st.one_of(NAME_TEXT, st.sampled_from(near)), min_size=1, max_size=2)):
            arguments[name] = draw(JSON)
    return ident, function, spec, arguments


def check_validation(label: str, spec: FunctionSpec, arguments: dict[str, Any]) -> dict[str, Any] | InvalidArgument:
    """Validate a copy of ``arguments`` and check the outcome against the declaration.

    Any exception other than InvalidArgument propagates and fails the test.
    """
    try:
        checked = validate_arguments(label, spec, copy.deepcopy(arguments))
    except InvalidArgument as error:
        assert error.code == "invalid_argument"
        assert isinstance(error.param, str), error.to_dict()
        assert error.message.startswith(label + ": "), error.message
        assert one_line(error.message), error.message
        unknown = [name for name in arguments if name not in spec.params]
        if unknown:
            assert error.param == unknown[0] and "unknown parameter" in error.message
        else:
            assert error.param in spec.params, error.param
            names = list(spec.params)
            param, value = spec.params[error.param], arguments.get(error.param)
            # parameters are checked in declaration order: types and bounds first, then formats
            format_error = value is not None and conforms(param, value, formats=False)
            for name in names[: names.index(error.param)]:
                value = arguments.get(name)
                assert (value is None and not spec.params[name].required) or (
                    value is not None and conforms(spec.params[name], value, formats=format_error))
            if format_error:
                assert all(arguments.get(n) is None or conforms(spec.params[n], arguments[n], formats=False) for n in names)
            value = arguments.get(error.param)
            assert (value is None and param.required) or (value is not None and not conforms(param, value)), (error.message, value)
        json.dumps(error.to_dict())
        return error
    assert set(checked) <= set(spec.params)
    assert all(name in spec.params for name in arguments)
    for name, param in spec.params.items():
        value = arguments.get(name)
        if value is None:
            assert not param.required, name
            if param.default is not None:
                assert same(checked[name], param.default)
            else:
                assert name not in checked
        else:
            assert conforms(param, value), (name, value)
            assert same(checked[name], expected_value(param, value)), (name, checked[name], value)
    return checked


@settings(max_examples=400, **COMMON)
@given(call_arguments())
def test_validation_accepts_conforming_arguments_and_rejects_the_rest_cleanly(drawn) -> None:
    ident, function, spec, arguments = drawn
    outcome = check_validation(f"{ident}.{function}", spec, arguments)
    event("accepted" if isinstance(outcome, dict) else "rejected")
    note(repr(outcome))


@settings(max_examples=60, **COMMON)
@given(call_arguments(), st.sampled_from([None, "default", "nobody"]))
def test_runtime_call_ends_at_validation_or_at_the_missing_account(drawn, account) -> None:
    """Runtime.call (no Lua) without accounts: the validation error, else an account error; never a request."""
    ident, function, spec, arguments = drawn
    expected = check_validation(f"{ident}.{function}", spec, arguments)
    result = RT.call(f"{ident}.{function}", copy.deepcopy(arguments), account=account, limits=LIMITS)
    assert_structured(result)
    assert not result.ok and not result.calls[0].requests
    if isinstance(expected, InvalidArgument):
        assert result.error.code == "invalid_argument" and result.error.message == expected.message
        assert result.error.param == expected.param
    else:
        assert result.error.code == "account_error", result.error.to_dict()


def lua_call_script(ident: str, function: str, arguments_json: str, account: str | None = None) -> str:
    target = f"app.integrations[{lua_string(ident)}]" + (f"[{lua_string(account)}]" if account else "")
    return f"local args = json.decode({lua_string(arguments_json)})\nreturn {target}[{lua_string(function)}](args)\n"


@settings(max_examples=80, **COMMON)
@given(call_arguments(), st.booleans())
def test_lua_arguments_from_json_match_direct_validation(drawn, as_list) -> None:
    """The same tables built in Lua by json.decode: same verdict as validate_arguments on the converted data."""
    ident, function, spec, arguments = drawn
    data: Any = list(arguments.values()) if as_list else arguments
    result = RT.run(lua_call_script(ident, function, json.dumps(data)), limits=LIMITS)
    assert_structured(result)
    assert not result.ok
    error = result.error
    assert one_line(error.message), error.message
    if as_list:  # a Lua sequence (json.array, even empty) is a list, not named arguments
        assert error.code == "invalid_argument" and "named arguments" in error.message
        assert not result.calls
        return
    expected = check_validation(f"{ident}.{function}", spec, lua_normalised(arguments))
    unknown = [name for name in arguments if name not in spec.params]
    if isinstance(expected, InvalidArgument):
        assert error.code == "invalid_argument", error.to_dict()
        if len(unknown) > 1:  # a Lua table has no key order: any of the unknown names may be reported
            assert error.param in unknown and "unknown parameter" in error.message
        else:  # (the message shows a table value in Lua's key order, so compare the structured fields)
            assert error.param == expected.param, (error.message, expected.message)
            assert getattr(error, "expected", None) == getattr(expected, "expected", None)
            assert error.message.split(" got ")[0] == expected.message.split(" got ")[0]
    else:
        assert error.code == "account_error", error.to_dict()
    assert [call.error for call in result.calls] == [error.code]


@pytest.fixture(scope="module")
def whereby_demo():
    with Demo(["whereby"], rate_limits=False) as demo:
        runtime = demo.runtime()
        yield runtime
        runtime.close()


@settings(max_examples=30, **COMMON)
@given(st.one_of(call_arguments(WHEREBY_FUNCTIONS), call_arguments(WHEREBY_FUNCTIONS, wild=False)))
def test_lua_calls_against_the_whereby_simulator_end_ok_or_structured(whereby_demo, drawn) -> None:
    """End to end on loopback: valid arguments reach the simulator; nothing ends in a traceback or a bug."""
    ident, function, spec, arguments = drawn
    expected = check_validation(f"{ident}.{function}", spec, lua_normalised(arguments))
    result = whereby_demo.run(lua_call_script(ident, function, json.dumps(arguments)), limits=LIMITS)
    assert_structured(result)
    event("ok" if result.ok else result.error.code)
    if isinstance(expected, InvalidArgument):
        assert not result.ok and result.error.code == "invalid_argument"
        if "unknown parameter" not in expected.message:
            assert result.error.param == expected.param
    elif not result.ok:
        assert result.error.code not in ("internal_error", "runtime_error", "limit_exceeded"), result.error.to_dict()
        assert one_line(result.error.message), result.error.message
    assert len(result.calls) == 1


# -- pinned validation bugs ---------------------------------------------------------------------

NOTES = RT._manifest_for("test-notes")


@pytest.mark.parametrize("function,arguments", [
    ("list_notes", {"tag": 10**5000}),
    ("list_notes", {"limit": 10**5000}),
    ("list_notes", {"limit": -(10**5000)}),
    ("create_note", {"text": 10**5000}),
])
def test_huge_integers_are_rejected_cleanly(function, arguments) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_arguments(f"test-notes.{function}", NOTES.functions[function], arguments)
    assert caught.value.param in arguments


def test_runtime_call_with_a_huge_integer_is_invalid_argument() -> None:
    result = RT.call("test-notes.list_notes", {"limit": 10**5000}, limits=LIMITS)
    assert not result.ok and result.error.code == "invalid_argument", result.error.to_dict()


def test_unknown_parameter_with_a_line_break_gives_a_one_line_message() -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_arguments("test-notes.list_notes", NOTES.functions["list_notes"], {"bad\nname": 1})
    assert one_line(caught.value.message)


def test_validation_does_not_modify_the_callers_arguments() -> None:
    from kosmo_runtime._manifest import FunctionSpec, ParamSpec

    times: list[Any] = [[]]
    spec = FunctionSpec(description="d", operation="read", handler="h", params={
        "times": ParamSpec(type="array", items="object", description="slots")})
    checked = validate_arguments("x.f", spec, {"times": times})
    assert checked["times"] == [{}]
    assert times == [[]] and type(times[0]) is list
    slot = {"startTime": "2030-01-01T10:00:00Z", "endTime": "2030-01-01T11:00:00Z"}
    slots = [slot]
    spec = RT._manifest_for("goto-webinar").functions["create_webinar"]
    assert validate_arguments("goto-webinar.create_webinar", spec, {"subject": "s", "times": slots})["times"] == [slot]
    assert slots == [slot] and slots[0] is slot


def test_runtime_call_with_an_overlong_integration_name_returns_not_found() -> None:
    result = RT.call("b" * 300 + ".list_notes", {}, limits=LIMITS)
    assert not result.ok and result.error.code == "not_found"


def test_lua_lookup_of_an_overlong_integration_name_is_not_found() -> None:
    result = RT.run("return app.integrations['" + "b" * 300 + "']", limits=LIMITS)
    assert not result.ok and result.error.code == "not_found", result.error.to_dict()


# --------------------------------------------------------------------------------------------
# 2. the accounts loader
# --------------------------------------------------------------------------------------------

SOURCE = "accounts.yaml"
ENV_SECRET = "env-secret-5c0ffee5c0ffee"
ENVIRON = {"KOSMO_PT_SET": ENV_SECRET}


def parse(text: str) -> AccountsConfig:
    return AccountsConfig.parse(text, SOURCE, RT._manifest_for, RT.catalog.names, environ=ENVIRON)


def load_or_file_error(text: str, secrets: tuple[str, ...] = ()) -> AccountsConfig | None:
    """The loader's contract: a config, or AccountsFileError(file, line in the document or None, hint)."""
    try:
        config = parse(text)
    except AccountsFileError as error:
        event("AccountsFileError")
        assert error.code == "accounts_file_error"
        assert error.file == SOURCE
        assert error.message.startswith(SOURCE)
        last_line = max(1, len(text.splitlines()))
        assert error.line is None or (type(error.line) is int and 1 <= error.line <= last_line), (error.line, last_line)
        assert isinstance(error.hint, str) and error.hint.strip()
        if text.isprintable() or all(c.isprintable() or c in "\n\r\t" for c in text):
            assert one_line(error.message), error.message
        shown = repr(error.to_dict()) + str(error)
        for secret in secrets:
            assert secret not in shown, secret
        json.dumps(error.to_dict(), default=str)
        return None
    assert isinstance(config, AccountsConfig)
    event(f"loaded ({len(config.integrations())} integration(s))")
    return config


def check_loaded(config: AccountsConfig, secrets: tuple[str, ...]) -> None:
    """check() lists KosmoErrors; describe() and resolved accounts never show a credential value."""
    problems = config.check()
    assert isinstance(problems, list) and all(isinstance(p, KosmoError) and p.code for p in problems)
    rows = config.describe()
    assert len(rows) == sum(len(config.account_names(i)) for i in config.integrations())
    for row in rows:
        assert set(row) == {"integration", "account", "default", "writes", "label"}
    held: set[str] = {ENV_SECRET}
    for integration in config.integrations():
        for name in config.account_names(integration):
            try:
                account = config.account(integration, name)
            except KosmoError:
                continue
            assert isinstance(account, Account)
            assert all(isinstance(s, Secret) for s in account.credentials.values())
            held.update(v for v in account.secret_values() if len(v) >= 8)
            for value in account.secret_values():
                if len(value) >= 8:
                    assert value not in str(account.credentials)
                    if value not in repr(account.label) and value not in repr(dict(account.settings)):
                        assert value not in repr(account)  # shown only where the file put it in plain view
    for secret in {*secrets, *held}:
        labelled = any(secret in repr(row["label"]) for row in rows)  # the user wrote it as a label
        if not labelled:
            assert secret not in repr(rows), secret
        for problem in problems:
            assert secret not in problem.message and secret not in repr(problem.to_dict()), problem.message


# (a) arbitrary text

YAMLISH = st.lists(st.sampled_from([*"abcdefgikstvwxy019_-:[]{}&*!|>'\"#\n\n\n  \t?,%@`~.=$<", "version", "settings",
                  "integrations", "test-notes", "accounts", "api_key", "default", "writes", "timeout", "rate_limit", "  ",
                  "    ", ": ", "- ", "---", "...", "&a ", "*a", "<<: ", "!!str ", "!!int ", "\\u", "\r\n", "\x85"]),
                  max_size=40).map("".join)
BYTESISH = st.binary(max_size=80).map(lambda raw: raw.decode("latin-1"))


@settings(max_examples=300, **COMMON)
@given(st.one_of(st.text(max_size=80), YAMLISH, BYTESISH))
@example("!!int")  # an empty tagged scalar: PyYAML's int constructor raised IndexError
def test_arbitrary_text_loads_or_is_a_clean_file_error(text: str) -> None:
    config = load_or_file_error(text)
    if config is not None:
        check_loaded(config, ())


# (b) structurally plausible documents

REAL_IDS = ["test-notes", "whereby", "cal-com", "goto-webinar", "agora"]
IDENTS = st.one_of(st.sampled_from([*REAL_IDS, *REAL_IDS, "goto_webinar", "cal_com", "Whereby", "test-note", "nope", ""]), NAME_TEXT)
ACCOUNT_NAMES = st.one_of(st.sampled_from(["default", "work", "home", "a1", "Bad", "1x", "list_notes", "get_room", "notes_whoami"]),
                          NAME_TEXT)
YAML_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
JUNK = st.recursive(YAML_SCALARS, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(TEXT, c, max_size=3)), max_leaves=6)
POSITIVE = st.one_of(st.integers(1, 100), st.floats(0.001, 1e6))


def _deep(depth: int, leaf: Any) -> Any:
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"k": leaf}
    return leaf


def _faulty(draw: st.DrawFn, rate: int) -> bool:
    """Whether this choice should be a fault, at ``rate`` percent."""
    return draw(st.integers(0, 99)) < rate


@st.composite
def account_fields(draw: st.DrawFn, ident: str, secrets: list[str], rate: int) -> dict[str, Any]:
    manifest = RT._manifest_for(ident) if ident in REAL_IDS else None
    credentials = list(manifest.credentials) if manifest else ["api_key"]
    settings_ = [name for name in manifest.settings] if manifest else ["base_url"]
    fields: dict[str, Any] = {}
    for name in credentials:
        how = draw(st.sampled_from(["secret", "secret", "env", "unset", "empty", "junk", "absent"]
                                   if _faulty(draw, rate) else ["secret", "secret", "secret", "env"]))
        if how == "secret":
            secret = "sk-" + draw(st.text("0123456789abcdef", min_size=16, max_size=16))
            secrets.append(secret)
            fields[name] = secret
        elif how == "env":
            fields[name] = draw(st.sampled_from(["${KOSMO_PT_SET}", "prefix-${KOSMO_PT_SET}"]))
        elif how == "unset":
            fields[name] = "${KOSMO_PT_UNSET}"
        elif how == "empty":
            fields[name] = ""
        elif how == "junk":
            fields[name] = draw(JUNK)
    extra = [*settings_, *ACCOUNT_KEYS] + (["fake", "api_kye", "Writes"] if _faulty(draw, rate) else [])
    for name in draw(st.lists(st.sampled_from(extra), max_size=4, unique=True)):
        bad = _faulty(draw, rate)
        if name == "writes":
            fields[name] = draw(JUNK if bad else st.sampled_from(POLICIES))
        elif name == "timeout":
            fields[name] = draw(st.one_of(JUNK, st.dictionaries(st.sampled_from([*TIMEOUT_KEYS, "total"]), POSITIVE, max_size=3))
                                if bad else st.one_of(POSITIVE, st.dictionaries(st.sampled_from(TIMEOUT_KEYS), POSITIVE, min_size=1)))
        elif name == "rate_limit":
            fields[name] = draw(JUNK if bad else st.one_of(st.just(False),
                                st.fixed_dictionaries({"requests": POSITIVE, "per_seconds": POSITIVE})))
        elif name == "label":  # a label is free-form: any value, deep nesting included
            fields[name] = draw(st.one_of(TEXT, JUNK, st.integers(0, 60).map(lambda d: _deep(d, "x"))))
        else:
            fields[name] = draw(JUNK if bad else st.one_of(TEXT, st.integers(), st.floats(allow_nan=False)))
    return fields


@st.composite
def accounts_documents(draw: st.DrawFn) -> tuple[str, tuple[str, ...], bool]:
    """(text, credential values in it, whether the text is an unmodified dump).

    Each document has a fault rate (0, 5 or 40 percent of its choices are wrong), so that
    valid files with several integrations and accounts are as common as broken ones.
    """
    rate = draw(st.sampled_from([0, 0, 5, 40]))
    secrets: list[str] = []
    doc: dict[str, Any] = {}
    keys = ["version", "settings", "integrations", "integrations"] + (["fake"] if _faulty(draw, rate) else [])
    chosen = draw(st.lists(st.sampled_from(keys), max_size=3, unique=True))
    if rate < 40 and "integrations" not in chosen:
        chosen.append("integrations")
    for key in chosen:
        if key == "version":
            doc[key] = draw(YAML_SCALARS) if _faulty(draw, rate) else 1
        elif key == "settings":
            doc[key] = draw(JUNK) if _faulty(draw, rate) else draw(st.fixed_dictionaries({}, optional={
                "writes": st.sampled_from(POLICIES), "audit_log": TEXT}))
            if isinstance(doc[key], dict) and _faulty(draw, rate):
                doc[key][draw(st.sampled_from(["writes", "audit_log", "fake"]))] = draw(JUNK)
        elif key == "integrations":
            integrations: dict[str, Any] = {}
            idents = IDENTS if _faulty(draw, rate) else st.sampled_from(REAL_IDS)
            for ident in draw(st.lists(idents, min_size=0 if rate >= 40 else 1, max_size=3, unique=True)):
                body: dict[str, Any] = {}
                names = draw(st.lists(ACCOUNT_NAMES if _faulty(draw, rate) else st.sampled_from(["default", "work", "home", "a1"]),
                                      min_size=0 if rate >= 40 else 1, max_size=3, unique=True))
                if names or _faulty(draw, rate):
                    body["accounts"] = {name: draw(account_fields(ident, secrets, rate)) for name in names}
                    if _faulty(draw, rate // 4):
                        body["accounts"] = draw(JUNK)
                if draw(st.booleans()):
                    choices = [n for n in names if n != "default"] if "default" in names else names
                    body["default"] = (draw(st.one_of(st.sampled_from(["default", "missing", *names]), YAML_SCALARS))
                                       if _faulty(draw, rate) or not choices else draw(st.sampled_from(choices)))
                if _faulty(draw, rate // 4):
                    body["fake_key"] = draw(JUNK)
                integrations[ident] = draw(JUNK) if _faulty(draw, rate // 4) else body
            doc[key] = integrations
        else:
            doc[draw(st.sampled_from(["fake", "Version", "integration", ""]))] = draw(JUNK)
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=draw(st.sampled_from([False, True, None])),
                          allow_unicode=draw(st.booleans()), width=draw(st.sampled_from([80, 20, 10**6])))
    mutation = draw(st.sampled_from(["duplicate", "tab", "indent", "junk", "truncate"])) if _faulty(draw, rate) else "none"
    lines = text.splitlines()
    if mutation != "none" and lines:
        i = draw(st.integers(0, len(lines) - 1))
        if mutation == "duplicate":
            lines.insert(i + 1, lines[i])
        elif mutation == "tab":
            stripped = lines[i].lstrip(" ")
            lines[i] = "\t" * draw(st.integers(1, 2)) + stripped
        elif mutation == "indent":
            lines[i] = lines[i][1:] if draw(st.booleans()) and lines[i].startswith(" ") else " " + lines[i]
        elif mutation == "junk":
            lines.insert(i, draw(YAMLISH.filter(lambda s: "\n" not in s and "\r" not in s)))
        text = "\n".join(lines) + "\n"
        if mutation == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
    return text, tuple(secrets), mutation == "none"


@settings(max_examples=250, **COMMON)
@given(accounts_documents())
def test_plausible_documents_load_or_fail_cleanly_and_never_show_credentials(document) -> None:
    text, secrets, pristine = document
    note(text)
    # File errors must not show credential values; a mutated text may have moved one elsewhere.
    config = load_or_file_error(text, secrets if pristine else ())
    if config is not None:
        check_loaded(config, secrets)


ANCHORED = [
    "      base: &acct {{api_key: {secret}, writes: {writes}}}\n      other: *acct\n",
    "      base: &acct\n        api_key: {secret}\n      other:\n        <<: *acct\n        label: merged\n",
    "      base: {{api_key: &key {secret}}}\n      other: {{api_key: *key, label: *key}}\n",
    "      base: {{api_key: {secret}, label: &l lab}}\n      other: {{api_key: *missing}}\n",
    "      base: {{api_key: {secret}, timeout: &t {{read: 3}}}}\n      other: {{api_key: {secret}, timeout: *t, rate_limit: *t}}\n",
    "      &name base: {{api_key: {secret}}}\n      *name : {{api_key: {secret}}}\n",
]


@settings(max_examples=60, **COMMON)
@given(st.sampled_from(ANCHORED), st.sampled_from(POLICIES), st.integers(0, 120), st.sampled_from(["[", "{a: "]),
       st.text("0123456789abcdef", min_size=16, max_size=16))
def test_anchors_aliases_and_deep_nesting_load_or_fail_cleanly(template, writes, depth, opener, token) -> None:
    secret = "sk-" + token
    closer = "]" if opener == "[" else "}"
    deep = opener * depth + "x" + closer * depth
    text = ("version: 1\nintegrations:\n  test-notes:\n    accounts:\n" + template.format(secret=secret, writes=writes)
            + f"      deep: {{api_key: {secret}, label: {deep}}}\n")
    config = load_or_file_error(text)
    if config is not None:
        check_loaded(config, (secret,) if "label: *key" not in template else ())


# -- pinned loader bugs -------------------------------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name,text", [
    ("complex mapping key", "? {a: 1}\n: b\n"),
    ("sequence as a key", "[a, b]: 1\n"),
    ("top-level keys of mixed types", "1: a\nfoo: b\n"),
    ("non-scalar default", "integrations:\n  test-notes:\n    default: [a]\n    accounts:\n      a: {api_key: x}\n"),
    ("!!int tag on text", "version: !!int abc\n"),
    ("!!float tag on text", "version: !!float abc\n"),
    ("!!bool tag on text", "version: !!bool abc\n"),
    ("!!timestamp tag on text", "version: !!timestamp abc\n"),
    ("deep nesting", "version: " + "[" * 1500 + "]" * 1500 + "\n"),
    ("recursive alias", "settings: &s {audit_log: *s}\n"),
    ("path-like integration id", "integrations:\n  ../integrations/whereby: {}\n"),
    ("integration id too long for a file name", "integrations:\n  " + "a" * 300 + ": {}\n"),
])
def test_former_loader_bugs_raise_accounts_file_error(name: str, text: str) -> None:
    with pytest.raises(AccountsFileError) as caught:
        parse(text)
    assert caught.value.file == SOURCE and caught.value.hint


def test_control_character_error_is_one_line() -> None:
    with pytest.raises(AccountsFileError) as caught:
        parse("version: 1\nsettings:\n  writes: ask\x07\n")
    assert one_line(caught.value.message) and caught.value.line == 3


def test_billion_laughs_does_not_hang_or_blow_memory() -> None:
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from kosmo_runtime import AccountsConfig, AccountsFileError, Runtime
        runtime = Runtime(store=":memory:", accounts=AccountsConfig.empty())
        try:
            AccountsConfig.parse({billion_laughs()!r}, "accounts.yaml", runtime._manifest_for, runtime.catalog.names)
        except AccountsFileError:
            print("clean")
    """)
    try:
        finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:  # subprocess.run kills the child it started
        pytest.fail("parsing a billion-laughs accounts file did not finish in 5 s")
    assert finished.returncode == 0 and "clean" in finished.stdout, finished.stderr[-500:]


# --------------------------------------------------------------------------------------------
# 3. values crossing Lua <-> Python
# --------------------------------------------------------------------------------------------

LUA_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(*INT64), FLOATS, TEXT),
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(TEXT, children, max_size=5)),
    max_leaves=20,
)


def run(source: str) -> Any:
    result = RT.run(source, limits=LIMITS)
    assert_structured(result)
    return result


@settings(max_examples=150, **COMMON)
@given(LUA_JSON, st.booleans())
def test_json_decode_then_return_gives_the_same_value(data, ascii_only) -> None:
    result = run(f"return json.decode({lua_string(json.dumps(data, ensure_ascii=ascii_only))})")
    assert result.ok, result.error
    assert same(result.result, data), result.result


@settings(max_examples=100, **COMMON)
@given(LUA_JSON)
def test_json_encode_of_decoded_value_round_trips_inside_lua(data) -> None:
    result = run(f"""
        local value = json.decode({lua_string(json.dumps(data))})
        local text = json.encode(value)
        return {{text = text, back = json.decode(text), again = json.encode(json.decode(text), {{indent = 2}})}}
    """)
    assert result.ok, result.error
    out = result.result
    assert isinstance(out["text"], str) and same(json.loads(out["text"]), data)
    assert same(json.loads(out["again"]), data)
    if data is None:
        assert "back" not in out or out["back"] is None  # a nil field is absent, json.null is null
    else:
        assert same(out["back"], data)


@settings(max_examples=100, **COMMON)
@given(LUA_JSON)
def test_lua_table_constructors_follow_the_documented_rules(data) -> None:
    """json.array() for lists (even empty), json.null for None, string keys stay strings ("1" is not [1])."""
    literal = lua_literal(data)
    result = run(f"local value = {literal}\nreturn value, json.encode(value)")
    assert result.ok, result.error
    value, text = result.result
    assert same(value, data)
    assert same(json.loads(text), data)


@settings(max_examples=60, **COMMON)
@given(st.one_of(st.integers(max_value=INT64[0] - 1), st.integers(min_value=INT64[1] + 1)).filter(lambda n: len(str(n)) < 4300))
def test_integers_beyond_64_bits_arrive_as_floats(number) -> None:
    result = run(f"local v = json.decode({lua_string(json.dumps([number]))}) return v[1], math.type(v[1])")
    assert result.ok, result.error
    assert result.result == [float(number), "float"]


@settings(max_examples=60, **COMMON)
@given(st.integers(65, 300), st.sampled_from(["[]", "{}"]), st.booleans())
def test_nesting_beyond_the_depth_limit_is_a_limit_error(depth, pair, literal) -> None:
    if literal:  # built in Lua: the depth limit applies when it leaves the sandbox
        source = f"local t = {{}} local cur = t for i = 1, {depth} do cur.k = {{}} cur = cur.k end return t"
    else:
        opener, closer = ("[", "]") if pair == "[]" else ('{"k": ', "}")
        source = f"return json.decode({lua_string(opener * depth + '1' + closer * depth)})"
    result = run(source)
    assert not result.ok
    assert result.error.code == "limit_exceeded" and result.error.limit == "depth", result.error.to_dict()


@settings(max_examples=200, **COMMON)
@given(st.one_of(st.text(max_size=40), YAMLISH, st.builds(json.dumps, LUA_JSON)))
def test_json_decode_of_any_text_returns_the_value_or_a_clean_error(text) -> None:
    try:
        expected = json.loads(text)
        valid = True
    except ValueError:
        valid = False
    if valid:
        def has_surrogate(v: Any) -> bool:
            if isinstance(v, str):
                return any("\ud800" <= c <= "\udfff" for c in v)
            if isinstance(v, list):
                return any(has_surrogate(x) for x in v)
            if isinstance(v, dict):
                return any(has_surrogate(k) or has_surrogate(x) for k, x in v.items())
            return False

        if has_surrogate(expected):
            reject()  # pinned: test_json_decode_of_a_lone_surrogate_is_a_clean_error
    result = run(f"return json.decode({lua_string(text)})")
    if result.ok:
        assert valid and same(result.result, lua_normalised(expected))
    else:
        assert result.error.code in ("invalid_argument", "runtime_error", "limit_exceeded"), result.error.to_dict()
        assert one_line(result.error.message)
        caught = run(f"local ok, err = pcall(json.decode, {lua_string(text)}) return ok, type(err)")
        assert caught.ok and (caught.result[0] is True or caught.result == [False, "table"])


@pytest.mark.parametrize("source,code,fragment", [
    ("return json.decode('NaN')", "invalid_argument", "NaN"),
    ("return json.decode('[Infinity]')", "invalid_argument", "Infinity"),
    ("return json.decode('1e400')", "runtime_error", "inf"),
    ("return json.decode('" + "9" * 5000 + "')", "invalid_argument", "json.decode"),
    ("return json.encode(0/0)", "invalid_argument", "nan"),
    ("return json.encode({f = print})", "invalid_argument", "function"),
    ("local t = {} t.t = t return json.encode(t)", "invalid_argument", "cycle"),
    ("return json.encode({[true] = 1})", "invalid_argument", "key of type boolean"),
    ("return json.encode({}, {indent = 99})", "invalid_argument", "indent"),
    ("return json.decode({})", "invalid_argument", "expects a string"),
])
def test_values_the_rules_exclude_are_clean_errors(source, code, fragment) -> None:
    result = run(source)
    assert not result.ok
    assert result.error.code == code and fragment in result.error.message, result.error.to_dict()


@pytest.mark.parametrize("text", ['{"\\udfff": 1}', '["a\\ud83d"]', '{"a": ["\\ud800"]}'])
def test_json_decode_of_a_lone_surrogate_is_a_clean_error(text) -> None:
    result = run(f"return json.decode({lua_string(text)})")
    assert not result.ok
    assert result.error.code == "invalid_argument", result.error.to_dict()


def test_json_decode_of_a_top_level_lone_surrogate_is_a_clean_error() -> None:
    result = run(f"return json.decode({lua_string(chr(34) + chr(92) + 'ud800' + chr(34))})")
    assert not result.ok and result.error.code == "invalid_argument", result.error.to_dict()
