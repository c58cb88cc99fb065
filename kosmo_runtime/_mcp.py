"""``kosmo mcp``: the runtime as an MCP server, over stdio or streamable HTTP on loopback.

Tools: ``lua_list_docs``, ``lua_search_docs``, ``lua_read_doc`` (the reference scripts read),
``execute_lua`` (run a script) and ``call_integration`` (one call without Lua); with
``expose_functions`` also one tool per integration function, its input schema generated
from the manifest (write functions only with ``allow_writes``).

Over HTTP (``_mcp_http``) clients need the bearer token; runs in flight are bounded by a
:class:`RunGate` on both transports (``ServerBusy`` with ``retry_after`` beyond it).

``execute_lua``, ``call_integration`` and the function tools return the result envelope
(``RunResult.to_dict()``, ``envelope.schema.json``) as structured content, plus a short text
rendering for clients that only show text. A failed script, a failed call or a limit hit is a
tool result with ``isError`` set; the server keeps serving. The server uses the Runtime it is
given, so the accounts file, write policies, limits and audit log are those of ``kosmo run``;
an ``ask`` write asks the human through the client with elicitation (``_approvals.py``), and
is denied when the client cannot ask.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.request_state import RequestStateSecurity
from mcp.types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import ConfigDict, Field

from . import __version__
from ._approvals import Approvals
from ._docs import MAX_QUERY_BYTES
from ._errors import InvalidArgument, KosmoError, ServerBusy
from ._manifest import Manifest, ParamSpec
from ._mcp_gate import RunGate
from ._mcp_http import HttpOptions, serve_http
from ._options import RunOptions
from ._result import RunResult, envelope_schema
from ._runtime import Runtime

__all__ = ["build_server", "function_tool_schema", "render_envelope", "serve"]

INSTRUCTIONS = """\
kosmo runs Lua 5.4 scripts that call SaaS integrations (webinars, meetings, bookings, video) \
with accounts configured on this machine; scripts never see credentials.

Work in this order, and never guess an integration, function or parameter name:
1. lua_list_docs (or lua_search_docs with a few keywords) to find the pages;
2. lua_read_doc("runtime") once, then lua_read_doc("integrations.<name>") or \
lua_read_doc("integrations.<name>.<function>") for the exact signature;
3. execute_lua with a script that does the whole job (loops, filtering, several calls) and \
returns what you need, or call_integration for one call.

Results come back as {ok, result, output, error, calls, duration}; on failure error has type, \
message, hint and the script line. Each script runs in a fresh sandbox with limits \
(instructions, memory, wall time, output, calls); nothing survives between runs."""

_DOC_FLOW = "Never guess names: list, then read, then execute."

#: How a tool call runs its work with the server's options and this call's approver, through the run gate.
_Approved = Callable[[Context[Any, Any], str, Callable[[RunOptions], CallToolResult]],
                     Awaitable["CallToolResult | InputRequiredResult"]]

_CALL_LINES = 20  # integration calls listed in the text rendering; the structured content has all

#: The ``idempotency_key`` argument of the tools that may write: its schema and its docs (README's tool table).
IDEMPOTENCY_KEY: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": 200,
    "description": "Same key on a retry: writes already sent under it are not sent again (calls[].replayed)",
}


class _PassThrough(ArgModelBase):
    """Arguments of a per-function tool, passed through as given: the runtime validates them
    against the manifest, with messages naming the parameter and the fix."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# -- rendering -----------------------------------------------------------------------------


