"""Integration manifests: the one declaration behind validation, docs, listings and MCP tools.

Each integration is a folder holding ``manifest.yaml`` (checked here against
pydantic models) and, when data cannot say everything, a ``hooks.py`` module
whose functions the manifest names. A function is either *declarative*
(``request`` + ``response``: the HTTP mapping written as data) or names one
``handler`` in the hooks module. The folder name must be the manifest ``id``
with ``-`` written as ``_``.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._endpoint_headers import template_names
from ._errors import ManifestError
from ._expressions import check_expression, shape_names
from ._gcpause import gc_paused
from ._paginate import Pagination

__all__ = [
    "AuthSpec",
    "FieldSpec",
    "FunctionSpec",
    "Manifest",
    "ParamSpec",
    "load_manifest",
]

ParamType = Literal["string", "integer", "number", "boolean", "array", "object"]
ParamFormat = Literal["date-time", "date", "email", "uri"]
_NAME = r"^[a-z][a-z0-9_]*$"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it: ~20x faster
_ID = r"^[a-z][a-z0-9-]*$"


class Located(ValueError):
    """A manifest check's refusal that knows where in the manifest it is (``loc``, as pydantic's), so
    the ManifestError can name the line."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(_Strict):
    """One named argument of a function."""

    type: ParamType
    description: str
    required: bool = False
    default: Any = None
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    items: ParamType | None = None
    item_enum: list[Any] | None = None
    format: ParamFormat | None = None
    properties: dict[str, ParamSpec] | None = None  # the fields of an object, or of each object item of an array
    hint: str | None = None  # added to the hint of every refusal of this parameter
    example: Any = None

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.properties is not None and not (self.type == "object" or self.items == "object"):
            raise ValueError("'properties' only applies to type: object or to an array with items: object")
        if self.required and self.default is not None:
            raise ValueError("a required parameter cannot have a default")
        if self.items is not None and self.type != "array":
            raise ValueError("'items' only applies to type: array")
        if self.item_enum is not None and self.items is None:
            raise ValueError("'item_enum' needs 'items' (the type of the array's items)")
        if self.format is not None and self.type != "string":
            raise ValueError("'format' only applies to type: string")
        return self


class PaginateSpec(_Strict):
    """A read's use of one of the manifest's ``paginations`` (``using``). Alone it says the function
    returns one page (the request as declared: its query may pass the page parameters from the
    function's own). With ``collect: N`` the call collects up to N items across pages, the page
    parameters sent by the strategy; with ``collect_param`` too, an integer parameter of the
    function says how many (at most N; not given: N)."""

    using: str
    collect: int | None = Field(default=None, ge=1)
    collect_param: str | None = None

    @model_validator(mode="after")
    def _capped(self) -> PaginateSpec:
        if self.collect_param is not None and self.collect is None:
            raise ValueError("collect_param needs collect (the most items a call collects)")
        return self


