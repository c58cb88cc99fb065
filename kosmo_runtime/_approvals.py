"""Approving ``ask`` writes through the MCP client, with elicitation (``elicitation/create``).

A tool call runs its script in a worker thread; when a write needs approval the script
pauses there while the server's event loop sends the client a form naming the integration,
account and function, the arguments (secret-looking fields redacted) and what the write
would send (a dry run of the same call). Accepting with ``approve`` checked sends the write;
declining, cancelling or not answering within the timeout denies it, and so does a client
that does not declare the elicitation capability.

Two ways to ask, by protocol: up to 2025-11-25 the server sends ``elicitation/create`` while the
tool call is open (:func:`_back_channel_approver`); on 2026-07-28 connections, which have no such
back-channel, the tool call ends with an ``input_required`` result carrying the same form, the run
waits in its thread, and the client's retry (with the answer and the echoed ``request_state``)
resumes it (:class:`_Rounds`).
"""

from __future__ import annotations

import json
import math
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from mcp.server.elicitation import AcceptedElicitation, render_elicitation_schema
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CallToolResult,
    ClientCapabilities,
    ElicitationCapability,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    TextContent,
)
from pydantic import BaseModel, Field

from ._errors import PermissionDenied, ServerBusy
from ._http import redact
from ._policy import Approver, WriteRequest
from ._result import RunResult
from ._runtime import Runtime

__all__ = ["ApprovalForm", "Approvals"]

#: A tool call's work: run with this approver, return the tool result.
Work = Callable[[Approver], CallToolResult]

_PREVIEW_CHARS = 2000


class ApprovalForm(BaseModel):
    """What the client's form asks: one checkbox."""

    approve: bool = Field(default=False, title="Send this write",
                          description="Check to let the script send this write; leave unchecked or decline to stop it")


def _denied(request: WriteRequest, reason: str, hint: str) -> PermissionDenied:
    return PermissionDenied(f"{request.integration}.{request.function} {reason}", integration=request.integration,
                            function=request.function, account=request.account, operation="write", hint=hint)


def _cannot_ask(reason: str) -> Approver:
    def cannot_ask(request: WriteRequest) -> bool:
        raise _denied(request, f"is a write that needs approval, and nobody can approve it here: {reason}",
                      "use an MCP client that supports elicitation, or set writes: allow for this account")
    return cannot_ask


class Approvals:
    """Runs tool calls whose ``ask`` writes are approved by the calling client's user."""

    def __init__(self, runtime: Runtime, timeout: float, *, most_waiting: int | None = None) -> None:
        """``most_waiting``: how many runs may wait between 2026-07-28 rounds at once (None: no bound)."""
        self.runtime = runtime
        self.timeout = timeout
        self._rounds = _Rounds(runtime, timeout, most_waiting)

    def run(self, ctx: Context[Any, Any], tool: str, work: Work) -> CallToolResult | InputRequiredResult:
        """``work`` with the approver this call's client allows; called in the tool's worker thread."""
        session = ctx.request_context.session
        if ctx.request_state is not None:
            return self._rounds.resume(ctx, tool)
        if not session.check_client_capability(ClientCapabilities(elicitation=ElicitationCapability())):
            return work(_cannot_ask("this MCP client does not support elicitation, so it cannot ask its user"))
        if session.can_send_request:
            return work(_back_channel_approver(self.runtime, ctx, self.timeout))
        return self._rounds.start(tool, work)


class _Paused:
    """One run in its own thread, between the rounds of a 2026-07-28 tool call."""

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()  # ("ask", (message, answer slot)) / ("done", result)
        self.waiting: queue.Queue[bool] | None = None
        self.finished_at: float | None = None


