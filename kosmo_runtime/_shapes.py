"""Result shapes: the manifests' ``returns`` text read as a structure.

A function's ``returns`` is written for people, in a small notation the docs share::

    {data = {room...}, meta = {nextCursor}, results, cursor}
    {data: [project], count}; project = {id, name, ...}
    {webinarKey, recurrenceKey? (series), type}
    {booking = {...}}: Cal.com's booking fields plus startTime/endTime
    webinar table (webinarKey, subject, status, ...)

``{a, b?}`` is a table with keys ``a`` and (optionally) ``b``; ``key = value`` or
``key: value`` gives a key's shape; ``{item...}`` and ``[item]`` are lists; ``...`` among
keys means more keys than listed; ``{...}`` is any table; ``true`` and other literals are
themselves; ``name = {...}`` after a ``;`` defines a shape named ``name``; ``(text)`` after
a key and prose after ``;`` or ``:`` are notes. Text this notation cannot read is kept as a
note on a plain table: :func:`parse_returns` never fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Key", "Returns", "Shape", "parse_returns"]

Kind = Literal["any", "table", "object", "list", "literal", "ref"]
_NAME = re.compile(r"[A-Za-z_][\w]*(?: [A-Za-z_]\w*)*")
_LITERAL = re.compile(r'true|false|-?\d+(?:\.\d+)?|"[^"]*"')
_DEFINITION = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(\{.*\})\s*$", re.S)


@dataclass
class Key:
    """One key of a table shape."""

    shape: Shape
    optional: bool = False
    note: str = ""


@dataclass
class Shape:
    """A value's shape: ``any``, ``table`` (no more is known), ``object`` (``keys``, ``open`` when
    there may be more), ``list`` (of ``item``), ``literal`` (``text``) or ``ref`` (a named shape)."""

    kind: Kind
    keys: dict[str, Key] = field(default_factory=dict)
    open: bool = False
    item: Shape | None = None
    text: str = ""


@dataclass
class Returns:
    """A parsed ``returns``: the shape, the named shapes it defines, the prose notes, and whether
    the notation was read (``typed``) or only kept as a note."""

    shape: Shape
    definitions: dict[str, Shape]
    note: str
    typed: bool


class _Unreadable(Exception):
    pass


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def _space(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def _peek(self, token: str) -> bool:
        self._space()
        return self.text.startswith(token, self.at)

    def _take(self, token: str) -> bool:
        if self._peek(token):
            self.at += len(token)
            return True
        return False

    def _expect(self, token: str) -> None:
        if not self._take(token):
            raise _Unreadable(f"expected {token!r} at {self.at}")

    def rest(self) -> str:
        return self.text[self.at:]

    def value(self) -> Shape:
        self._space()
        if self._take("{"):
            return self._table()
        if self._take("["):
            item = self.value()
            self._expect("]")
            return Shape("list", item=item)
        literal = _LITERAL.match(self.text, self.at)
        if literal:
            self.at = literal.end()
            return Shape("literal", text=literal.group(0))
        name = _NAME.match(self.text, self.at)
        if name:
            self.at = name.end()
            return Shape("ref", text=name.group(0))
        raise _Unreadable(f"no value at {self.at}")

    def _table(self) -> Shape:
        shape = Shape("object")
        while not self._take("}"):
            if self._take("..."):
                shape.open = True
            else:
                name = _NAME.match(self.text, self.at)
                if not name:
                    raise _Unreadable(f"no key at {self.at}")
                self.at = name.end()
                if self._take("..."):  # {item...}: a list of items
                    if shape.keys or shape.open or not self._peek("}"):
                        raise _Unreadable("a '{item...}' list holds nothing else")
                    self._expect("}")
                    return Shape("list", item=Shape("ref", text=name.group(0)))
                if " " in name.group(0):
                    raise _Unreadable(f"key {name.group(0)!r} has a space")
                key = Key(Shape("any"), optional=self._take("?"))
                key.note = self._note()
                if self._take("=") or self._take(":"):
                    key.shape = self.value()
                    key.note = key.note or self._note()
                shape.keys[name.group(0)] = key
            if not self._take(","):
                self._expect("}")
                break
        if not shape.keys:
            return Shape("table")
        return shape

    def _note(self) -> str:
        if not self._peek("("):
            return ""
        depth, start = 0, self.at
        for index in range(self.at, len(self.text)):
            depth += {"(": 1, ")": -1}.get(self.text[index], 0)
            if depth == 0:
                self.at = index + 1
                return self.text[start + 1:index].strip()
        raise _Unreadable("unclosed '('")


def parse_returns(text: str) -> Returns:
    """Read a ``returns`` text; what the notation cannot say stays in ``note``."""
    stripped = " ".join(text.split())
    if not stripped.startswith(("{", "[")):
        return _prose(stripped)
    parser = _Parser(stripped)
    try:
        shape = parser.value()
    except _Unreadable:
        return Returns(Shape("table"), {}, stripped, typed=False)
    definitions: dict[str, Shape] = {}
    notes = []
    for part in _top_level_split(parser.rest().strip().lstrip(";:").strip()):
        match = _DEFINITION.match(part)
        if match:
            try:
                definitions[match.group(1)] = _Parser(match.group(2)).value()
                continue
            except _Unreadable:
                pass
        notes.append(part.strip())
    return Returns(shape, definitions, "; ".join(n for n in notes if n), typed=True)


def _prose(text: str) -> Returns:
    """Prose such as ``webinar table (a, b, ...)``: the parenthesised names are its keys."""
    match = re.search(r"\(([^()]*)\)", text)
    if match:
        try:
            shape = _Parser("{" + match.group(1) + "}").value()
        except _Unreadable:
            shape = Shape("table")
        if shape.kind == "object":
            return Returns(shape, {}, text, typed=True)
    return Returns(Shape("table"), {}, text, typed=False)


def _top_level_split(text: str) -> list[str]:
    """``text`` split at the semicolons outside brackets."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"{": 1, "[": 1, "(": 1, "}": -1, "]": -1, ")": -1}.get(char, 0)
        if char == ";" and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]