class RequestSpec(_Strict):
    """A declarative HTTP request: ``{name}`` in path, query, headers and body takes an argument or setting
    (an argument not given leaves its query value, header or body field out). ``path_when`` gives
    other paths by argument: the first whose argument is given replaces ``path``
    (``{teamId: "/v2/teams/{teamId}/event-types"}``). ``include`` names reads the call needs beside
    its request, sent before it, each answer put into this one's under its name (GoTo's
    ``get_session``: the attendee list beside the performance figures). ``paginate``: see
    :class:`PaginateSpec` (a GET of a read function only)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    path_when: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    body: dict[str, str] | str | None = None  # one template per body field, or one for the whole body
    headers: dict[str, str] = Field(default_factory=dict)
    include: dict[str, RequestSpec] = Field(default_factory=dict)
    paginate: PaginateSpec | None = None

    @model_validator(mode="after")
    def _reads_included(self) -> RequestSpec:
        for name, extra in self.include.items():
            if extra.method != "GET" or extra.include or extra.paginate:
                raise Located(("include", name), f"include {name}: an included request is a GET without includes or "
                                                 "paginate of its own (several writes are a handler's job)")
        if self.paginate is not None and self.method != "GET":
            raise Located(("paginate",), f"paginate: a {self.method} request does not paginate (only a GET does)")
        if self.paginate is not None and self.paginate.collect is not None and self.include:
            raise Located(("paginate",), "paginate: a request that collects pages cannot also include other reads")
        return self

    @cached_property
    def placeholders(self) -> frozenset[str]:
        """Every ``{name}`` the request's templates use, its includes' too (worked out once per manifest load)."""
        templates = [self.path, *self.path_when.values(), *self.query.values(), *self.headers.values()]
        templates += [self.body] if isinstance(self.body, str) else list((self.body or {}).values())
        named = {name for template in templates for name in template_names(template)}
        return frozenset(named.union(*(extra.placeholders for extra in self.include.values())))


class OneSpec(_Strict):
    """A lookup whose ``extract`` gives candidates, of which there must be exactly one: ``take`` (an
    expression) is read from it; none or several are an AccountError listing the ``what`` as
    ``show`` (an expression) renders each."""

    what: str
    show: str
    take: str | None = None


class LookupSpec(_Strict):
    """A value templates may use that the service has to be asked for once per account, e.g. GoTo's
    organizer key: the account's ``setting`` when it sets one, else ``request`` answered and
    ``extract`` (an expression, usually a dotted path) taken, remembered for the account
    (``ctx.memo[name]``). With ``one``, ``extract`` gives the candidates (Agora's enabled projects)."""

    setting: str | None = None
    request: RequestSpec
    extract: str
    one: OneSpec | None = None

    @model_validator(mode="after")
    def _one_page(self) -> LookupSpec:
        if self.request.paginate is not None:
            raise Located(("request", "paginate"), "a lookup's request does not paginate")
        return self

    def expressions(self) -> list[str]:
        return [self.extract, *((self.one.show, self.one.take or "") if self.one else ())]


class SliceSpec(_Strict):
    """Paging done here for a list the service returns whole: the arguments that say the page
    size (none given: the whole list is page 1) and the 1-based page number."""

    limit: str
    page: str


class ResponseSpec(_Strict):
    """How the upstream body becomes the Lua result (for a request that collects pages, the list of
    the items collected stands where the body would), in this order: take ``extract`` (an
    expression, usually a dotted path: ``_expressions``), apply the manifest's named ``shape`` and
    add fields (``add: {length: lengthInMinutes}``; both to each item of a list), ``slice`` a list
    to the page the arguments ask for, then wrap it as ``{wrap_as: ...}``. What data cannot say,
    ``transform`` names: a hooks function ``transform(ctx, args, data) -> result`` applied after
    ``slice``, before ``wrap_as``. ``remember`` keeps values of the shaped answer for the manifest's
    ``lookups`` (``{organizer_key: key}``: later calls need not ask the service for it)."""

    extract: str | None = None
    shape: str | None = None
    add: dict[str, str] = Field(default_factory=dict)
    slice: SliceSpec | None = None
    remember: dict[str, str] = Field(default_factory=dict)  # lookup name -> expression over the shaped answer
    transform: str | None = None
    wrap_as: str | None = None

    def expressions(self) -> list[str]:
        return [e for e in (self.extract, *self.add.values(), *self.remember.values()) if e]


class FunctionSpec(_Strict):
    """One function an integration offers to scripts."""

    description: str
    operation: Literal["read", "write"]
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    returns: str = "table"
    handler: str | None = None
    request: RequestSpec | None = None
    response: ResponseSpec = Field(default_factory=ResponseSpec)  # made, not deep-copied, per function
    upstream: str = ""

    @model_validator(mode="after")
    def _one_implementation(self) -> FunctionSpec:
        if (self.handler is None) == (self.request is None):
            raise ValueError("give exactly one of 'handler' (a hooks function) or 'request' (a declarative call)")
        named = [*(self.request.path_when if self.request else {}),
                 *((self.response.slice.limit, self.response.slice.page) if self.response.slice else ())]
        unknown = [name for name in named if name not in self.params]
        if unknown:
            raise ValueError(f"path_when and slice name {unknown}, which are not parameters of this function")
        paginate = self.request.paginate if self.request else None
        if paginate is not None and self.operation == "write":
            raise Located(("request", "paginate"), "paginate: a write never paginates")
        if paginate is not None and paginate.collect_param is not None and (
                paginate.collect_param not in self.params or self.params[paginate.collect_param].type != "integer"):
            raise Located(("request", "paginate", "collect_param"),
                          f"paginate: collect_param {paginate.collect_param!r} is not an integer parameter of this function")
        return self


class FieldSpec(_Strict):
    """A credential or setting an account provides; ``enum``: the values a setting may take (checked
    when a hook reads it with ``ctx.setting``: a ConfigError naming them otherwise)."""

    description: str
    required: bool = True
    secret: bool = True
    default: Any = None
    enum: list[Any] | None = None

    @model_validator(mode="after")
    def _default_allowed(self) -> FieldSpec:
        if self.enum is not None and self.default is not None and self.default not in self.enum:
            raise ValueError(f"default {self.default!r} is not one of its enum {self.enum}")
        return self


class AuthSpec(_Strict):
    """How requests are authenticated: ``bearer`` (field ``token``), ``basic`` (``username``,
    ``password``) or ``api_key`` (field ``key``, sent as the ``header`` or the ``query`` parameter named)."""

    kind: Literal["bearer", "basic", "api_key"]
    token: str | None = None
    username: str | None = None
    password: str | None = None
    key: str | None = None
    header: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _fields_named(self) -> AuthSpec:
        needed = {"bearer": ("token",), "basic": ("username", "password"), "api_key": ("key",)}[self.kind]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"auth kind {self.kind} needs {', '.join(missing)}")
        if self.kind == "api_key" and (self.header is None) == (self.query is None):
            raise ValueError("auth kind api_key needs exactly one of 'header' or 'query' (where the key is sent)")
        if self.kind != "api_key" and (self.header or self.query):
            raise ValueError("'header' and 'query' only apply to auth kind api_key")
        return self

    def fields(self) -> list[str]:
        return [v for v in (self.token, self.username, self.password, self.key) if v is not None]


