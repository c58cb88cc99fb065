"""Approving ``ask`` writes through the MCP client, with elicitation (``elicitation/create``).

A tool call runs its script in a worker thread; when a write needs approval the script
pauses there while the server's event loop sends the client a form naming the integration,
account and function, the arguments (secret-looking fields redacted) and what the write
would send (a dry run of the same call). Accepting with ``approve`` checked sends the write;
declining, cancelling or not answering within the timeout denies it, and so does a client
that does not declare the elicitation capability.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from pydantic import BaseModel, Field

from mcp.server.elicitation import AcceptedElicitation
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.types import ClientCapabilities, ElicitationCapability

from ._errors import PermissionDenied
from ._http import redact
from ._policy import Approver, WriteRequest
from ._runtime import Runtime

__all__ = ["ApprovalForm", "elicitation_approver"]

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
                      "use an MCP client that supports elicitation (protocol 2025-11-25 or earlier), "
                      "or set writes: allow for this account")
    return cannot_ask


def elicitation_approver(runtime: Runtime, ctx: Context[Any, Any], timeout: float) -> Approver:
    """An approver that asks the human at the MCP client of this tool call.

    Call it from the tool's worker thread; the approver it returns may be called from any
    thread of the run (``app.parallel`` branches too) and waits at most ``timeout`` seconds.
    """
    session = ctx.request_context.session
    if not session.check_client_capability(ClientCapabilities(elicitation=ElicitationCapability())):
        return _cannot_ask("this MCP client does not support elicitation, so it cannot ask its user")
    if not session.can_send_request:
        return _cannot_ask(f"this MCP connection (protocol {session.protocol_version}) gives the server no channel "
                           "to ask while a tool runs")
    token = anyio.from_thread.run_sync(anyio.lowlevel.current_token)

    async def ask(message: str) -> bool:
        with anyio.fail_after(timeout):
            answer = await ctx.elicit(message, ApprovalForm)
        return isinstance(answer, AcceptedElicitation) and answer.data.approve

    def approve(request: WriteRequest) -> bool:
        message = describe(request, _preview(runtime, request))
        try:
            approved = anyio.from_thread.run(ask, message, token=token)
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
