"""Approving ``ask`` writes through the MCP client, with elicitation (``elicitation/create``).

A tool call runs its script in a worker thread; when a write needs approval the script
pauses there while the server's event loop sends the client a form naming the integration,
account and function, the arguments (secret-looking fields redacted) and what the write
would send (a dry run of the same call). Accepting with ``approve`` checked sends the write;
declining, cancelling or not answering within the timeout denies it, and so does a client
that does not declare the elicitation capability.

Each write asked about is a pending approval in the runtime's state (``_pending``): listed, and
decided by whoever answers first, the client's user or an operator with ``kosmo approvals`` on any
machine sharing the state. Two ways to ask the client, by protocol: up to 2025-11-25 the server
sends ``elicitation/create`` while the tool call is open (:func:`_back_channel_approver`); on
2026-07-28 connections, which have no such back-channel, the tool call ends with an
``input_required`` result carrying the same form, the run waits in its thread, and the client's
retry (with the answer and the echoed ``request_state``) decides the approval through the state, on
whichever replica it reaches, and waits there for what the run does next (:class:`_Rounds`).
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import threading
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

from . import _pending
from ._errors import KosmoError, PermissionDenied, ServerBusy
from ._http import redact
from ._log import log
from ._policy import Approver, WriteRequest
from ._result import RunResult
from ._runtime import Runtime

__all__ = ["ApprovalForm", "Approvals"]

_MARGIN = 10.0  # seconds a round waits for its run beyond the run's wall-clock limit

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


class _Rounds:
    """Tool calls that end with ``input_required`` while their run waits for the client's answer.

    The run posts what happens to the round's mailbox in the state (``round:<ticket>``: an approval
    to ask, or the tool result at the end); whichever replica receives the client's retry records
    the answer as the approval's decision and waits on that mailbox for what comes next, so the
    retry need not reach the replica where the run waits.
    """

    def __init__(self, runtime: Runtime, timeout: float, most_waiting: int | None) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self.most_waiting = most_waiting
        self._longest = runtime.limits.wall_time + _MARGIN  # a run ends within its wall time: each wait is bounded
        self._running = 0  # runs of this replica started by a round and not finished
        self._lock = threading.Lock()

    def start(self, tool: str, work: Work) -> CallToolResult | InputRequiredResult:
        ticket = secrets.token_urlsafe(18)
        with self._lock:
            if self.most_waiting is not None and self._running >= self.most_waiting:
                return self._busy(self._running)
            self._running += 1
        state, box = self.runtime.state, f"round:{ticket}"
        try:
            state.remember(box, {"tool": tool}, self._longest)  # the round is live (any replica may resume it)
        except KosmoError as exc:  # the state is unreachable: nothing was run
            with self._lock:
                self._running -= 1
            return _error_envelope(exc)

        def show(approval: dict[str, Any]) -> None:
            state.post(box, {"ask": approval["id"], "message": approval["message"]}, self._longest)

        approve = _approver(self.runtime, self.timeout, show)

        def execute() -> None:
            try:
                try:
                    result = work(approve)
                except Exception as exc:
                    result = _failed(f"the run failed inside kosmo ({type(exc).__name__})")
                state.post(box, {"done": result.model_dump(mode="json", by_alias=True, exclude_none=True)},
                           self._longest)
            except KosmoError as exc:  # the state is unreachable: the waiting tool call says so at its deadline
                log.warning("a paused run could not post its result: %s", exc.message)
            finally:
                with self._lock:
                    self._running -= 1

        threading.Thread(target=execute, name=f"kosmo-run-{ticket[:6]}", daemon=True).start()
        return self._next(ticket)

    def resume(self, ctx: Context[Any, Any], tool: str) -> CallToolResult | InputRequiredResult:
        """Record the client's answer as the approval's decision (unless it came too late, or another came
        first: the run went on without it), then wait for what the run does next."""
        ticket, _, approval_id = (ctx.request_state or "").partition(".")
        answer = (ctx.input_responses or {}).get("approve")
        approved = (isinstance(answer, ElicitResult) and answer.action == "accept"
                    and bool((answer.content or {}).get("approve")))
        state = self.runtime.state
        try:
            live = state.recall(f"round:{ticket}")
            if live is None or live.get("tool") != tool:
                return _failed("this approval is unknown or has expired (the run it belonged to has ended); "
                               "call the tool again")
            _pending.decide(state, approval_id, approved, _pending.BY_CLIENT)
        except KosmoError as exc:
            return _failed(f"{exc.message}; the answer was not recorded", hint=exc.hint)
        return self._next(ticket)

    def _next(self, ticket: str) -> CallToolResult | InputRequiredResult:
        """Wait until the run asks (an ``input_required`` result) or ends (its result)."""
        try:
            event = self.runtime.state.take(f"round:{ticket}", self._longest)
        except KosmoError as exc:
            return _failed(exc.message, hint=exc.hint)
        if event is None:
            return _failed(f"the run waiting for this approval did not report back within {self._longest:g} s "
                           "(its server may have stopped)",
                           hint="read back what the script writes to see whether its writes were sent, then call again")
        return self._event(ticket, event)

    def _event(self, ticket: str, event: dict[str, Any]) -> CallToolResult | InputRequiredResult:
        if "done" in event:
            with contextlib.suppress(KosmoError):  # the round is over (else its record expires)
                self.runtime.state.release(f"round:{ticket}")
            return CallToolResult.model_validate(event["done"])
        form = ElicitRequestFormParams(message=event["message"],
                                       requested_schema=render_elicitation_schema(ApprovalForm))
        return InputRequiredResult(input_requests={"approve": ElicitRequest(params=form)},
                                   request_state=f"{ticket}.{event['ask']}")

    def _busy(self, waiting: int) -> CallToolResult:
        """The answer when as many runs wait for approvals as the server runs at once: nothing is run."""
        retry_after = float(max(1, math.ceil(self.timeout)))
        error = ServerBusy(f"the server is busy: {waiting} runs are waiting for their writes to be approved, the "
                           "most it keeps", retry_after=retry_after,
                           hint=f"nothing was run; answer the pending approvals, or call the tool again in "
                                f"{retry_after:g} s")
        return _error_envelope(error)


def _error_envelope(error: KosmoError) -> CallToolResult:
    """A tool result for a run that did not start: the envelope with ``error``."""
    text = f"error: {error.type}: {error.message}" + (f"\nhint: {error.hint}" if error.hint else "")
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=RunResult(ok=False, error=error).to_dict(), is_error=True)


def _failed(message: str, *, hint: str | None = None) -> CallToolResult:
    text = f"error: {message}" + (f"\nhint: {hint}" if hint else "")
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _back_channel_approver(runtime: Runtime, ctx: Context[Any, Any], timeout: float) -> Approver:
    """An approver that asks the human at the MCP client of this tool call with ``elicitation/create``
    (the client declared elicitation and the connection can carry server requests).

    Call it from the tool's worker thread; the approver it returns may be called from any
    thread of the run (``app.parallel`` branches too) and waits at most ``timeout`` seconds for the
    first decision: the client's answer, or an operator's (``kosmo approvals``).
    """
    token = anyio.from_thread.run_sync(anyio.lowlevel.current_token)

    async def elicit(message: str) -> bool:
        with anyio.fail_after(timeout):
            answer = await ctx.elicit(message, ApprovalForm)
        return isinstance(answer, AcceptedElicitation) and answer.data.approve

    def show(approval: dict[str, Any]) -> None:
        def ask_client() -> None:
            try:
                approved, error = anyio.from_thread.run(elicit, approval["message"], token=token), None
            except (MCPError, ValueError) as exc:  # no back-channel, or an answer that is not the form
                approved, error = False, str(exc)
            except BaseException:  # no answer in time, or the call or server ended: the run's own wait decides
                return
            try:
                _pending.decide(runtime.state, approval["id"], approved, _pending.BY_CLIENT, error=error)
            except KosmoError as exc:
                log.warning("the MCP client's answer could not be recorded: %s", exc.message)

        threading.Thread(target=ask_client, name=f"kosmo-ask-{approval['id'][:6]}", daemon=True).start()

    return _approver(runtime, timeout, show)


def _approver(runtime: Runtime, timeout: float, show: Callable[[dict[str, Any]], None]) -> Approver:
    """An approver listing each write as a pending approval in the state, showing it with ``show`` and
    waiting at most ``timeout`` seconds for the first decision (``_pending``)."""

    def approve(request: WriteRequest) -> bool:
        state = runtime.state
        approval = _pending.ask(state, request, describe(request, _preview(runtime, request)), timeout)
        try:
            show(approval)
            decision = _pending.await_decision(state, approval["id"], timeout)
        except BaseException:
            with contextlib.suppress(KosmoError):
                state.withdraw_approval(approval["id"])
            raise
        if decision is None:
            raise _denied(request, f"was not approved: no answer from the MCP client within {timeout:g} s",
                          "nothing was sent; ask again when someone can answer (kosmo mcp --approval-timeout)")
        if decision.get("error"):
            raise _denied(request, f"was not approved: the MCP client could not ask ({decision['error']})",
                          "nothing was sent; use a client that supports elicitation, or set writes: allow")
        if not decision.get("approved"):
            who = "the MCP client's user declined" if decision.get("by") == _pending.BY_CLIENT else \
                f"declined by {decision.get('by', 'someone')}"
            raise _denied(request, f"was not approved ({who})", "the write was declined; nothing was sent")
        return True

    return approve


def _preview(runtime: Runtime, request: WriteRequest) -> dict[str, Any] | str:
    """What the write would send: a dry run of the same call (its reads, if any, run), in this process.

    Never on a worker: the run asking is one, waiting for this answer, and with every worker so
    waiting (one worker, or as many ask writes at once as workers) the preview would wait for a
    free worker until the runs' wall-clock limits."""
    result = runtime._call_here(f"{request.integration}.{request.function}", request.arguments, request.account,
                                runtime.run_options(dry_run=True))
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