class ErrorSpec(_Strict):
    """Where the service puts its own error code and message (dotted paths, first hit wins)."""

    code: list[str] = Field(default_factory=lambda: ["error.code", "code", "errorCode"])
    message: list[str] = Field(default_factory=lambda: ["error.message", "message", "description", "error", "msg"])


class RateLimitSpec(_Strict):
    """The service's documented request rate for one account; ``costs`` prices methods (default 1)."""

    requests: float = Field(gt=0)
    per_seconds: float = Field(gt=0)
    costs: dict[str, float] = Field(default_factory=dict)
    source: str = ""


class Manifest(_Strict):
    """An integration's manifest (``manifest.yaml``)."""

    id: str = Field(pattern=_ID)
    name: str
    category: str
    description: str
    prefix: str = Field(pattern=_NAME)
    auth: AuthSpec
    credentials: dict[str, FieldSpec]
    settings: dict[str, FieldSpec] = Field(default_factory=dict)
    allowed_hosts: list[str]
    headers: dict[str, str] = Field(default_factory=dict)
    endpoint_headers: dict[str, dict[str, str]] = Field(default_factory=dict)  # path prefix -> headers (_endpoint_headers)
    errors: ErrorSpec = ErrorSpec()
    rate_limit: RateLimitSpec | None = None
    check: str
    hooks: str | None = None
    lookups: dict[str, LookupSpec] = Field(default_factory=dict)
    paginations: dict[str, Pagination] = Field(default_factory=dict)  # named: a request's paginate, ctx.collect(path, name)
    shapes: dict[str, dict[str, str] | str] = Field(default_factory=dict)  # named: fields to add, or one expression
    tables: dict[str, dict[Any, Any]] = Field(default_factory=dict)  # named constant maps hooks read (ctx.table)
    string_keys: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)  # name globs (_string_keys)
    functions: dict[str, FunctionSpec]

    @field_validator("functions")
    @classmethod
    def _function_names(cls, functions: dict[str, FunctionSpec]) -> dict[str, FunctionSpec]:
        for name in functions:
            if not re.match(_NAME, name):
                raise ValueError(f"function name {name!r} must be lower_snake_case")
        return functions

    @model_validator(mode="after")
    def _cross_checks(self) -> Manifest:
        for name in self.auth.fields():
            if name not in self.credentials:
                raise Located(("auth",), f"auth uses credential {name!r}, which 'credentials' does not declare")
        if self.check not in self.functions:
            raise Located(("check",), f"check names {self.check!r}, which is not a function of this manifest")
        if self.functions[self.check].operation != "read":
            raise Located(("check",), "the check function must be a read")
        if "base_url" not in self.settings or self.settings["base_url"].default is None:
            raise Located(("settings",), "settings must declare base_url with the real service's default")
        clash = set(self.credentials) & set(self.settings)
        if clash:
            raise Located(("settings",), f"{sorted(clash)} declared as both credential and setting")
        for prefix, headers in self.endpoint_headers.items():
            if not prefix.startswith("/"):
                raise Located(("endpoint_headers", prefix), f"endpoint_headers: {prefix!r} must be a path starting with '/'")
            unknown = sorted({n for t in headers.values() for n in template_names(t)} - set(self.settings))
            if unknown:
                raise Located(("endpoint_headers", prefix), f"endpoint_headers {prefix}: {unknown} name no setting of this manifest")
        self._check_expressions()
        if any(spec.handler or spec.response.transform for spec in self.functions.values()) and not self.hooks:
            raise Located(("functions",), "a function names a handler or a transform, so 'hooks' must name the hooks module")
        for name, spec in self.functions.items():
            self._check_paginate(name, spec)
            unknown = sorted(set(spec.response.remember) - set(self.lookups))
            if unknown:
                raise Located(("functions", name, "response", "remember"),
                              f"function {name}: remember names {unknown}, which 'lookups' does not declare")
        return self

    def _check_paginate(self, name: str, spec: FunctionSpec) -> None:
        """A function's ``paginate`` names a declared pagination, and one that says where items are if it collects."""
        paginate = spec.request.paginate if spec.request else None
        if paginate is None:
            return
        loc = ("functions", name, "request", "paginate")
        pagination = self.paginations.get(paginate.using)
        if pagination is None:
            declared = ", ".join(self.paginations) or "none"
            raise Located(loc, f"function {name}: paginate uses {paginate.using!r}, which 'paginations' does not "
                               f"declare (declared: {declared})")
        if paginate.collect is not None and pagination.items is None:
            raise Located(loc, f"function {name}: collecting needs pagination {paginate.using!r} to say where a "
                               "page's items are ('items', a dotted path)")

    def _check_expressions(self) -> None:
        """Every response and shape expression readable, every named shape one uses declared."""
        owners: list[tuple[str, tuple[str, ...], list[str], str | None]] = [
            (f"shape {name}", ("shapes", name), [fields] if isinstance(fields, str) else list(fields.values()), None)
            for name, fields in self.shapes.items()]
        owners += [(f"function {name}", ("functions", name, "response"), spec.response.expressions(), spec.response.shape)
                   for name, spec in self.functions.items()]
        owners += [(f"lookup {name}", ("lookups", name), [e for e in spec.expressions() if e], None)
                   for name, spec in self.lookups.items()]
        for where, loc, expressions, named in owners:
            for expression in expressions:
                problem = check_expression(expression)
                if problem:
                    raise Located(loc, f"{where}: expression {expression!r} cannot be read: {problem}")
            for shape in sorted({named or "", *(n for e in expressions for n in shape_names(e))} - {""}):
                if shape not in self.shapes:
                    raise Located(loc, f"{where} uses shape {shape!r}, which 'shapes' does not declare")

    def full_name(self, function: str) -> str:
        """The function's full name, e.g. ``gotowebinar_list_webinars``."""
        return f"{self.prefix}_{function}"

    def resolve_function(self, name: str) -> str | None:
        """The short name for a short or full function name, or ``None``."""
        if name in self.functions:
            return name
        prefix = self.prefix + "_"
        if name.startswith(prefix) and name[len(prefix):] in self.functions:
            return name[len(prefix):]
        return None

    def all_function_names(self) -> list[str]:
        return [*self.functions, *(self.full_name(f) for f in self.functions)]


