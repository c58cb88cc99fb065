"""A manifest's ``string_keys``: integer fields named like keys reach Lua as strings.

Some services send the same key as a string in one answer and as an int64 number in another
(GoTo's ``webinarKey``); the manifest lists case-insensitive name globs (``["*key"]``) and
every integer field whose name matches one, at any depth of any result, becomes a string, so
any key can be passed back as an ``id``.
"""

from __future__ import annotations

import re
from fnmatch import translate
from functools import lru_cache
from typing import Any

__all__ = ["string_keys"]


def string_keys(value: Any, patterns: tuple[str, ...]) -> Any:
    """``value`` with every integer field matching ``patterns`` (globs) as a string; an object or
    list with no such field anywhere below it is returned as it is, not copied."""
    kind = type(value)
    if kind is dict:
        changed: dict[Any, Any] | None = None
        for key, item in value.items():
            if type(item) is int:
                if not _matches(key, patterns):
                    continue
                new: Any = str(item)
            elif type(item) is dict or type(item) is list:
                new = string_keys(item, patterns)
                if new is item:
                    continue
            else:
                continue
            if changed is None:
                changed = dict(value)
            changed[key] = new
        return value if changed is None else changed
    if kind is list:
        items = [string_keys(item, patterns) for item in value]
        return items if any(new is not old for new, old in zip(items, value, strict=True)) else value
    return value


@lru_cache(maxsize=4096)
def _matches(name: Any, patterns: tuple[str, ...]) -> bool:
    """Whether field ``name`` matches one of the globs, case-insensitively (names repeat: cached)."""
    return _pattern(patterns).match(str(name).lower()) is not None


@lru_cache(maxsize=64)
def _pattern(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(translate(pattern.lower()) for pattern in patterns))
