"""Response expressions: how a manifest computes a result's fields from the service's answer.

An expression is `JMESPath <https://jmespath.org>`_ (``data``, ``results[0].roomUrl``,
``roomName || url_path(roomUrl)``, ``{nextCursor: cursor}``, literals in backticks) evaluated
against the value being shaped, plus functions that know the call and the manifest:

* ``url_path(s)``, ``url_host(s)``: the path or host of a URL (``null`` for ``null``);
* ``ltrim(s, chars)``: ``s`` without the leading ``chars``;
* ``compact(object)``: the object without its ``null`` fields (for keys that are only sometimes there);
* ``omit(object, name, ...)``: the object without the fields named (a secret the result must not carry);
* ``shape(name, value)``: the manifest's named shape ``name`` applied to an object, or to each
  item of a list;
* ``arg(name)``, ``setting(name)``, ``account()``, ``account_label()``: an argument of the call, a
  setting of the account, the account's name, its label (``null`` when it has none);
* ``now()``: the call's current time (the Runtime's clock, read once per call) as ISO 8601 UTC,
  ``2025-01-15T11:00:00Z``;
* ``seconds_between(start, end)``: the seconds from one ISO 8601 time to another, rounded to a whole
  number (``null`` when either is ``null``), so ``seconds_between(now(), endTime) > `0``` asks whether ``endTime`` is ahead.

A plain name or dotted path (``lengthInMinutes``, ``data.items``) is read without JMESPath.
A named shape (the manifest's ``shapes``) adds fields to an object, in order, each one seeing
the fields added before it: ``room: {id: meetingId, roomPath: "roomName || url_path(roomUrl)",
roomName: "ltrim(roomPath, '/')"}``; or it is one expression whose value replaces the object, for
fields that must also go: ``project: "merge(omit(@, 'sign_key'), {app_id: vendor_key})"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["Scope", "add_fields", "apply_shape", "check_expression", "evaluate", "shape_names"]

_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_SHAPE_CALL = re.compile(r"\bshape\(\s*'([^']*)'")


@dataclass
class Scope:
    """What an expression's functions can see: the manifest's named shapes and the call. It keeps
    one JMESPath interpreter for all its evaluations (one per search would cost several times more)."""

    shapes: Mapping[str, Mapping[str, str] | str] = field(default_factory=dict)
    args: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    account: str = ""
    label: str | None = None
    now: Callable[[], datetime] | None = None
    _interpreter: Any = field(default=None, init=False, repr=False, compare=False)
    _now: str | None = field(default=None, init=False, repr=False, compare=False)

    def now_text(self) -> str:
        """The scope's current time as ISO 8601 UTC, read once: a call sees one instant."""
        if self._now is None:
            from ._clock import format_time, utc_now

            self._now = format_time((self.now or utc_now)())
        return self._now

    def interpreter(self) -> Any:
        """The JMESPath tree interpreter with this scope's functions, made on first use."""
        if self._interpreter is None:
            from jmespath import Options
            from jmespath.visitor import TreeInterpreter

            functions = _function_class()()
            functions.scope = self
            self._interpreter = TreeInterpreter(Options(custom_functions=functions))
        return self._interpreter


def evaluate(expression: str, data: Any, scope: Scope) -> Any:
    """The value of ``expression`` over ``data``; a TypeError when a function gets a value of the wrong
    type (``length(projects)`` over an answer without ``projects``), as Python's own code would raise,
    so that an answer without the documented shape is a ``bad_response``."""
    if _PATH.fullmatch(expression):
        for part in expression.split("."):
            data = data.get(part) if isinstance(data, Mapping) else None
        return data
    try:
        return scope.interpreter().visit(_compiled(expression).parsed, data)
    except ValueError as exc:  # JMESPath's errors are ValueErrors
        from jmespath.exceptions import JMESPathTypeError

        if isinstance(exc, JMESPathTypeError):
            raise TypeError(f"{expression}: {exc}") from None
        raise