class _Rounds:
    """Tool calls that end with ``input_required`` while their run waits for the client's answer."""

    def __init__(self, runtime: Runtime, timeout: float, most_waiting: int | None) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self.most_waiting = most_waiting
        self._paused: dict[str, _Paused] = {}
        self._lock = threading.Lock()

    def start(self, tool: str, work: Work) -> CallToolResult | InputRequiredResult:
        ticket, paused = secrets.token_urlsafe(18), _Paused(tool)
        with self._lock:
            self._forget_old()
            waiting = sum(other.finished_at is None for other in self._paused.values())
            if self.most_waiting is not None and waiting >= self.most_waiting:
                return self._busy(waiting)
            self._paused[ticket] = paused

        def ask(message: str) -> bool:
            slot: queue.Queue[bool] = queue.Queue(maxsize=1)
            paused.events.put(("ask", (message, slot)))
            try:
                return slot.get(timeout=self.timeout)
            except queue.Empty:
                raise TimeoutError from None

        approve = _approver(self.runtime, self.timeout, ask)

        def execute() -> None:
            try:
                result = work(approve)
            except Exception as exc:
                result = CallToolResult(content=[TextContent(
                    type="text", text=f"error: the run failed inside kosmo ({type(exc).__name__})")], is_error=True)
            paused.finished_at = time.monotonic()
            paused.events.put(("done", result))

        threading.Thread(target=execute, name=f"kosmo-run-{ticket[:6]}", daemon=True).start()
        return self._next(ticket, paused)

    def resume(self, ctx: Context[Any, Any], tool: str) -> CallToolResult | InputRequiredResult:
        with self._lock:
            paused = self._paused.get(ctx.request_state or "")
        if paused is None or paused.tool != tool:
            return CallToolResult(content=[TextContent(type="text", text=(
                "error: this approval is unknown or has expired (the run it belonged to has ended); "
                "call the tool again"))], is_error=True)
        answer = (ctx.input_responses or {}).get("approve")
        if paused.waiting is not None:
            paused.waiting.put(isinstance(answer, ElicitResult) and answer.action == "accept"
                               and bool((answer.content or {}).get("approve")))
            paused.waiting = None
        return self._next(ctx.request_state or "", paused)

    def _next(self, ticket: str, paused: _Paused) -> CallToolResult | InputRequiredResult:
        """Wait until the run asks (an ``input_required`` result) or ends (its result)."""
        kind, value = paused.events.get()  # the run always ends: its limits bound it
        if kind == "done":
            with self._lock:
                self._paused.pop(ticket, None)
            return value  # type: ignore[no-any-return]
        message, paused.waiting = value
        form = ElicitRequestFormParams(message=message, requested_schema=render_elicitation_schema(ApprovalForm))
        return InputRequiredResult(input_requests={"approve": ElicitRequest(params=form)}, request_state=ticket)

    def _busy(self, waiting: int) -> CallToolResult:
        """The answer when as many runs wait for approvals as the server runs at once: nothing is run."""
        retry_after = float(max(1, math.ceil(self.timeout)))
        error = ServerBusy(f"the server is busy: {waiting} runs are waiting for their writes to be approved, the "
                           "most it keeps", retry_after=retry_after,
                           hint=f"nothing was run; answer the pending approvals, or call the tool again in "
                                f"{retry_after:g} s")
        envelope = RunResult(ok=False, error=error).to_dict()
        return CallToolResult(content=[TextContent(type="text", text=f"error: ServerBusy: {error.message}\n"
                                                   f"hint: {error.hint}")],
                              structured_content=envelope, is_error=True)

    def _forget_old(self) -> None:
        """Drop runs that ended without their client coming back (it timed out or went away)."""
        now = time.monotonic()
        for ticket, paused in list(self._paused.items()):
            if paused.finished_at is not None and now - paused.finished_at > self.timeout:
                del self._paused[ticket]


def _back_channel_approver(runtime: Runtime, ctx: Context[Any, Any], timeout: float) -> Approver:
    """An approver that asks the human at the MCP client of this tool call with ``elicitation/create``
    (the client declared elicitation and the connection can carry server requests).

    Call it from the tool's worker thread; the approver it returns may be called from any
    thread of the run (``app.parallel`` branches too) and waits at most ``timeout`` seconds.
    """
    token = anyio.from_thread.run_sync(anyio.lowlevel.current_token)

    async def ask(message: str) -> bool:
        with anyio.fail_after(timeout):
            answer = await ctx.elicit(message, ApprovalForm)
        return isinstance(answer, AcceptedElicitation) and answer.data.approve

    return _approver(runtime, timeout, lambda message: anyio.from_thread.run(ask, message, token=token))


def _approver(runtime: Runtime, timeout: float, ask: Callable[[str], bool]) -> Approver:
    """An approver showing each write through ``ask`` (which raises TimeoutError when nobody answers in time)."""

    def approve(request: WriteRequest) -> bool:
        try:
            approved = ask(describe(request, _preview(runtime, request)))
        except TimeoutError:
            raise _denied(request, f"was not approved: no answer from the MCP client within {timeout:g} s",
                          "nothing was sent; ask again when someone can answer (kosmo mcp --approval-timeout)") from None
        except (MCPError, ValueError) as exc:  # no back-channel, or an answer that is not the form
            raise _denied(request, f"was not approved: the MCP client could not ask ({exc})",
                          "nothing was sent; use a client that supports elicitation, or set writes: allow") from None
        if not approved:
            raise _denied(request, "was not approved (the MCP client's user declined)",
                          "the write was declined; nothing was sent")
        return True

    return approve


def _preview(runtime: Runtime, request: WriteRequest) -> dict[str, Any] | str:
    """What the write would send: a dry run of the same call (its reads, if any, run)."""
    result = runtime.call(f"{request.integration}.{request.function}", request.arguments, account=request.account,
                          dry_run=True)
    if result.ok and isinstance(result.result, dict) and "would_send" in result.result:
        return dict(redact(result.result["would_send"]))
    if result.error is not None:
        return f"(no dry-run description: {result.error.message})"
    return "(no request would be sent)"


def describe(request: WriteRequest, preview: dict[str, Any] | str) -> str:
    """The message the client shows: who, what, with which arguments, and what would be sent."""
    sent = preview if isinstance(preview, str) else json.dumps(preview, ensure_ascii=False, default=str)
    if len(sent) > _PREVIEW_CHARS:
        sent = sent[:_PREVIEW_CHARS] + " ..."
    return "\n".join([
        "A kosmo script wants to make a write. Approve it?",
        f"integration: {request.integration}",
        f"account: {request.account}",
        f"function: {request.function} (write)",
        f"arguments: {json.dumps(request.arguments, ensure_ascii=False, default=str)}",
        f"would send: {sent}",
    ])