class LoadedIntegration:
    """A manifest plus where it came from; the hooks module is imported on first use."""

    def __init__(self, manifest: Manifest, folder: Path, module: str | None) -> None:
        self.manifest = manifest
        self.folder = folder
        self.module = module
        self._hooks: ModuleType | None = None

    def handler(self, function: str) -> Callable[..., Any]:
        """The hooks function implementing ``function``."""
        return self.slot(function, "handler", self.manifest.functions[function].handler or "")

    def slot(self, function: str, kind: str, name: str) -> Callable[..., Any]:
        """The hooks function ``name`` that ``function`` names for a slot (``handler``, ``transform``)."""
        if self._hooks is None:
            self._hooks = self._import_hooks()
        try:
            found: Callable[..., Any] = getattr(self._hooks, name)
            return found
        except AttributeError:
            raise ManifestError(
                f"{self.folder / 'manifest.yaml'}: function {function} names {kind} {name!r}, "
                f"which {self.manifest.hooks}.py does not define",
                file=str(self.folder / "manifest.yaml"),
                hint="define the function in the hooks module or fix the name",
            ) from None


    def _import_hooks(self) -> ModuleType:
        name = self.manifest.hooks or ""
        if self.module:
            return importlib.import_module(f"{self.module}.{name}")
        location = self.folder / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"kosmo_integration_{self.folder.name}_{name}", location)
        if spec is None or spec.loader is None:
            raise ManifestError(f"{location}: cannot import the hooks module", file=str(location))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


