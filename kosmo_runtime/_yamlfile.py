"""YAML with line numbers and duplicate-key detection, for files people edit by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["DuplicateKey", "LocatedYAML", "UnsupportedYAML", "parse_located"]


class DuplicateKey(ValueError):
    """Raised when a mapping repeats a key (plain YAML loaders silently keep the last)."""

    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r} (first defined on line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


@dataclass
class LocatedYAML:
    """Plain data plus the 1-based line of every mapping key and sequence item, by path."""

    data: Any
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def line(self, *path: Any) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


class UnsupportedYAML(ValueError):
    """Raised for YAML this file format does not take (recursive aliases, complex keys, too deep)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


MAX_DEPTH = 64


def parse_located(text: str) -> LocatedYAML:
    """Parse one YAML document; raises yaml.YAMLError, DuplicateKey or UnsupportedYAML."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise UnsupportedYAML("the document is nested too deeply", None) from None
    located = LocatedYAML(None)
    if node is None:
        return located
    located.lines[()] = node.start_mark.line + 1
    located.data = _Builder(located.lines).build(node, ())
    return located


class _Builder:
    """Builds plain data from nodes; an alias shares what its anchor built (no expansion bombs)."""

    def __init__(self, lines: dict[tuple[Any, ...], int]) -> None:
        self.lines = lines
        self.built: dict[int, Any] = {}
        self.open: set[int] = set()
        self.loader = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        line = node.start_mark.line + 1
        if len(path) > MAX_DEPTH:
            raise UnsupportedYAML(f"the document is nested more than {MAX_DEPTH} levels deep", line)
        if id(node) in self.open:
            raise UnsupportedYAML("an alias refers to the mapping or list that contains it", line)
        if id(node) in self.built:
            return self.built[id(node)]
        self.open.add(id(node))
        try:
            value = self._build(node, path)
        finally:
            self.open.discard(id(node))
        if not isinstance(node, yaml.ScalarNode):
            self.built[id(node)] = value
        return value

    def _build(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise UnsupportedYAML("a key must be plain text, not a mapping or a list", line)
                key = self.scalar(key_node)
                if key in result:
                    raise DuplicateKey(str(key), line, self.lines.get((*path, key), line))
                self.lines.setdefault((*path, key), line)
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines.setdefault((*path, index), item.start_mark.line + 1)
                items.append(self.build(item, (*path, index)))
            return items
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, LookupError, AttributeError, TypeError):
            # Neither the value nor the parser's message (which may quote it) is shown: it may be a secret.
            raise UnsupportedYAML(f"cannot read the value tagged {node.tag!r} (the value is not shown)",
                                  node.start_mark.line + 1) from None
