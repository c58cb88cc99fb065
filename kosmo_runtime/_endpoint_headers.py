"""Headers per endpoint family, said as data: the manifest's ``endpoint_headers``.

``endpoint_headers: {/v2/bookings: {cal-api-version: "{bookings_api_version}"}}`` sends the
header on every request whose path is ``/v2/bookings`` or below it (``/v2/bookings/abc``, not
``/v2/bookingsX``), whoever makes the request: a declarative function or a hook's ``ctx.http``
and ``ctx.collect``. ``{name}`` takes the account's setting; a setting that is not set leaves
the header out. Every prefix a path is at or below adds its headers, a longer prefix winning over
a shorter one; a request's own headers win over these, these over the manifest's ``headers``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["PLACEHOLDER", "PathHeaders", "headers_for", "path_headers", "template_names"]

#: A ``{name}`` in a template (endpoint headers and request templates alike).
PLACEHOLDER = re.compile(r"\{(\w+)\}")

#: (path prefix, lower-case headers) pairs, the shortest prefix first.
PathHeaders = tuple[tuple[str, dict[str, str]], ...]


def template_names(template: str) -> list[str]:
    """The ``{name}`` placeholders of a template."""
    return PLACEHOLDER.findall(template)


def path_headers(rules: Mapping[str, Mapping[str, str]], settings: Mapping[str, Any]) -> PathHeaders:
    """The manifest's ``endpoint_headers`` filled from one account's ``settings``."""
    filled = []
    for prefix, headers in rules.items():
        values = {}
        for name, template in headers.items():
            names = template_names(template)
            if all(settings.get(n) is not None for n in names):
                values[name.lower()] = PLACEHOLDER.sub(lambda m: str(settings[m.group(1)]), template)
        if values:
            filled.append((prefix.rstrip("/"), values))
    return tuple(sorted(filled, key=lambda rule: len(rule[0])))


def headers_for(rules: PathHeaders, path: str) -> dict[str, str] | None:
    """The headers of every prefix ``path`` (or an absolute URL's path) is at or below (the longer
    winning), ``None`` when none is."""
    if "://" in path:
        path = urlsplit(path).path
    path = "/" + path.split("?", 1)[0].lstrip("/")
    found: dict[str, str] | None = None
    for prefix, headers in rules:
        if path == prefix or path.startswith(prefix + "/"):
            found = {**found, **headers} if found else headers
    return found