def render_envelope(envelope: dict[str, Any]) -> str:
    """A short text rendering of a result envelope, for clients that show text only."""
    lines: list[str] = []
    calls = envelope.get("calls") or []
    replayed = sum(bool(call.get("replayed")) for call in calls)
    summary = (f"{len(calls)} integration call{'' if len(calls) == 1 else 's'}"
               + (f", {replayed} write{'' if replayed == 1 else 's'} replayed, not sent again" if replayed else "")
               + f", {envelope.get('duration', 0):.3f} s")
    error = envelope.get("error")
    if envelope.get("ok"):
        lines.append(f"ok ({summary})")
    else:
        error = error or {}
        lines.append(f"error: {error.get('type', 'Error')}: {error.get('message', '')}  ({summary})")
        if error.get("hint"):
            lines.append(f"hint: {error['hint']}")
        details = {k: v for k, v in error.items()
                   if k not in ("type", "code", "message", "hint", "traceback", "script", "line")}
        if details:
            lines.append("details: " + json.dumps(details, ensure_ascii=False, default=str))
        if error.get("traceback"):
            lines.append(error["traceback"].rstrip())
    if envelope.get("output"):
        lines += ["--- output ---", envelope["output"].rstrip("\n")]
    if envelope.get("ok") and envelope.get("result") is not None:
        result = envelope["result"]
        lines += ["--- result ---", result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)]
    if calls:
        lines.append("--- calls ---")
        for call in calls[:_CALL_LINES]:
            status = f" {call['status']}" if call.get("status") is not None else ""
            outcome = "ok" if call.get("ok") else f"failed ({call.get('error', 'error')})"
            dry = " dry-run" if call.get("dry_run") else ""
            replay = (" (replayed: an earlier attempt with this idempotency key sent it; not sent again)"
                      if call.get("replayed") else "")
            lines.append(f"{call['integration']}.{call['function']} [{call['account']}] {call['operation']}{dry}: "
                         f"{outcome}{status}, {call['duration']:.3f} s{replay}")
        if len(calls) > _CALL_LINES:
            lines.append(f"... and {len(calls) - _CALL_LINES} more (see the structured content)")
    return "\n".join(lines)


def _envelope_result(result: RunResult) -> CallToolResult:
    envelope = result.to_dict()
    return CallToolResult(content=[TextContent(type="text", text=render_envelope(envelope))],
                          structured_content=envelope, is_error=not result.ok)


def _error_result(error: KosmoError) -> CallToolResult:
    text = f"error: {error.headline()}" + (f"\nhint: {error.hint}" if error.hint else "")
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content={"error": error.to_dict()},
                          is_error=True)


def _bad_idempotency_key(tool: str, key: Any) -> CallToolResult | None:
    """The envelope's error for an ``idempotency_key`` that is not 1 to 200 characters of text, else None."""
    if key is None or (isinstance(key, str) and 1 <= len(key) <= IDEMPOTENCY_KEY["maxLength"]):
        return None
    shown = f"{len(key):,} characters" if isinstance(key, str) else f"a {type(key).__name__}"
    return _envelope_result(RunResult(ok=False, error=InvalidArgument(
        f"{tool}: idempotency_key must be a string of 1 to {IDEMPOTENCY_KEY['maxLength']} characters, not {shown}; "
        "nothing was run", param="idempotency_key",
        hint='pass one key per job and the same key on its retries, e.g. "idempotency_key": "invite-2026-12-03-42"')))


def _keyed(options: RunOptions, key: str | None) -> RunOptions:
    """The run's options with the tool call's idempotency key (if it gave one)."""
    return options if key is None else options.replace(idempotency_key=key)


def _text_result(text: str, structured: dict[str, Any] | None = None) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


# -- schemas from manifests ----------------------------------------------------------------------


