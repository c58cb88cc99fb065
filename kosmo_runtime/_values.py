"""Values crossing between Lua and Python, and how tables are shown by ``print``.

The rules (also in ``lua_docs/runtime.md``):

* a table whose keys are exactly 1..n (n > 0), or one marked with ``json.array``,
  is a list; any other table is a dict with string keys; an empty unmarked table
  is an empty dict;
* integers stay integers and floats stay floats; strings are UTF-8 text;
* ``json.null`` is ``None``; a Python ``None`` inside a list or dict becomes
  ``json.null`` in Lua (so it is not lost), and a Python list becomes a marked array;
* functions, coroutines and cycles cannot cross: they are errors, never hangs;
  nesting deeper than the run's ``depth`` limit is a limit error;
* every walk is counted in bytes of the value's smallest JSON (two per table entry, a
  string's length plus its quotes), so a value whose sub-tables are shared many times
  (a DAG) costs what its JSON would:
  a walk past its budget is refused with a limit error, and ``checkpoint`` (the
  run's wall-clock and memory check) runs every ``CHECK_EVERY`` units.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from lupa import lua54

from ._errors import InvalidArgument, LimitExceeded

__all__ = ["Converter", "LuaTable", "Opaque", "render"]

CHECK_EVERY = 4096  # units of conversion work between two checkpoints
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LuaTable = type(lua54.LuaRuntime().table())  #: lupa's type of a Lua table in Python


class Opaque(str):
    """A Lua value ``print`` can only name (``<function>``, ``<cycle>``), never data."""


class Converter:
    """Converts values between one Lua state and Python, following the rules above."""

    def __init__(self, lua: lua54.LuaRuntime, inspect: Callable[..., tuple[str, bool, bool, bool]],
                 mark_array: Callable[[Any], Any], null: Any, depth: int, *,
                 budgets: dict[str, int] | None = None, checkpoint: Callable[[], None] = lambda: None) -> None:
        self._table_from = lua.table_from
        self._inspect = inspect  # the bootstrap's own (its kit's inspect, mark_array and null)
        self._mark_array = mark_array
        self.null = null
        self.depth = depth
        #: limit name -> units a walk may spend before that limit's error ends it
        self.budgets = budgets or {}
        self._checkpoint = checkpoint
        self._left = 0
        self._since_check = 0
        self._limit = "memory"

    def close(self) -> None:
        """Drop every reference to the Lua state (the sandbox is closing)."""
        self._table_from = self._inspect = self._mark_array = self.null = _closed

    def _start(self, limit: str) -> None:
        self._limit = limit
        self._left = self.budgets.get(limit, 1 << 62)

    def _spend(self, units: int) -> bool:
        """Count ``units`` of work; False once the walk is over its budget."""
        self._left -= units
        self._since_check += units
        if self._since_check >= CHECK_EVERY:
            self._since_check = 0
            self._checkpoint()
        return self._left >= 0

    def _over_budget(self) -> LimitExceeded:
        from ._limits import limit_exceeded

        return limit_exceeded(self._limit, self.budgets.get(self._limit, 0))

    # -- Python -> Lua ---------------------------------------------------------

    def to_lua(self, value: Any, level: int = 0) -> Any:
        """A Lua value for JSON-compatible Python ``value``.

        Runs while the Lua state's memory cap is lifted (the host's conversions must never
        raise a Lua error through Python frames); the checkpoint enforces the cap instead.
        """
        if type(value) is dict and level < self.depth:  # the common result: text keys, plain values
            units = 1 + len(value)
            for key, item in value.items():
                kind = type(item)
                if type(key) is not str:
                    break
                if kind is str:
                    units += len(item)
                elif not (kind is bool or kind is float or (kind is int and -(2**63) <= item < 2**63)):
                    break
            else:  # lupa makes the same table from the dict itself (the units spent inline: no call)
                self._left -= units
                self._since_check += units
                if self._since_check >= CHECK_EVERY:
                    self._since_check = 0
                    self._checkpoint()
                return self._table_from(value)
        if value is None:
            return self.null
        if isinstance(value, str):
            self._spend(len(value))
            return value
        if isinstance(value, (bool, float)):
            return value
        if isinstance(value, int):
            return value if -(2**63) <= value < 2**63 else float(value)
        if level >= self.depth:
            raise self._too_deep()
        self._spend(1 + len(value))
        if isinstance(value, dict):
            fields: dict[str, Any] = {}
            for key, item in value.items():
                kind = type(item)
                if kind is str:  # the common leaves inline: no call per field
                    self._spend(len(item))
                elif not (kind is bool or kind is float or (kind is int and -(2**63) <= item < 2**63)):
                    item = self.to_lua(item, level + 1)
                fields[key if type(key) is str else str(key)] = item
            return self._table_from(fields)
        if isinstance(value, (list, tuple)):
            return self._mark_array(self._table_from([self.to_lua(v, level + 1) for v in value]))
        raise TypeError(f"cannot pass a Python {type(value).__name__} to Lua")

    # -- Lua -> Python -------------------------------------------------------

    def to_python(self, value: Any, *, what: str = "value", limit: str = "memory") -> Any:
        """JSON-compatible Python for a Lua value; raises InvalidArgument or LimitExceeded.

        The walk may spend the budget of limit ``limit`` (``result`` for a run's return value).
        """
        self._start(limit)
        try:
            return self._convert(value, (what,), 0)
        except LimitExceeded as exc:
            # Nesting ran past the depth limit: name the cycle if that is what caused it.
            if exc.limit == "depth" and self._has_cycle(value, (), set()):
                raise InvalidArgument(f"{what} contains a cycle (a table that contains itself)",
                                      hint="build a tree: copy the values instead of referencing the parent table") from None
            raise

    def arguments(self, args: Any, label: str) -> dict[str, Any]:
        """The named arguments of a call to ``label`` (a Lua table of name = value pairs)."""
        arguments = self.to_python(args, what=f"arguments of {label}")
        if isinstance(arguments, list):
            raise InvalidArgument(f"{label} takes named arguments, got a list", hint=f"write {label}{{name = value}}")
        named: dict[str, Any] = arguments
        return named

    def to_display(self, value: Any) -> Any:
        """Like :meth:`to_python`, but naming functions and cycles instead of failing;
        past the ``output`` budget the rest shows as ``{...}``."""
        self._start("output")
        return self._display(value, "value", ())

    def _scalar(self, value: Any, path: tuple[Any, ...], lenient: bool) -> Any:
        """A non-table value, or raise for one that cannot leave the sandbox."""
        if isinstance(value, float):
            if math.isfinite(value) or lenient:
                return value
            raise InvalidArgument(f"{_where(path)} is {value!r}, which JSON cannot represent",
                                  hint="return a finite number or a string")
        if isinstance(value, bytes):
            return self._text(value, _where(path), lenient)
        kind = _lua_kind(value)
        if lenient:
            return Opaque(f"<{kind}>")
        raise InvalidArgument(f"{_where(path)} is a Lua {kind}, which cannot leave the sandbox",
                              hint="return or pass data only: tables, strings, numbers, booleans, json.null")

    def _convert(self, value: Any, path: tuple[Any, ...], level: int) -> Any:
        """The fast, strict walk: no table identities (cycles end at the depth limit)."""
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, str):
            if not self._spend(len(value) + 2):
                raise self._over_budget()
            return value
        if not isinstance(value, LuaTable):
            return self._scalar(value, path, False)
        try:
            items = list(value.items())
        except UnicodeDecodeError:  # (lupa decodes the table's strings as it reads them)
            raise not_utf8(f"{_where(path)} holds a string that is not valid UTF-8 text") from None
        if not self._spend(2 * len(items) or 2):
            raise self._over_budget()
        if not items:  # only an empty table can be json.null or an empty marked array
            _, is_array, is_null, _ = self._inspect(value)
            return None if is_null else [] if is_array else {}
        if level >= self.depth:
            raise self._too_deep()
        level += 1
        if type(items[0][0]) is not str and _is_sequence(items):
            items.sort(key=_first)
            return [self._convert(v, (*path, k), level) for k, v in items]
        result: dict[str, Any] = {}
        for key, item in items:
            name = key if type(key) is str else self._key(key, _where(path), False)
            kind = type(item)
            if kind is str:  # the common leaves inline: no call, no path built
                if not self._spend(len(item) + 2):
                    raise self._over_budget()
                result[name] = item
            elif kind is int or kind is bool or item is None:
                result[name] = item
            else:
                result[name] = self._convert(item, (*path, name), level)
        return result

    def _display(self, value: Any, where: str, ancestors: tuple[str, ...]) -> Any:
        """The careful walk: tracks table identities to name cycles; lenient unless checking a cycle."""
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if not isinstance(value, LuaTable):
            return self._scalar(value, (where,), True)
        identity, is_array, is_null, _ = self._inspect(value)
        if is_null:
            return None
        if identity in ancestors:
            return Opaque("<cycle>")
        if len(ancestors) >= self.depth or self._left < 0:
            return Opaque("{...}")
        ancestors = (*ancestors, identity)
        items = list(value.items())
        if not self._spend(2 * len(items) or 2):
            return Opaque("{...}")
        if is_array or (items and _is_sequence(items)):
            items.sort(key=_first)
            return [self._display(v, where, ancestors) for _, v in items]
        result: dict[Any, Any] = {}
        for key, item in items:
            name = key if isinstance(key, int) and not isinstance(key, bool) else self._key(key, where, True)
            result[name] = self._display(item, where, ancestors)
        return result

    def _has_cycle(self, value: Any, ancestors: tuple[str, ...], acyclic: set[str]) -> bool:
        """Whether ``value`` reaches one of its ancestors (``acyclic``: tables already cleared)."""
        if not isinstance(value, LuaTable) or len(ancestors) > self.depth:
            return False
        identity = self._inspect(value)[0]
        if identity in ancestors:
            return True
        if identity in acyclic:
            return False
        if any(self._has_cycle(item, (*ancestors, identity), acyclic) for _, item in value.items()):
            return True
        acyclic.add(identity)
        return False

    def _key(self, key: Any, where: str, lenient: bool) -> str:
        if isinstance(key, str):
            return key
        if isinstance(key, bytes):
            return self._text(key, where, lenient)
        if isinstance(key, (int, float)) and not isinstance(key, bool):
            return str(key)
        kind = _lua_kind(key)
        if lenient:
            return f"<{kind} key>"
        raise InvalidArgument(f"{where} has a key of type {kind}; only string and number keys can leave the sandbox")

    @staticmethod
    def _text(raw: bytes, where: str, lenient: bool) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            if lenient:
                return raw.decode("utf-8", "replace")
            raise not_utf8(f"{where} is not valid UTF-8 text") from None

    def _too_deep(self) -> LimitExceeded:
        from ._limits import limit_exceeded

        return limit_exceeded("depth", self.depth)


def _closed(*args: Any) -> Any:
    raise InvalidArgument("this run has ended: its values cannot be converted any more")


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0] if isinstance(pair[0], int) else 0


def _where(path: tuple[Any, ...]) -> str:
    """``arguments.list[2].name`` from a path of keys."""
    text = str(path[0])
    for key in path[1:]:
        text += f"[{key}]" if isinstance(key, int) else f".{key}"
    return text


def _lua_kind(value: Any) -> str:
    """The Lua type name of a value lupa handed over."""
    if isinstance(value, bool):
        return "boolean"
    if "Coroutine" in type(value).__name__ or "Thread" in type(value).__name__:
        return "coroutine"
    return lua54.lua_type(value) or type(value).__name__


def _is_sequence(items: list[tuple[Any, Any]]) -> bool:
    """Whether the keys are exactly 1..n (a Lua table's keys are distinct, so n keys in range are all of them)."""
    n = len(items)
    return all(type(k) is int and 0 < k <= n for k, _ in items)


def render(value: Any, width: int = 100) -> str:
    """Show a converted table the way a Lua literal reads, on one line when it fits."""
    flat = _render(value, None, 0)
    return flat if len(flat) <= width else _render(value, "  ", 0)


def _render(value: Any, indent: str | None, level: int) -> str:
    if isinstance(value, Opaque):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return f"{value:.1f}"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        parts = [_render(v, indent, level + 1) for v in value]
    else:
        parts = []
        position = 1
        for key, item in sorted(value.items(), key=lambda kv: (not isinstance(kv[0], int), kv[0] if isinstance(kv[0], int) else str(kv[0]))):
            if key == position and isinstance(key, int):
                parts.append(_render(item, indent, level + 1))
                position += 1
            else:
                parts.append(f"{_render_key(key)} = {_render(item, indent, level + 1)}")
    if not parts:
        return "{}"
    if indent is None:
        return "{" + ", ".join(parts) + "}"
    inner = indent * (level + 1)
    return "{\n" + ",\n".join(inner + p for p in parts) + "\n" + indent * level + "}"


def _render_key(key: Any) -> str:
    if isinstance(key, (int, float)):
        return f"[{key}]"
    return key if _IDENTIFIER.match(key) else "[" + json.dumps(key, ensure_ascii=False) + "]"


def not_utf8(message: str) -> InvalidArgument:
    """The error for a string that cannot leave the sandbox because it is not UTF-8 text."""
    return InvalidArgument(message, hint="only UTF-8 strings can leave the sandbox: encode bytes first (as hex, for example)")
