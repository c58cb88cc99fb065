"""Argument validation against a function's declared parameters (the manifest)."""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from ._errors import InvalidArgument
from ._manifest import FunctionSpec, ParamSpec

__all__ = ["type_name", "validate_arguments"]

_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _is_date_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        return False
    return True


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_uri(text: str) -> bool:
    parts = urlsplit(text)
    return bool(parts.scheme and (parts.netloc or parts.path))


# format -> (check, what it is, an example)
_FORMATS: dict[str, tuple[Callable[[str], bool], str, str]] = {
    "date-time": (_is_date_time, "an ISO 8601 date-time", "2025-01-15T10:00:00Z"),
    "date": (_is_date, "an ISO 8601 date", "2025-01-15"),
    "email": (lambda text: re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text) is not None, "an email address",
              "jane@example.com"),
    "uri": (_is_uri, "a URI", "https://example.com/"),
}


def type_name(value: Any) -> str:
    """The Lua-facing name of a converted value's type."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "table" if value else "empty table"


def validate_arguments(label: str, spec: FunctionSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """Checked arguments with defaults filled in; raises InvalidArgument naming the parameter and the fix
    (and the parameter's own ``hint``, when the manifest gives one).

    ``label`` names the function in messages (``whereby.list_rooms``).
    """
    try:
        return _validated(label, spec, arguments)
    except InvalidArgument as exc:
        param = spec.params.get(exc.param or "")
        if param is not None and param.hint:
            exc.hint = f"{exc.hint}; {param.hint}" if exc.hint else param.hint
        raise


def _validated(label: str, spec: FunctionSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    for name in arguments:
        if name not in spec.params:
            close = difflib.get_close_matches(str(name), list(spec.params), n=1)
            known = ", ".join(spec.params) or "none"
            raise InvalidArgument(
                f"{label}: unknown parameter {str(name)!r}" + (f" (did you mean '{close[0]}'?)" if close else ""),
                param=str(name), hint=f"parameters of {label}: {known}",
            )
    checked: dict[str, Any] = {}
    for name, param in spec.params.items():
        value = arguments.get(name)
        if value is None:
            if param.required:
                raise InvalidArgument(
                    f"{label}: missing required parameter '{name}' ({param.type}: {param.description})",
                    param=name, expected=param.type, hint=f"call {label}{{{name} = {_example(param)}, ...}}",
                )
            if param.default is not None:
                checked[name] = copy.deepcopy(param.default)
            continue
        checked[name] = _check(label, name, param, value)
    for name, param in spec.params.items():  # formats after every type is right
        if param.format is not None and name in checked:
            _check_format(label, name, param.format, checked[name])
    return checked


def _check_format(label: str, name: str, format: str, value: str) -> None:
    valid, what, sample = _FORMATS[format]
    if not valid(value):
        raise InvalidArgument(f"{label}: parameter '{name}' must be {what}, got {_show(value)}",
                              param=name, expected=what, got=_show(value), hint=f'write {name} = "{sample}"')


def _check(label: str, name: str, param: ParamSpec, value: Any) -> Any:
    value = _coerce(param.type, value)
    if not _CHECKS[param.type](value):
        raise InvalidArgument(
            f"{label}: parameter '{name}' must be {_article(param.type)} {param.type}, got {type_name(value)} {_show(value)}",
            param=name, expected=param.type, got=type_name(value),
            hint=f"write {name} = {_example(param)}",
        )
    if param.enum is not None and value not in param.enum:
        close = difflib.get_close_matches(str(value), [str(e) for e in param.enum], n=1)
        raise InvalidArgument(
            f"{label}: parameter '{name}' must be one of {', '.join(map(str, param.enum))}; got {_show(value)}"
            + (f" (did you mean '{close[0]}'?)" if close else ""),
            param=name, expected=f"one of {param.enum}", got=_show(value), hint=f"write {name} = {_example(param)}",
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if param.minimum is not None and value < param.minimum:
            raise _bound(label, name, value, f"at least {param.minimum:g}")
        if param.maximum is not None and value > param.maximum:
            raise _bound(label, name, value, f"at most {param.maximum:g}")
    if isinstance(value, (str, list)):
        if param.min_length is not None and len(value) < param.min_length:
            raise _bound(label, name, _show(value), f"at least {param.min_length} long")
        if param.max_length is not None and len(value) > param.max_length:
            raise _bound(label, name, f"of length {len(value)}", f"at most {param.max_length} long")
    if param.properties is not None and param.type == "object":
        value = _check_fields(label, name, name, param.properties, value)
    if param.items is not None:
        value = list(value)  # coerced items go into a copy, never into the caller's list
        for index, item in enumerate(value, start=1):
            item = value[index - 1] = _coerce(param.items, item)
            if not _CHECKS[param.items](item):
                raise InvalidArgument(
                    f"{label}: {name}[{index}] must be {_article(param.items)} {param.items}, got {type_name(item)}",
                    param=name, expected=f"array of {param.items}", got=type_name(item),
                )
            if param.item_enum is not None and item not in param.item_enum:
                allowed = ", ".join(map(str, param.item_enum))
                raise InvalidArgument(
                    f"{label}: {name}[{index}] must be one of {allowed}, got {_show(item)}",
                    param=name, expected=f"array of {allowed}", got=_show(item),
                    hint=f"write {name} = {{{_show(param.item_enum[0])}}}",
                )
            if param.properties is not None:
                value[index - 1] = _check_fields(label, name, f"{name}[{index}]", param.properties, item)
    return value


def _check_fields(label: str, name: str, where: str, fields: dict[str, ParamSpec], value: dict[str, Any]) -> dict[str, Any]:
    """An object's fields against ``fields`` (no unknown ones, the required ones present, each checked)."""
    shape = "{" + ", ".join(f"{key} = {_example(field)}" for key, field in fields.items()) + "}"
    expected = "{" + ", ".join(f"{key} = {field.type}" for key, field in fields.items()) + "}"
    extra = sorted(_show(key) for key, item in value.items() if key not in fields and item is not None)[:5]  # nil: absent
    wrong = [key for key, field in fields.items()
             if (value.get(key) is None and field.required)
             or (value.get(key) is not None and not _CHECKS[field.type](_coerce(field.type, value[key])))]
    if extra or wrong:
        types = {fields[key].type for key in wrong}
        kind = types.pop() if len(types) == 1 else None
        problem = (f"has unknown field(s) {', '.join(extra)}" if extra else
                   f"needs {' and '.join(wrong)}" + (f" as {_article(kind)} {kind}" if kind else ""))
        raise InvalidArgument(f"{label}: {where} {problem}", param=name, expected=expected,
                              hint=f"write {name} = {{{shape}}}" if where != name else f"write {name} = {shape}")
    checked = {}
    for key, field in fields.items():
        if value.get(key) is not None:
            checked[key] = _check(label, f"{where}.{key}", field, value[key])
            if field.format is not None:
                _check_format(label, f"{where}.{key}", field.format, checked[key])
        elif field.default is not None:
            checked[key] = copy.deepcopy(field.default)
    return checked


def _coerce(expected: str, value: Any) -> Any:
    """Lua cannot tell an empty list from an empty table, nor 3 from 3.0 in every case."""
    if expected == "array" and value == {}:
        return []
    if expected == "object" and value == []:
        return {}
    if expected == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _bound(label: str, name: str, value: Any, requirement: str) -> InvalidArgument:
    shown = value if isinstance(value, str) else _show(value)
    return InvalidArgument(f"{label}: parameter '{name}' must be {requirement}, got {shown}",
                           param=name, expected=requirement, got=shown)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"a {value.bit_length()}-bit integer"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _example(param: ParamSpec) -> str:
    if param.example is not None:
        sample = param.example
    elif param.enum:
        sample = param.enum[0]
    else:
        sample = {"string": "...", "integer": 1, "number": 1.5, "boolean": True, "array": "{...}", "object": "{...}"}[param.type]
    if isinstance(sample, str) and sample not in ("...", "{...}"):
        return f'"{sample}"'
    if sample == "...":
        return '"..."'
    if isinstance(sample, bool):
        return "true" if sample else "false"
    return str(sample)
