"""An integration from an OpenAPI 3 spec: a manifest and a docs page, no Python.

``generate(spec, ident, operations=...)`` maps each chosen operation to a
declarative function (``request`` + ``response`` in the manifest): parameters
with their types, required flags, enums, formats, bounds and defaults; path,
query and header parameters and JSON body properties as templates; read or
write from the method; auth from ``securitySchemes``; base URL and allowed
hosts from ``servers``; pagination noted where the parameters make it plain, and
declared (a ``paginations:`` entry the function names, one page per call) when the
page size parameter has a maximum.
What cannot be expressed as data (callbacks, multipart or form bodies, bodies
that are one of several schemas) is refused per operation with the reason.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import _yamldump
from ._errors import ConfigError
from ._gcpause import gc_paused

__all__ = ["Generated", "generate", "load_spec", "write_integration"]

_METHODS = ("get", "post", "put", "patch", "delete")
_SCALARS = {"string", "integer", "number", "boolean"}
_FORMATS = {"date-time", "date", "email", "uri"}
_SKIPPED_HEADERS = {"authorization", "content-type", "accept", "user-agent", "content-length"}
_CURSOR_NAMES = {"cursor", "page_token", "pagetoken", "next", "next_cursor", "starting_after", "after"}
_OFFSET_NAMES = {"skip", "offset", "start"}
_PAGE_NAMES = {"page", "page_number", "pagenumber"}
_SIZE_NAMES = {"limit", "take", "size", "page_size", "pagesize", "per_page", "perpage", "max_results", "count"}
_MAX_REF_DEPTH = 32
_DESCRIPTION_CHARS = 400
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it


class _Refused(Exception):
    """One operation cannot be expressed as data; the message says why."""


@dataclass
class Generated:
    """What ``generate`` made: the manifest (as data), the docs page, and the refused operations."""

    ident: str
    manifest: dict[str, Any]
    docs: str
    refused: dict[str, str] = field(default_factory=dict)
    omitted: dict[str, list[str]] = field(default_factory=dict)  # function -> optional parts left out


@gc_paused()
def load_spec(path: str | Path) -> dict[str, Any]:
    """Read an OpenAPI document (JSON or YAML); ConfigError naming the file and the problem."""
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read the spec: {exc}", file=str(where)) from None
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.load(text, Loader=_LOADER)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where}: not JSON or YAML: {str(exc).splitlines()[0]}", file=str(where)) from None
    version = str(data.get("openapi", "")) if isinstance(data, dict) else ""
    if not version.startswith("3."):
        found = f"swagger {data.get('swagger')}" if isinstance(data, dict) and "swagger" in data else "no 'openapi' field"
        raise ConfigError(f"{where}: an OpenAPI 3.x document is needed ({found})", file=str(where),
                          hint="convert Swagger 2.0 specs to OpenAPI 3 first (for example with swagger2openapi)")
    if not isinstance(data.get("paths"), dict):
        raise ConfigError(f"{where}: the spec has no 'paths'", file=str(where))
    document: dict[str, Any] = data
    return document


_LOWER_UPPER = re.compile(r"([a-z0-9])([A-Z])")
_ACRONYM_WORD = re.compile(r"([A-Z]+)([A-Z][a-z])")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")


@functools.lru_cache(maxsize=8192)
def snake(name: str) -> str:
    """``getBookingByUid`` / ``get-booking`` → ``get_booking_by_uid``; always a valid Lua name
    (cached: a large spec repeats its parameter names thousands of times)."""
    text = _LOWER_UPPER.sub(r"\1_\2", name)
    text = _ACRONYM_WORD.sub(r"\1_\2", text)
    text = _NOT_ALNUM.sub("_", text).strip("_").lower()
    if not text or not text[0].isalpha():
        text = f"p_{text}" if text else "value"
    return text


class _Spec:
    """The document with ``$ref`` resolution (local references only)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def resolve(self, node: Any, depth: int = 0) -> Any:
        while isinstance(node, Mapping) and "$ref" in node:
            ref = node["$ref"]
            if depth > _MAX_REF_DEPTH:
                raise _Refused(f"$ref chain too deep at {ref}")
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise _Refused(f"external $ref {ref!r} (only references inside the document are followed)")
            target: Any = self.data
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
            if target is None:
                raise _Refused(f"$ref {ref} points nowhere")
            node, depth = target, depth + 1
        return node

    def schema(self, node: Any, depth: int = 0) -> dict[str, Any]:
        """A schema with references resolved and ``allOf`` merged (one level of properties)."""
        schema = self.resolve(node, depth)
        if not isinstance(schema, Mapping):
            return {}
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            properties: dict[str, Any] = dict(merged.get("properties", {}))
            required: list[str] = list(merged.get("required", []))
            for part in schema["allOf"]:
                resolved = self.schema(part, depth + 1)
                properties.update(resolved.get("properties", {}))
                required += resolved.get("required", [])
                for key in ("type", "description"):
                    if key in resolved and key not in merged:
                        merged[key] = resolved[key]
            if properties:
                merged["properties"], merged["type"] = properties, merged.get("type", "object")
            merged["required"] = required
            return merged
        return dict(schema)


