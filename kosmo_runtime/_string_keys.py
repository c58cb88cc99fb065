"""A manifest's ``string_keys``: integer fields named like keys reach Lua as strings.

Some services send the same key as a string in one answer and as an int64 number in another
(GoTo's ``webinarKey``); the manifest lists case-insensitive name globs (``["*key"]``) and
every integer field whose name matches one, at any depth of any result, becomes a string, so
any key can be passed back as an ``id``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

__all__ = ["string_keys"]


def string_keys(value: Any, patterns: tuple[str, ...]) -> Any:
    """``value`` with every integer field matching ``patterns`` (lower-case globs) as a string; an
    object or list with no such field anywhere below it is returned as it is, not copied."""
    if isinstance(value, list):
        items = [string_keys(item, patterns) for item in value]
        return items if any(new is not old for new, old in zip(items, value, strict=True)) else value
    if not isinstance(value, dict):
        return value
    shaped = {key: str(item) if type(item) is int and _matches(key, patterns) else string_keys(item, patterns)
              for key, item in value.items()}
    return shaped if any(shaped[key] is not item for key, item in value.items()) else value


def _matches(name: Any, patterns: tuple[str, ...]) -> bool:
    lowered = str(name).lower()
    return any(fnmatchcase(lowered, pattern) for pattern in patterns)
