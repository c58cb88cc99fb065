"""Block-style YAML for plain data (a generated manifest), written directly: no node graph.

PyYAML's dumper builds a node per value in Python before its C emitter runs: 0.76-1.21 s for the
3,204 functions of bench_openapi's manifest, against 0.055-0.065 s here (same process, alternating,
3 rounds, load ~3 on 2 cores). Strings are plain when they cannot be read as anything else, otherwise
double-quoted with JSON's escapes (valid in YAML) and the characters YAML does not take raw escaped
too; every YAML reader here (libyaml, PyYAML's own, ``_yamlfile``) gives the data back, equal.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

__all__ = ["dump"]

# Plain only from a letter or "_" on, with no control character, line break or BOM, no ": " or " #"
# (which end a plain scalar) and no ":" or space at the end: such a scalar is a string unless it is
# one of YAML 1.1's booleans or nulls.
_PLAIN = re.compile("[A-Za-z_][^\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]*")
_RESERVED = frozenset(
    f(word) for word in ("yes", "no", "true", "false", "on", "off", "null") for f in (str, str.title, str.upper))
# Raw in a double-quoted scalar, these would be read as line breaks or refused as unprintable.
_ESCAPE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def dump(data: dict[str, Any]) -> str:
    """``data`` (dicts with string keys, lists, strings, numbers, booleans, None) as a YAML document."""
    if not data:
        return "{}\n"
    out: list[str] = []
    _mapping(data, "", "", out)
    return "".join(out)


def _mapping(data: dict[str, Any], indent: str, first: str, out: list[str]) -> None:
    prefix = first
    for key, value in data.items():
        head = f"{prefix}{_scalar(key)}:"
        prefix = indent
        if type(value) is str:  # the common case first
            out.append(f"{head} {_string(value)}\n")
        elif value and isinstance(value, dict):
            out.append(head + "\n")
            _mapping(value, indent + "  ", indent + "  ", out)
        elif value and isinstance(value, list):
            out.append(head + "\n")
            _sequence(value, indent, indent, out)
        else:
            out.append(f"{head} {_scalar(value)}\n")


def _sequence(items: list[Any], indent: str, first: str, out: list[str]) -> None:
    prefix = first
    for item in items:
        head = prefix + "- "
        prefix = indent
        if item and isinstance(item, dict):
            _mapping(item, indent + "  ", head, out)
        elif item and isinstance(item, list):
            _sequence(item, indent + "  ", head, out)
        else:
            out.append(f"{head}{_scalar(item)}\n")


@functools.lru_cache(maxsize=16384)
def _string(text: str) -> str:
    """Plain when it can only be read as this string, else double-quoted (cached: names repeat)."""
    if (_PLAIN.fullmatch(text) and ": " not in text and " #" not in text and text[-1] not in ": "
            and text not in _RESERVED):
        return text
    return _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    raise TypeError(f"cannot write a {type(value).__name__} as YAML")


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text  # YAML 1.1 needs the dot
