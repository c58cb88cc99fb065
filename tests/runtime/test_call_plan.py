"""The Invoker's per-function validation plan gives exactly what ``validate_arguments`` gives.

``_Target.validate`` does the common case (plain string/integer/number/boolean parameters, values
of exactly their type) inline and hands everything else to ``validate_arguments``: for every
function of every built-in integration and a spread of valid and invalid arguments, the checked
arguments, or the error's message and fields, must be the same both ways.
"""

from __future__ import annotations

from typing import Any

import pytest

from kosmo_runtime._calls import _plain_plan, _Target
from kosmo_runtime._discovery import Catalog
from kosmo_runtime._errors import InvalidArgument
from kosmo_runtime._manifest import FunctionSpec, ParamSpec
from kosmo_runtime._validation import validate_arguments

SAMPLES: list[Any] = ["text", "", 3, 0, -7, 2.5, 3.0, True, False, None, [], {}, [1, 2], {"a": 1}, "2025-01-15T10:00:00Z"]


def _outcome(validate: Any, *args: Any) -> Any:
    try:
        return ("ok", validate(*args))
    except InvalidArgument as exc:
        return ("error", exc.message, exc.to_dict())


def _argument_sets(spec: FunctionSpec) -> list[dict[str, Any]]:
    names = list(spec.params)
    sets: list[dict[str, Any]] = [{}, {"unknown_parameter": 1}]
    for name in names:
        sets += [{name: sample} for sample in SAMPLES]
        sets.append({**{n: "x" for n in names}, name: None})
    sets.append({name: 1 for name in names})
    return sets


def _functions() -> list[tuple[str, FunctionSpec]]:
    catalog = Catalog()
    found = []
    for ident in catalog.names():
        loaded = catalog.find(ident)
        assert loaded is not None
        found += [(f"{ident}.{name}", spec) for name, spec in loaded.manifest.functions.items()]
    return found


FUNCTIONS = _functions()


@pytest.mark.parametrize(("label", "spec"), FUNCTIONS, ids=[label for label, _ in FUNCTIONS])
def test_the_plan_validates_as_validate_arguments_does(label: str, spec: FunctionSpec) -> None:
    target = _Target(None, spec, label, "default")  # type: ignore[arg-type]
    for arguments in _argument_sets(spec):
        assert _outcome(target.validate, dict(arguments)) == \
            _outcome(validate_arguments, label, spec, dict(arguments)), arguments


def test_some_functions_take_the_inline_path() -> None:
    assert any(_plain_plan(spec) is not None for _, spec in FUNCTIONS)


def test_any_constraint_sends_a_function_to_validate_arguments() -> None:
    def spec(**param: Any) -> FunctionSpec:
        return FunctionSpec(description="d", operation="read", handler="h",
                            params={"p": ParamSpec(type=param.pop("type", "string"), description="p", **param)})

    assert _plain_plan(spec()) is not None
    for constraint in ({"enum": ["a"]}, {"format": "date"}, {"min_length": 1}, {"max_length": 3},
                       {"type": "integer", "minimum": 0}, {"type": "number", "maximum": 1},
                       {"type": "array", "items": "string"}, {"type": "object"}, {"default": "x", "example": "y"}):
        plan = _plain_plan(spec(**constraint))
        assert (plan is not None) == ("default" in constraint), constraint
