"""Filling manifest templates: ``{name}`` in a path, query value, header or body takes an argument,
a setting or a lookup (the placeholder pattern is ``_endpoint_headers.PLACEHOLDER``, shared)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ._endpoint_headers import PLACEHOLDER

__all__ = ["fill", "fill_path"]


def fill(template: str, values: Mapping[str, Any]) -> Any:
    """A template filled from ``values``: a lone ``{name}`` keeps the value's type (``None`` when there is none)."""
    whole = PLACEHOLDER.fullmatch(template)
    if whole:
        return values.get(whole.group(1))
    return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), template)


def fill_path(template: str, values: Mapping[str, Any]) -> str:
    """A URL path template filled from ``values``, each value percent-encoded as one path segment."""
    return PLACEHOLDER.sub(lambda m: quote(str(values[m.group(1)]), safe=""), template)
