"""YAML with line numbers and duplicate-key detection, for files people edit by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["DuplicateKey", "LocatedYAML", "parse_located"]


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


def parse_located(text: str) -> LocatedYAML:
    """Parse one YAML document; raises yaml.YAMLError or DuplicateKey."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    located = LocatedYAML(None)
    if node is None:
        return located
    located.lines[()] = node.start_mark.line + 1
    located.data = _build(node, (), located.lines)
    return located


def _build(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            line = key_node.start_mark.line + 1
            if key in result:
                raise DuplicateKey(str(key), line, lines[(*path, key)])
            lines[(*path, key)] = line
            result[key] = _build(value_node, (*path, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            items.append(_build(item, (*path, index), lines))
        return items
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return yaml.safe_load(yaml.serialize(node))
    return yaml.SafeLoader("").construct_object(node, deep=True)
