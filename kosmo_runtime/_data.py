"""What an integration's code may return: JSON data, checked once where the call ends (``Invoker.call``).

A hook or handler that returns anything else (a ``datetime``, a ``set``, bytes, an object) is a bug
in the integration: the call fails with an ``IntegrationBug`` naming the value's type and where it
sits in the result, instead of failing later, in whatever converts the result, as the runtime's bug.
"""

from __future__ import annotations

from typing import Any

from ._errors import IntegrationBug

__all__ = ["as_data"]

_LEAVES = frozenset({str, int, float, bool, type(None)})
_KEYS = _LEAVES  # what the converter takes as a dict key (it makes text of the others)
_DEEPEST = 200   # nesting checked; the run's depth limit is the converter's


def as_data(value: Any, label: str) -> Any:
    """``value`` if it is JSON data (a tuple given back as a list); else an IntegrationBug led by ``label``."""
    kind = type(value)
    if kind is dict:  # the common result: text keys and plain values, checked inline
        for key, item in value.items():
            if type(key) is not str or type(item) not in _LEAVES:
                _check(value, "result", 0, label)
                break
        return value
    if kind in _LEAVES:
        return value
    if kind is tuple:
        value = list(value)
    _check(value, "result", 0, label)
    return value


def _check(value: Any, where: str, depth: int, label: str) -> None:
    kind = type(value)
    if kind in _LEAVES:
        return
    if depth >= _DEEPEST:
        raise _not_data(label, f"nesting deeper than {_DEEPEST} levels at {where} (a cycle?)")
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) not in _KEYS:
                raise _not_data(label, f"a Python {type(key).__name__} as a key in {where}")
            _check(item, f"{where}.{key}", depth + 1, label)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value, 1):
            _check(item, f"{where}[{index}]", depth + 1, label)
    elif not isinstance(value, (str, int, float)):  # (subclasses of the leaves are data too)
        raise _not_data(label, f"a Python {kind.__name__} at {where}")


def _not_data(label: str, what: str) -> IntegrationBug:
    return IntegrationBug(f"{label}: the integration returned {what}, which is not data",
                          hint="this is a bug in the integration: its code must return dicts, lists, text, numbers, "
                               "booleans or None; report it")