def _text(*candidates: Any, fallback: str) -> str:
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            text = " ".join(candidate.split())
            return text if len(text) <= _DESCRIPTION_CHARS else text[:_DESCRIPTION_CHARS - 3].rsplit(" ", 1)[0] + "..."
    return fallback


def _type_of(schema: Mapping[str, Any], spec: _Spec) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):  # 3.1: ["string", "null"]
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind is None:
        for key in ("oneOf", "anyOf"):
            if key in schema:
                variants = {_type_of(spec.schema(v), spec) for v in schema[key]}
                variants.discard("null")
                if len(variants) == 1:
                    return variants.pop()
                raise _Refused(f"a value that is {key} of several types ({', '.join(sorted(variants))})")
        if schema.get("enum"):
            first = schema["enum"][0]
            kind = "boolean" if isinstance(first, bool) else "integer" if isinstance(first, int) else \
                "number" if isinstance(first, float) else "string"
        elif "properties" in schema:
            kind = "object"
        elif "items" in schema:
            kind = "array"
        else:
            kind = "string"
    if kind not in {*_SCALARS, "array", "object"}:
        raise _Refused(f"a value of type {kind!r}")
    return str(kind)


def _param(schema_node: Any, spec: _Spec, *, description: str, required: bool,
           send_default: bool = False) -> dict[str, Any]:
    """A manifest parameter from an OpenAPI schema."""
    schema = spec.schema(schema_node)
    kind = _type_of(schema, spec)
    param: dict[str, Any] = {"type": kind, "description": description}
    if required:
        param["required"] = True
    enum = [v for v in schema.get("enum") or [] if v is not None]
    if enum and kind in _SCALARS:
        param["enum"] = enum
    if schema.get("format") in _FORMATS and kind == "string":
        param["format"] = schema["format"]
    if "default" in schema and not required and schema["default"] is not None and kind in _SCALARS:
        if send_default:
            param["default"] = schema["default"]
        else:  # the service applies its own default: say it, send only what the script gave
            param["description"] += f" (the service's default: {json.dumps(schema['default'])})"
    for source, target in (("minimum", "minimum"), ("maximum", "maximum"),
                           ("minLength", "min_length"), ("maxLength", "max_length")):
        value = schema.get(source)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if target in ("minimum", "maximum") and kind in ("integer", "number"):
                param[target] = value
            elif target in ("min_length", "max_length") and kind == "string":
                param[target] = int(value)
    if kind == "array":
        items = spec.schema(schema.get("items", {}))
        try:
            item_type = _type_of(items, spec)
        except _Refused:
            item_type = None
        if item_type in _SCALARS:
            param["items"] = item_type
            item_enum = [v for v in items.get("enum") or [] if v is not None]
            if item_enum:
                param["item_enum"] = item_enum
        elif item_type is not None:
            param["items"] = item_type
    return param


