"""Manifest slots checked by the framework: parameter formats, enums on array items, response ``add``."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kosmo_runtime._calls import shape
from kosmo_runtime._errors import InvalidArgument
from kosmo_runtime._manifest import FunctionSpec
from kosmo_runtime._validation import validate_arguments


def _spec(**params: dict[str, Any]) -> FunctionSpec:
    return FunctionSpec.model_validate({"description": "d", "operation": "read", "handler": "h",
                                        "params": {name: {"description": "p", **p} for name, p in params.items()}})


@pytest.mark.parametrize(("fmt", "good", "bad", "expected"), [
    ("date-time", ["2025-01-15T10:00:00Z", "2025-01-15T10:00:00+02:00", "2025-01-15T10:00"], ["tomorrow", "2025-13-01T00:00:00Z"],
     "an ISO 8601 date-time"),
    ("date", ["2025-01-15"], ["15/01/2025", "2025-02-30"], "an ISO 8601 date"),
    ("email", ["jane@example.com"], ["jane", "jane@example", "a b@example.com"], "an email address"),
    ("uri", ["https://example.com/x", "mailto:jane@example.com"], ["example.com", ""], "a URI"),
])
def test_formats_are_checked(fmt: str, good: list[str], bad: list[str], expected: str) -> None:
    spec = _spec(value={"type": "string", "format": fmt})
    for text in good:
        assert validate_arguments("t.f", spec, {"value": text}) == {"value": text}
    for text in bad:
        with pytest.raises(InvalidArgument) as caught:
            validate_arguments("t.f", spec, {"value": text})
        assert caught.value.param == "value" and caught.value.expected == expected
        assert f"t.f: parameter 'value' must be {expected}" in caught.value.message


def test_type_errors_come_before_format_errors() -> None:
    spec = _spec(when={"type": "string", "format": "date-time"}, body={"type": "object"})
    with pytest.raises(InvalidArgument) as caught:
        validate_arguments("t.f", spec, {"when": "x", "body": "y"})
    assert caught.value.param == "body"


def test_array_items_enum() -> None:
    spec = _spec(fields={"type": "array", "items": "string", "item_enum": ["a", "b"]})
    assert validate_arguments("t.f", spec, {"fields": ["b", "a"]}) == {"fields": ["b", "a"]}
    with pytest.raises(InvalidArgument) as caught:
        validate_arguments("t.f", spec, {"fields": ["a", "c"]})
    assert caught.value.message == "t.f: fields[2] must be one of a, b, got 'c'" and caught.value.param == "fields"


def test_manifest_refuses_misplaced_slots() -> None:
    with pytest.raises(ValueError, match="'format' only applies to type: string"):
        _spec(n={"type": "integer", "format": "date"})
    with pytest.raises(ValueError, match="'item_enum' needs 'items'"):
        _spec(n={"type": "array", "item_enum": ["a"]})


def test_response_add_copies_fields_on_objects_and_each_item() -> None:
    assert shape({"data": {"lengthInMinutes": 30}}, "data", "event_type", {"length": "lengthInMinutes"}) == {
        "event_type": {"lengthInMinutes": 30, "length": 30}}
    assert shape({"data": [{"a": 1}, {"b": 2}]}, "data", None, {"c": "a"}) == [{"a": 1, "c": 1}, {"b": 2, "c": None}]
    with pytest.raises(TypeError):
        shape({"data": "text"}, "data", None, {"c": "a"})


def test_a_transform_slot_needs_the_hooks_module_and_a_defined_function() -> None:
    from pathlib import Path

    from kosmo_runtime._errors import ManifestError
    from kosmo_runtime._manifest import Manifest, load_manifest

    folder = Path(__file__).resolve().parents[2] / "integrations" / "whereby"
    loaded = load_manifest(folder, None)
    assert loaded.manifest.functions["list_rooms"].response.transform == "room_page"
    assert loaded.manifest.functions["list_rooms"].handler is None
    with pytest.raises(ManifestError, match=re.escape("function list_rooms names transform 'nope', which hooks.py does not define")):
        loaded.slot("list_rooms", "transform", "nope")
    data = loaded.manifest.model_dump(exclude_defaults=False)
    data["hooks"] = None
    for spec in data["functions"].values():
        spec["handler"] = None
        spec["request"] = spec["request"] or {"method": "GET", "path": "/x"}
    with pytest.raises(ValueError, match="names a handler or a transform, so 'hooks' must name the hooks module"):
        Manifest.model_validate(data)