#: the parsed copy of a generated manifest, beside it (written by ``kosmo integrations new``)
PARSED_COPY = ".manifest.json"


def manifest_digest(text: str) -> str:
    """The SHA-256 of a manifest's text, which its parsed copy names."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parsed_copy(folder: Path, text: str) -> Any:
    """The manifest data of ``folder``'s parsed copy when it was made from exactly ``text``, else None.
    A YAML parse of a generated manifest of thousands of functions takes seconds, JSON's a tenth of
    one; an edited manifest no longer matches its copy and is parsed as YAML again."""
    import json

    try:
        copy = json.loads((folder / PARSED_COPY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(copy, dict) or copy.get("manifest_sha256") != manifest_digest(text):
        return None
    return copy.get("manifest")


@gc_paused()
def load_manifest(folder: Path, module: str | None) -> LoadedIntegration:
    """Read and check ``folder/manifest.yaml``; raises ManifestError naming the file and the fix."""
    path = folder / "manifest.yaml"
    try:
        text = path.read_text(encoding="utf-8")
        data = parsed_copy(folder, text)
        if data is None:
            data = yaml.load(text, Loader=_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}", file=str(path)) from None
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = first.get("ctx", {}).get("error")
        loc = (*first["loc"], *cause.loc) if isinstance(cause, Located) else first["loc"]
        where = ".".join(str(p) for p in loc) or "(top level)"
        raise ManifestError(
            f"{path}:{_line(text, loc)}: {where}: {first['msg']}",
            file=str(path),
            hint=f"fix '{where}' in the manifest ({exc.error_count()} problem(s) in all)",
        ) from None
    expected = manifest.id.replace("-", "_")
    if folder.name != expected:
        raise ManifestError(
            f"{path}: folder {folder.name!r} does not match manifest id {manifest.id!r}",
            file=str(path),
            hint=f"rename the folder to {expected!r}",
        )
    return LoadedIntegration(manifest, folder, module)


def _line(text: str, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of ``text`` (a YAML document) where the value at ``loc`` starts: the deepest
    part of the path the document has (a model's own check points at its mapping)."""
    node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    line = 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((value for name, value in node.value if name.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line