class _Names:
    """Unique Lua parameter names for one operation's OpenAPI names."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def claim(self, name: str) -> str:
        base = snake(name)
        chosen, n = base, 2
        while chosen in self.taken:
            chosen, n = f"{base}_{n}", n + 1
        self.taken.add(chosen)
        return chosen


def _operation(spec: _Spec, path: str, method: str, item: Mapping[str, Any],
               operation: Mapping[str, Any]) -> dict[str, Any]:
    """One operation as a manifest function; raises _Refused with the reason when it cannot be."""
    if operation.get("callbacks"):
        raise _Refused("it declares callbacks (webhooks the service calls back), which a request cannot express")
    names = _Names()
    params: dict[str, Any] = {}
    omitted: list[str] = []
    request: dict[str, Any] = {"method": method.upper(), "path": path}
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    declared = [spec.resolve(p) for p in [*item.get("parameters", []), *operation.get("parameters", [])]]
    merged = {(p.get("in"), p.get("name")): p for p in declared if isinstance(p, Mapping)}
    for (where, name), declared_param in merged.items():
        if where == "cookie":
            raise _Refused(f"cookie parameter {name!r}")
        if where == "header" and str(name).lower() in _SKIPPED_HEADERS:
            continue
        required = bool(declared_param.get("required")) or where == "path"
        try:
            if "schema" not in declared_param:
                raise _Refused("it has no schema (a 'content' parameter)")
            schema = spec.schema(declared_param["schema"])
            if where == "header" and required and len(schema.get("enum") or []) == 1:
                required = False  # a fixed version header: sent with its only value unless given
                schema = {**schema, "default": schema["enum"][0]}
            param = _param(schema, spec, required=required, send_default=where == "header", description=_text(
                declared_param.get("description"), schema.get("description"), fallback=f"the {name} {where} parameter"))
        except _Refused as why:
            if required:
                raise _Refused(f"required {where} parameter {name!r}: {why}") from None
            omitted.append(f"optional {where} parameter {name!r} left out: {why}")
            continue
        lua_name = names.claim(str(name))
        params[lua_name] = param
        template = f"{{{lua_name}}}"
        if where == "path":
            request["path"] = request["path"].replace(f"{{{name}}}", template)
        elif where == "query":
            query[str(name)] = template
        elif where == "header":
            headers[str(name)] = template
    body = _body(spec, operation, names, params)
    if query:
        request["query"] = query
    if headers:
        request["headers"] = headers
    if body is not None:
        request["body"] = body
    unfilled = re.findall(r"\{([^}]+)\}", request["path"])
    if any(p not in params for p in unfilled):
        raise _Refused(f"path placeholder(s) {', '.join(unfilled)} without a declared path parameter")
    return {"request": request, "params": params, "omitted": omitted}


def _body(spec: _Spec, operation: Mapping[str, Any], names: _Names,
          params: dict[str, Any]) -> dict[str, str] | str | None:
    """The JSON body as ``{property: "{param}"}`` templates (or ``"{items}"`` for a list body), its
    properties added to ``params``."""
    if "requestBody" not in operation:
        return None
    body = spec.resolve(operation["requestBody"])
    content = body.get("content", {}) if isinstance(body, Mapping) else {}
    json_types = [t for t in content if t.split(";")[0].strip() == "application/json" or t.endswith("+json")]
    if not json_types:
        kinds = ", ".join(content) or "no content type"
        raise _Refused(f"its request body is {kinds}, not JSON (multipart and form bodies are not expressible as data)")
    schema = spec.schema(content[json_types[0]].get("schema", {}))
    for key in ("oneOf", "anyOf"):
        if key in schema:
            raise _Refused(f"its request body is {key} of several schemas, which one parameter table cannot express")
    kind = _type_of(schema, spec)
    if kind == "array":  # the whole body is one list: one parameter
        name = names.claim("items")
        params[name] = _param(schema, spec, required=bool(body.get("required")), description=_text(
            body.get("description"), schema.get("description"), fallback="the items of the request body (a list)"))
        return f"{{{name}}}"
    properties = schema.get("properties")
    if kind != "object" or not properties:
        raise _Refused("its request body is not a JSON object with declared properties, nor a list")
    required = set(schema.get("required", [])) if body.get("required", True) else set()
    templates: dict[str, str] = {}
    for name, node in properties.items():
        prop = spec.schema(node)
        if prop.get("readOnly"):
            continue
        lua_name = names.claim(str(name))
        params[lua_name] = _param(prop, spec, required=name in required, description=_text(
            prop.get("description"), prop.get("title"), fallback=f"the {name} field of the request body"))
        templates[str(name)] = f"{{{lua_name}}}"
    return templates


def _pagination(function: Mapping[str, Any]) -> str | None:
    """The pagination style the query parameters make plain, or ``None``."""
    query = {snake(k) for k in function["request"].get("query", {})}
    if not query & _SIZE_NAMES and not query & (_CURSOR_NAMES | _OFFSET_NAMES | _PAGE_NAMES):
        return None
    if query & _CURSOR_NAMES:
        return "cursor"
    if query & _OFFSET_NAMES:
        return "skip_take"
    if query & _PAGE_NAMES:
        return "page_size"
    return None


def _pagination_entry(function: Mapping[str, Any], style: str) -> dict[str, Any] | None:
    """The ``paginations:`` entry of a ``style`` the query makes plain: the strategy and the upstream
    parameter names, the size the size parameter's maximum; no ``items`` (the answer's list is not
    known: the function returns one page). ``None`` without a size parameter with a maximum."""
    query = function["request"]["query"]
    named = {snake(name): name for name in query}
    size_name = next((named[n] for n in named if n in _SIZE_NAMES), None)
    maximum = function["params"].get(query[size_name].strip("{}"), {}).get("maximum") if size_name else None
    if not isinstance(maximum, int) or isinstance(maximum, bool) or maximum < 1:
        return None
    names = {"cursor": _CURSOR_NAMES, "skip_take": _OFFSET_NAMES, "page_size": _PAGE_NAMES}[style]
    key = {"cursor": "cursor_param", "skip_take": "offset_param", "page_size": "page_param"}[style]
    return {"strategy": style, "size": maximum, "size_param": size_name,
            key: next(named[n] for n in named if n in names)}


def _returns(spec: _Spec, operation: Mapping[str, Any]) -> str:
    """A short shape of the first 2xx JSON response, e.g. ``{id, name, items}``."""
    for status, response in sorted((operation.get("responses") or {}).items()):
        if not str(status).startswith("2"):
            continue
        response = spec.resolve(response)
        content = response.get("content", {}) if isinstance(response, Mapping) else {}
        for kind, media in content.items():
            if "json" in kind:
                try:
                    return _shape(spec.schema(media.get("schema", {})), spec, 0)
                except _Refused:
                    return "table"
        return "table" if content else "nil"
    return "table"


def _shape(schema: Mapping[str, Any], spec: _Spec, depth: int) -> str:
    if schema.get("type") == "array" or "items" in schema:
        inner = spec.schema(schema.get("items", {}))
        return "{" + (_shape(inner, spec, depth + 1) if depth < 1 else "item") + "...}"
    properties = list(schema.get("properties") or {})
    if not properties:
        return "table"
    return "{" + ", ".join(properties[:10]) + (", ..." if len(properties) > 10 else "") + "}"


def _function_names(spec: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """A snake_case function name for each (path, method): from operationId, short and unique."""
    wanted: dict[tuple[str, str], tuple[str, str]] = {}
    for path, item in spec["paths"].items():
        if not isinstance(item, Mapping):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, Mapping):
                continue
            full = snake(str(operation.get("operationId") or f"{method} {path}"))
            op_id = str(operation.get("operationId") or "")
            short = snake(op_id.rsplit("_", 1)[-1]) if "Controller" in op_id else full
            wanted[(path, method)] = (short, full)
    shorts = Counter(short for short, _ in wanted.values())
    names = {key: short if shorts[short] == 1 else full for key, (short, full) in wanted.items()}
    seen: dict[str, int] = {}
    for key, name in names.items():  # still equal full names: number them
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[key] = f"{name}_{seen[name]}"
    return names


def _servers(spec: Mapping[str, Any], base_url: str | None) -> tuple[str, str, list[str]]:
    """The service's origin (the ``base_url`` setting), the servers' path prefix (put before every
    operation's path, as the built-in manifests do) and the allowed hosts."""
    url = base_url
    if url is None:
        servers = spec.get("servers") or []
        if not servers or not isinstance(servers[0], Mapping) or not servers[0].get("url"):
            raise ConfigError("the spec declares no servers, so the base URL is unknown",
                              hint="pass --base-url https://api.example.com")
        url = str(servers[0]["url"])
        for name, variable in (servers[0].get("variables") or {}).items():
            url = url.replace(f"{{{name}}}", str(variable.get("default", "")))
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"base URL {url!r} is not an absolute https URL",
                          hint="pass --base-url https://api.example.com (the service's real address)")
    return f"https://{parts.netloc}", parts.path.rstrip("/"), [parts.hostname]