def apply_shape(name: str, value: Any, scope: Scope) -> Any:
    """The named shape ``name`` applied to ``value`` (an object, or each object of a list): its
    fields added, or (a shape that is one expression) the expression's value over each object."""
    shape = scope.shapes[name]
    if not isinstance(shape, str):
        return add_fields(value, shape, scope, f" (shape {name})")
    if isinstance(value, list):
        return [evaluate(shape, item, scope) for item in value]
    return evaluate(shape, value, scope)


def add_fields(value: Any, fields: Mapping[str, str], scope: Scope, where: str = "") -> Any:
    """``value`` (an object, or each object of a list) with ``fields`` added, each seeing the ones before it."""
    if isinstance(value, list):
        return [_added(item, fields, scope, where) for item in value]
    return _added(value, fields, scope, where)


def check_expression(expression: str) -> str | None:
    """Why ``expression`` cannot be read, or ``None`` when it can."""
    if _PATH.fullmatch(expression):
        return None
    from jmespath.exceptions import ParseError

    try:
        _compiled(expression)
    except ParseError as exc:
        return str(exc).replace("\n", " ")
    return None


def shape_names(expression: str) -> set[str]:
    """The named shapes an expression's ``shape('name', ...)`` calls use."""
    return set(_SHAPE_CALL.findall(expression))


def _added(item: Any, fields: Mapping[str, str], scope: Scope, where: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise TypeError(f"expected an object to add {', '.join(fields)} to{where}, got {type(item).__name__}")
    result = dict(item)
    for key, expression in fields.items():
        result[key] = evaluate(expression, result, scope)
    return result


@lru_cache(maxsize=512)
def _compiled(expression: str) -> Any:
    import jmespath

    return jmespath.compile(expression)


@lru_cache(maxsize=1)
def _function_class() -> type:
    """JMESPath's functions plus the call's (the class made once; an instance per scope)."""
    from jmespath import functions

    class _CallFunctions(functions.Functions):
        scope: Scope

        @functions.signature({"types": ["string", "null"]})
        def _func_url_path(self, text: str | None) -> str | None:
            return urlsplit(text).path if text else None

        @functions.signature({"types": ["string", "null"]})
        def _func_url_host(self, text: str | None) -> str | None:
            return urlsplit(text).hostname if text else None

        @functions.signature({"types": ["string", "null"]}, {"types": ["string"]})
        def _func_ltrim(self, text: str | None, chars: str) -> str | None:
            return None if text is None else text.lstrip(chars)

        @functions.signature({"types": ["object"]})
        def _func_compact(self, value: dict[str, Any]) -> dict[str, Any]:
            return {key: item for key, item in value.items() if item is not None}

        @functions.signature({"types": ["object"]}, {"types": ["string"], "variadic": True})
        def _func_omit(self, value: dict[str, Any], *names: str) -> dict[str, Any]:
            return {key: item for key, item in value.items() if key not in names}

        @functions.signature({"types": ["string"]}, {"types": ["object", "array", "null"]})
        def _func_shape(self, name: str, value: Any) -> Any:
            return None if value is None else apply_shape(name, value, self.scope)

        @functions.signature({"types": ["string"]})
        def _func_arg(self, name: str) -> Any:
            return self.scope.args.get(name)

        @functions.signature({"types": ["string"]})
        def _func_setting(self, name: str) -> Any:
            return self.scope.settings.get(name)

        @functions.signature()
        def _func_account(self) -> str:
            return self.scope.account

        @functions.signature()
        def _func_account_label(self) -> str | None:
            return self.scope.label

        @functions.signature()
        def _func_now(self) -> str:
            return self.scope.now_text()

        @functions.signature({"types": ["string", "null"]}, {"types": ["string", "null"]})
        def _func_seconds_between(self, start: str | None, end: str | None) -> int | None:
            from ._clock import parse_time

            began, ended = parse_time(start), parse_time(end)
            return None if began is None or ended is None else round((ended - began).total_seconds())

    return _CallFunctions
