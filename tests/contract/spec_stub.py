"""A loopback stand-in for a service, answering from its OpenAPI spec alone.

``SpecStub(document, prefix)`` finds the operation a request names (method and
path template, below the servers' path ``prefix``), records the request, and
answers with the first 2xx response: its example if the spec gives one, else a
minimal instance of its schema (``instance``). Unknown paths get 404. It is
what the generated-integration tests call instead of the real service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

_METHODS = ("get", "post", "put", "patch", "delete")
_STRINGS = {"date-time": "2025-01-10T10:00:00Z", "date": "2025-01-10", "email": "someone@example.com",
            "uri": "https://example.com/x", "uuid": "0b3c4f5e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"}


class Resolver:
    """``$ref`` resolution inside one document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def resolve(self, node: Any) -> Any:
        while isinstance(node, Mapping) and "$ref" in node:
            target: Any = self.document
            for part in node["$ref"][2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def instance(self, node: Any, depth: int = 0) -> Any:
        """A small value valid against the schema ``node`` (all properties of objects, one array item)."""
        schema = self.resolve(node)
        if not isinstance(schema, Mapping):
            return None
        if "example" in schema and depth > 0:
            return schema["example"]
        if schema.get("enum"):
            return next((v for v in schema["enum"] if v is not None), schema["enum"][0])
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                value = self.instance(part, depth + 1)
                if isinstance(value, dict):
                    merged.update(value)
            return merged
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return self.instance(schema[key][0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if kind == "object" or "properties" in schema:
            if depth > 6:
                return {}
            return {name: self.instance(prop, depth + 1) for name, prop in (schema.get("properties") or {}).items()
                    if not self.resolve(prop).get("writeOnly")}
        if kind == "array":
            return [self.instance(schema.get("items", {}), depth + 1)] if depth <= 6 else []
        if kind == "integer":
            return int(schema.get("minimum", 1))
        if kind == "number":
            return float(schema.get("minimum", 1.5))
        if kind == "boolean":
            return True
        text = _STRINGS.get(schema.get("format", ""), "text")
        if "minLength" in schema and len(text) < schema["minLength"]:
            text = text.ljust(int(schema["minLength"]), "x")
        return text


class SpecStub:
    """Answers every operation of ``document`` served below ``prefix`` (e.g. ``/v1``)."""

    def __init__(self, document: Mapping[str, Any], prefix: str = "") -> None:
        self.resolver = Resolver(document)
        self.requests: list[httpx.Request] = []
        self._routes: list[tuple[str, re.Pattern[str], Mapping[str, Any]]] = []
        for path, item in document["paths"].items():
            pieces = re.split(r"\{[^}]+\}", prefix + path)
            pattern = re.compile("^" + "[^/]+".join(re.escape(piece) for piece in pieces) + "$")
            for method in _METHODS:
                if isinstance(item.get(method), Mapping):
                    self._routes.append((method.upper(), pattern, item[method]))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        for method, pattern, operation in self._routes:
            if method == request.method and pattern.match(request.url.path):
                return self._answer(operation)
        return httpx.Response(404, json={"message": f"no operation {request.method} {request.url.path} in the spec"})

    def _answer(self, operation: Mapping[str, Any]) -> httpx.Response:
        for status, response in sorted((operation.get("responses") or {}).items()):
            if not str(status).startswith("2"):
                continue
            code = int(status) if str(status).isdigit() else 200
            response = self.resolver.resolve(response)
            content = response.get("content") or {}
            media = next((m for kind, m in content.items() if "json" in kind), None)
            if media is None:
                return httpx.Response(code)
            body = media.get("example", None)
            if body is None:
                body = self.resolver.instance(media.get("schema", {}))
            return httpx.Response(code, json=body)
        return httpx.Response(200, json={})