def _auth(spec: Mapping[str, Any], choice: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest's ``auth`` and ``credentials`` from ``securitySchemes`` (or ``--auth``)."""
    scheme: Mapping[str, Any] | None = None
    if choice is None:
        schemes = (spec.get("components") or {}).get("securitySchemes") or {}
        preferred = [name for requirement in spec.get("security") or [] for name in requirement]
        ordered = [*preferred, *schemes]
        scheme = next((schemes[n] for n in ordered if n in schemes and isinstance(schemes[n], Mapping)), None)
        if scheme is None:
            raise ConfigError("the spec declares no securitySchemes, so how to authenticate is unknown",
                              hint="pass --auth bearer, --auth basic, --auth header:NAME or --auth query:NAME")
    else:
        kind, _, name = choice.partition(":")
        if kind in ("header", "query") and name:
            scheme = {"type": "apiKey", "in": kind, "name": name}
        elif kind in ("bearer", "basic") and not name:
            scheme = {"type": "http", "scheme": kind}
        else:
            raise ConfigError(f"--auth {choice!r} is not understood",
                              hint="use bearer, basic, header:NAME or query:NAME")
    kind = str(scheme.get("type"))
    described = _text(scheme.get("description"), fallback="")
    if kind == "http" and str(scheme.get("scheme", "")).lower() == "basic":
        return ({"kind": "basic", "username": "username", "password": "password"},
                {"username": {"description": "user name for HTTP basic auth"},
                 "password": {"description": "password for HTTP basic auth"}})
    if kind in ("oauth2", "openIdConnect") or (kind == "http" and str(scheme.get("scheme", "")).lower() == "bearer"):
        note = "an OAuth access token, sent as a Bearer token" if kind != "http" else "API token, sent as a Bearer token"
        return ({"kind": "bearer", "token": "token"}, {"token": {"description": f"{note}. {described}".strip()}})
    if kind == "apiKey" and scheme.get("in") in ("header", "query") and scheme.get("name"):
        where = scheme["in"]
        return ({"kind": "api_key", "key": "api_key", where: scheme["name"]},
                {"api_key": {"description": f"API key, sent in the {scheme['name']} {where} parameter. {described}".strip()}})
    raise ConfigError(f"security scheme {kind!r} ({scheme.get('scheme') or scheme.get('in') or ''}) cannot be mapped",
                      hint="pass --auth bearer, --auth basic, --auth header:NAME or --auth query:NAME")


@gc_paused()
def generate(spec_data: Mapping[str, Any], ident: str, *, operations: Iterable[str] | None = None,
             base_url: str | None = None, auth: str | None = None, source: str = "") -> Generated:
    """A manifest-only integration ``ident`` for the chosen operations (all when ``None``)."""
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,63}", ident):
        raise ConfigError(f"integration name {ident!r} must be lowercase letters, digits and '-'",
                          hint="for example: my-service")
    spec = _Spec(spec_data)
    url, upstream_prefix, hosts = _servers(spec_data, base_url)
    auth_spec, credentials = _auth(spec_data, auth)
    names = _function_names(spec_data)
    by_id = {str(op.get("operationId")): key for key in names
             for op in [spec_data["paths"][key[0]][key[1]]] if op.get("operationId")}
    if operations is None:
        chosen = list(names)
    else:
        chosen = []
        by_name = {name: key for key, name in names.items()}
        for wanted in operations:
            key = by_id.get(wanted) or by_name.get(wanted) or by_name.get(snake(wanted))
            if key is None:
                import difflib

                close = difflib.get_close_matches(wanted, [*by_id, *by_name], n=3)
                raise ConfigError(f"the spec has no operation {wanted!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                                  hint="use an operationId or the generated function name (kosmo integrations new --list)")
            chosen.append(key)
    functions: dict[str, Any] = {}
    paginations: dict[str, Any] = {}
    refused: dict[str, str] = {}
    omitted: dict[str, list[str]] = {}
    for path, method in chosen:
        item = spec_data["paths"][path]
        operation = item[method]
        label = str(operation.get("operationId") or f"{method.upper()} {path}")
        try:
            made = _operation(spec, upstream_prefix + path, method, item, operation)
        except _Refused as why:
            refused[label] = str(why)
            continue
        if made["omitted"]:
            omitted[names[(path, method)]] = made["omitted"]
        pagination = _pagination(made)
        description = _text(operation.get("summary"), operation.get("description"),
                            fallback=f"{method.upper()} {path}")
        detail = _text(operation.get("description"), fallback="")
        if detail and detail != description:
            description = _text(f"{description.rstrip('.')}. {detail}", fallback=description)
        if pagination:
            description += f" Paginated ({pagination.replace('_', ' ')}): one page per call."
            entry = _pagination_entry(made, pagination) if method == "get" else None
            if entry is not None:
                paginations[names[(path, method)]] = entry
                made["request"]["paginate"] = {"using": names[(path, method)]}
        functions[names[(path, method)]] = {
            "description": description,
            "operation": "read" if method == "get" else "write",
            **({"params": made["params"]} if made["params"] else {}),
            "returns": _returns(spec, operation),
            "request": made["request"],
            "upstream": f"{method.upper()} {upstream_prefix}{path}",
        }
    if not functions:
        raise ConfigError("none of the chosen operations can be expressed as data: "
                          + "; ".join(f"{k}: {v}" for k, v in list(refused.items())[:5]),
                          hint="choose other operations with --operations, or write a handler (README: Writing an integration)")
    check = next((n for n, f in functions.items() if f["operation"] == "read"
                  and not any(p.get("required") for p in f.get("params", {}).values())),
                 next((n for n, f in functions.items() if f["operation"] == "read"), None))
    if check is None:
        raise ConfigError("the chosen operations include no read (GET) operation, which `kosmo accounts check` needs",
                          hint="add one read operation to --operations")
    info = spec_data.get("info") or {}
    title = _text(info.get("title"), fallback=ident)
    manifest = {
        "id": ident,
        "name": title,
        "category": "generated",
        "description": _text(str(info.get("description") or "").strip().split("\n\n")[0],
                             fallback=f"{title}, generated from its OpenAPI spec"),
        "prefix": ident.replace("-", "_"),
        "auth": auth_spec,
        "credentials": credentials,
        "settings": {"base_url": {"description": "Root of the service's API (from the spec's servers)",
                                  "secret": False, "default": url}},
        "allowed_hosts": hosts,
        "check": check,
        **({"paginations": paginations} if paginations else {}),
        "functions": functions,
    }
    return Generated(ident, manifest, _docs(manifest, info, source, refused, omitted), refused, omitted)


def _docs(manifest: Mapping[str, Any], info: Mapping[str, Any], source: str, refused: Mapping[str, str],
          omitted: Mapping[str, list[str]]) -> str:
    ident = manifest["id"]
    namespace = f'app.integrations["{ident}"]' if "-" in ident else f"app.integrations.{ident}"
    lines = [f"# {manifest['name']}", "", manifest["description"], "",
             f"Generated by `kosmo integrations new` from {source or 'an OpenAPI spec'} (OpenAPI "
             f"{info.get('version', '?')}): {len(manifest['functions'])} functions, each one HTTP request "
             f"to {manifest['settings']['base_url']['default']}.", ""]
    if refused:
        lines += ["Operations of the spec left out, with the reason:", ""]
        lines += [f"- `{name}`: {why}" for name, why in refused.items()] + [""]
    for name, function in manifest["functions"].items():
        required = {p: spec for p, spec in function.get("params", {}).items() if spec.get("required")}
        example_args = ", ".join(f"{p} = {_example(spec)}" for p, spec in required.items())
        lines += [f"## {name}", "", function["description"], "", f"Upstream: `{function['upstream']}` "
                  f"({function['operation']}).", "", *(f"- {note}" for note in omitted.get(name, [])),
                  *([""] if omitted.get(name) else []), "```lua",
                  f"local result = {namespace}.{name}({{{example_args}}})", "print(json.encode(result))", "```", ""]
    return "\n".join(lines)


def _example(param: Mapping[str, Any]) -> str:
    if param.get("enum"):
        return json.dumps(param["enum"][0])
    return {"integer": "1", "number": "1", "boolean": "true", "array": "{}", "object": "{}"}.get(
        param["type"], '"2025-01-01T10:00:00Z"' if param.get("format") == "date-time" else '"example"')


@gc_paused()
def write_integration(generated: Generated, root: Path, *, force: bool = False) -> Path:
    """Write ``root/<ident>/manifest.yaml``, its parsed copy (``.manifest.json``: what loads it fast while
    the YAML is unchanged) and ``docs.md``; refuses to overwrite unless ``force``."""
    folder = root / generated.ident.replace("-", "_")
    if (folder / "manifest.yaml").exists() and not force:
        raise ConfigError(f"{folder / 'manifest.yaml'} already exists", file=str(folder / "manifest.yaml"),
                          hint="pass --force to replace it, or choose another name")
    folder.mkdir(parents=True, exist_ok=True)
    header = (f"# Generated by `kosmo integrations new {generated.ident}` from an OpenAPI spec.\n"
              "# Edit freely: it is an ordinary manifest (README: Writing an integration).\n")
    from ._manifest import PARSED_COPY, manifest_digest  # pydantic: only when writing

    text = header + _yamldump.dump(generated.manifest)
    (folder / "manifest.yaml").write_text(text, encoding="utf-8")
    copy = {"manifest_sha256": manifest_digest(text), "manifest": generated.manifest}
    (folder / PARSED_COPY).write_text(json.dumps(copy, ensure_ascii=False), encoding="utf-8")
    (folder / "docs.md").write_text(generated.docs, encoding="utf-8")
    return folder