def _param_schema(param: ParamSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": param.type, "description": param.description}
    if param.enum is not None:
        schema["enum"] = list(param.enum)
    if param.minimum is not None:
        schema["minimum"] = int(param.minimum) if param.type == "integer" and param.minimum.is_integer() else param.minimum
    if param.maximum is not None:
        schema["maximum"] = int(param.maximum) if param.type == "integer" and param.maximum.is_integer() else param.maximum
    bounds = {"string": ("minLength", "maxLength"), "array": ("minItems", "maxItems")}.get(param.type)
    if bounds is not None:
        if param.min_length is not None:
            schema[bounds[0]] = param.min_length
        if param.max_length is not None:
            schema[bounds[1]] = param.max_length
    if param.items is not None:
        schema["items"] = {"type": param.items, **({"enum": list(param.item_enum)} if param.item_enum else {})}
    if param.format is not None:
        schema["format"] = param.format
    if param.default is not None:
        schema["default"] = param.default
    if param.example is not None:
        schema["examples"] = [param.example]
    return schema


def account_parameter(manifest: Manifest, function: str) -> str:
    """The name of the per-function tool's account argument (``account`` unless a parameter has it)."""
    params = manifest.functions[function].params
    return next(name for name in ("account", "kosmo_account", "_account") if name not in params)


def idempotency_parameter(manifest: Manifest, function: str) -> str:
    """The name of a write function tool's idempotency key argument (``idempotency_key`` unless a parameter has it)."""
    params = manifest.functions[function].params
    return next(name for name in ("idempotency_key", "kosmo_idempotency_key") if name not in params)


def function_tool_schema(manifest: Manifest, function: str, accounts: list[str] | None = None) -> dict[str, Any]:
    """The JSON Schema of a function's arguments, generated from its manifest declaration.

    Adds an optional account argument (``account`` unless the function has a parameter of that name)
    and, for a write, an optional idempotency key (:data:`IDEMPOTENCY_KEY`, see :func:`idempotency_parameter`).
    """
    spec = manifest.functions[function]
    properties = {name: _param_schema(param) for name, param in spec.params.items()}
    account: dict[str, Any] = {"type": "string",
                               "description": "Account to use (configured on this machine); default: the integration's default account"}
    if accounts:
        account["enum"] = list(dict.fromkeys(["default", *accounts]))
    properties[account_parameter(manifest, function)] = account
    if spec.operation == "write":
        properties[idempotency_parameter(manifest, function)] = dict(IDEMPOTENCY_KEY)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    required = [name for name, param in spec.params.items() if param.required]
    if required:
        schema["required"] = required
    return schema


# -- the server --------------------------------------------------------------------------------------


def build_server(runtime: Runtime, *, options: RunOptions | None = None, expose_functions: bool = False,
                 allow_writes: bool = False, approval_timeout: float = 60.0, gate: RunGate | None = None,
                 request_state_key: str | None = None) -> MCPServer:
    """An MCP server answering with ``runtime`` (its accounts, policies, limits and audit log).

    ``expose_functions`` adds one tool per integration function; write functions only with
    ``allow_writes`` (they remain subject to the account's policy). ``options`` (``RunOptions``, e.g.
    ``dry_run``/``read_only`` as ``kosmo run --dry-run`` / ``--read-only``) apply to every run and call;
    the approver of each is the calling client (elicitation). An ``ask`` write waits
    at most ``approval_timeout`` seconds (and never past the run's wall-clock limit) for the client's answer.
    Runs and calls pass ``gate`` (default: 8 at once, 32 waiting); beyond it they answer ``ServerBusy``.
    ``request_state_key`` (at least 32 characters) seals the 2026-07-28 ``requestState``; replicas that share
    it resume one another's rounds (default: a key of this process only).
    """
    options = options or RunOptions()
    merged = runtime.run_options(options)  # what a run gets, the Runtime's own policy included
    writes_possible, read_only = merged.may_write, merged.write_policy == "deny"
    gate = gate or RunGate(longest=runtime.limits.wall_time)
    # A 2026-07-28 run waiting for its approval has left the gate: as many may wait as the gate admits.
    approvals = Approvals(runtime, min(approval_timeout, runtime.limits.wall_time),
                          most_waiting=gate.running + gate.waiting)

    def approve_through_client(ctx: Context[Any, Any], tool: str,
                               work: Callable[[RunOptions], CallToolResult]) -> CallToolResult | InputRequiredResult:
        """``work(options)`` with the server's options, plus an approver asking this call's client."""
        if not writes_possible:
            return work(options)
        return approvals.run(ctx, tool, lambda approve: work(options.replace(approve=approve)))

    async def approved(ctx: Context[Any, Any], tool: str,
                       work: Callable[[RunOptions], CallToolResult]) -> CallToolResult | InputRequiredResult:
        """The work in a worker thread once the gate admits it; an approval's answer resumes its run at once."""
        if ctx.request_state is not None:  # the run was admitted and is waiting for this answer
            return await anyio.to_thread.run_sync(approve_through_client, ctx, tool, work)
        answer = await gate.run(lambda: approve_through_client(ctx, tool, work))
        return _envelope_result(RunResult(ok=False, error=answer)) if isinstance(answer, ServerBusy) else answer
    docs = runtime.docs

    def lua_list_docs() -> CallToolResult:
        pages = docs.list()
        text = "\n".join(f"{p['path']}: {p['title']}: {p['summary']}" for p in pages)
        return _text_result(text + '\n\nRead one with lua_read_doc(path), e.g. lua_read_doc("runtime").',
                            {"pages": pages})

    def lua_search_docs(
        query: Annotated[str, Field(description="Keywords, e.g. 'webinar sessions'",
                                    json_schema_extra={"maxLength": MAX_QUERY_BYTES})],
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> CallToolResult:
        try:
            hits = docs.search(query, limit)
        except KosmoError as exc:
            return _error_result(exc)
        if not hits:
            return _text_result(f"no docs match {query!r}; try other words, or lua_list_docs", {"hits": []})
        text = "\n".join(f"{h['path']}: {h['summary']}" for h in hits)
        return _text_result(text + "\n\nRead a hit with lua_read_doc(path).", {"hits": hits})

    def lua_read_doc(
        path: Annotated[str, Field(description="'runtime', 'integrations.<name>' or 'integrations.<name>.<function>'")],
    ) -> CallToolResult:
        try:
            return _text_result(docs.read(path))
        except KosmoError as exc:
            return _error_result(exc)

    async def execute_lua(
        code: Annotated[str | None, Field(description="Lua 5.4 source; `return` what you need")] = None,
        idempotency_key: str | None = None,
        *,
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        if code is None:  # answered with the envelope's error, not the SDK's validation text
            return _envelope_result(RunResult(ok=False, error=InvalidArgument(
                "execute_lua needs 'code', the Lua source to run", param="code",
                hint='call it as execute_lua {"code": "return app.integrations.whereby.list_rooms{limit = 2}"}')))
        if (bad := _bad_idempotency_key("execute_lua", idempotency_key)) is not None:
            return bad
        return await approved(ctx, "execute_lua", lambda run: _envelope_result(
            runtime.run(code, name="script.lua", options=_keyed(run, idempotency_key))))

    async def call_integration(
        function: Annotated[str, Field(description="e.g. 'whereby.list_rooms'")],
        arguments: Annotated[dict[str, Any], Field(description="Named arguments")] = {},  # noqa: B006 - copied by pydantic
        account: Annotated[str | None, Field(description="Default: the integration's default account")] = None,
        idempotency_key: str | None = None,
        *,
        ctx: Context[Any, Any],
    ) -> CallToolResult | InputRequiredResult:
        if (bad := _bad_idempotency_key("call_integration", idempotency_key)) is not None:
            return bad
        return await approved(ctx, "call_integration", lambda run: _envelope_result(
            runtime.call(function, arguments, account=account, options=_keyed(run, idempotency_key))))

    docs_hints = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
    run_hints = ToolAnnotations(read_only_hint=not writes_possible, destructive_hint=writes_possible,
                                idempotent_hint=False, open_world_hint=True)
    policy = ("every write is denied (read-only server)" if read_only else
              "writes are described, not sent (dry-run server)" if merged.dry_run else
              "writes follow each account's policy ('ask': your user is asked)")
    tools = [
        _tool(lua_list_docs, docs_hints, "List the reference pages (runtime, each integration). Start here. " + _DOC_FLOW),
        _tool(lua_search_docs, docs_hints, "Search pages and single functions by keywords; read hits with lua_read_doc. "
              + _DOC_FLOW),
        _tool(lua_read_doc, docs_hints, "Read a reference page (Markdown). 'runtime' explains scripts; "
              "'integrations.<name>' starts with typed signatures of its functions; '.<function>' adds parameters, "
              "result and examples. " + _DOC_FLOW),
        _tool(execute_lua, run_hints, "Run a Lua 5.4 script in a fresh sandbox; returns {ok, result, output, error, calls}. "
              "Call app.integrations.<name>.<function>{arg = value} with names from lua_read_doc; do the whole job in "
              f"one script (loops, app.parallel) and return only what you need. {policy}. " + _DOC_FLOW,
              output_schema=listing_schema()),
        _tool(call_integration, run_hints, "One integration call without Lua, e.g. function='whereby.list_rooms', "
              f"arguments={{\"limit\": 5}}; same result as execute_lua ({policy}). Read its doc first.",
              output_schema=listing_schema()),
    ]
    _advertise_required_string(next(t for t in tools if t.name == "execute_lua"), "code")
    for tool in tools[3:5]:  # execute_lua, call_integration: the declared schema, not pydantic's anyOf-null
        tool.parameters["properties"]["idempotency_key"] = dict(IDEMPOTENCY_KEY)
    if expose_functions:
        tools += _function_tools(runtime, approved, include_writes=allow_writes and not read_only)
    security = RequestStateSecurity(keys=[request_state_key]) if request_state_key else None
    return MCPServer("kosmo", title="kosmo Lua runtime", instructions=INSTRUCTIONS, version=__version__,
                     tools=tools, log_level="WARNING", request_state_security=security)


def _advertise_required_string(tool: Tool, name: str) -> None:
    """Show ``name`` as a required string in the tool's schema while the function itself takes a missing one
    (and answers it with the envelope's error instead of the SDK's validation text)."""
    schema = tool.parameters["properties"][name]
    schema.pop("default", None)
    schema.pop("anyOf", None)
    schema["type"] = "string"
    tool.parameters["required"] = [name]


def _tool(fn: Callable[..., Any], annotations: ToolAnnotations, description: str, *,
          output_schema: dict[str, Any] | None = None) -> Tool:
    tool = Tool.from_function(fn, description=description, annotations=annotations, structured_output=False)
    tool.parameters = _untitled(tool.parameters)  # pydantic's titles repeat the names: not worth their tokens
    if output_schema is not None:
        # Advertised to clients (which check structured results against it); the envelope is built, not parsed.
        tool.fn_metadata.output_schema = output_schema
    return tool


@functools.cache
def listing_schema() -> dict[str, Any]:
    """The envelope's schema as tools advertise it: the top level of ``envelope.schema.json`` (every
    envelope validates against it), without the nested definitions that would cost ~1,200 tokens per tool."""
    full = envelope_schema()
    properties = {}
    for name, spec in full["properties"].items():
        kinds = [branch.get("type", "object") for branch in spec.get("oneOf", ())]
        brief = {key: spec[key] for key in ("type", "const") if key in spec}
        properties[name] = {"type": kinds} if kinds else brief
    return {"type": "object", "description": f"{full['title']} (full schema: kosmo_runtime/envelope.schema.json)",
            "required": full["required"], "properties": properties}


def _untitled(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {key: _untitled(value) for key, value in schema.items()
                if not (key == "title" and isinstance(value, str))}
    if isinstance(schema, list):
        return [_untitled(item) for item in schema]
    return schema


def _function_tools(runtime: Runtime, approved: _Approved, *, include_writes: bool) -> list[Tool]:
    tools = []
    for ident in runtime.catalog.names():
        loaded = runtime.catalog.find(ident)
        if loaded is None:
            continue
        manifest = loaded.manifest
        accounts = runtime.accounts.account_names(ident)
        for name, spec in manifest.functions.items():
            if spec.operation == "write" and not include_writes:
                continue
            tools.append(_function_tool(runtime, manifest, name, accounts, approved))
    return tools


def _function_tool(runtime: Runtime, manifest: Manifest, name: str, accounts: list[str],
                   approved: _Approved) -> Tool:
    spec = manifest.functions[name]
    account_key = account_parameter(manifest, name)
    target = f"{manifest.id}.{name}"
    write = spec.operation == "write"
    key_name = idempotency_parameter(manifest, name) if write else None

    async def call(ctx: Context[Any, Any], **arguments: Any) -> CallToolResult | InputRequiredResult:
        account = arguments.pop(account_key, None)
        key = arguments.pop(key_name, None) if key_name else None
        if (bad := _bad_idempotency_key(manifest.full_name(name), key)) is not None:
            return bad
        return await approved(ctx, manifest.full_name(name), lambda run: _envelope_result(
            runtime.call(target, arguments, account=account, options=_keyed(run, key))))

    description = (f"{manifest.name}: {spec.description} ({spec.operation}; the same as "
                   f"call_integration(function='{target}'); full doc: lua_read_doc('integrations.{manifest.id}.{name}'); "
                   f"returns {spec.returns} in the result envelope's 'result')")
    annotations = ToolAnnotations(title=f"{manifest.name}: {name}", read_only_hint=not write, destructive_hint=write,
                                  idempotent_hint=not write, open_world_hint=True)
    return Tool(fn=call, name=manifest.full_name(name), title=f"{manifest.name}: {name}", description=description,
                parameters=function_tool_schema(manifest, name, accounts),
                fn_metadata=FuncMetadata(arg_model=_PassThrough, output_schema=listing_schema()),
                is_async=True, context_kwarg="ctx", annotations=annotations)


def serve(runtime: Runtime, *, http: HttpOptions | None = None, **options: Any) -> None:
    """Serve until the client disconnects (stdio) or the process is interrupted (HTTP, see ``_mcp_http``).

    Over HTTP with a token, the 2026-07-28 ``requestState`` is sealed under a key derived from the token,
    so every replica given the same token accepts the rounds another one started.
    """
    if http is not None and http.token is not None:
        options["request_state_key"] = hashlib.sha256(b"kosmo mcp request-state key:" + http.token.value.encode()).hexdigest()
    server = build_server(runtime, **options)
    if http is None:
        server.run("stdio")
        return
    serve_http(server, http)
