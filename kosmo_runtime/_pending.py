"""Pending approvals of ``ask`` writes, kept in the state so that any replica (or ``kosmo approvals``) can
list and decide them while the run that asked waits in its own process.

An approval is a JSON object: ``id``, ``integration``, ``account``, ``function``, ``arguments``
(secret-looking fields redacted), ``message`` (what the human is shown, with what the write would
send), ``asked`` and ``expires`` (Unix seconds) and ``replica`` (host and process that asked).
The run lists it (:func:`ask`), shows it to whoever may answer, and waits for the decision
(:func:`await_decision`); the first :func:`decide` wins. A decision is ``{"approved": bool, "by":
who, "error": why nobody could ask (optional)}``. When no decision comes within the timeout the
approval is withdrawn, so a late answer finds it gone and is told so.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._policy import WriteRequest
    from ._state import State

__all__ = ["BY_CLIENT", "BY_OPERATOR", "ask", "await_decision", "decide"]

BY_CLIENT = "the MCP client's user"
BY_OPERATOR = "an operator (kosmo approvals)"

#: How long a decision waits in its mailbox for the run that asked (it is taken at once when the run waits).
_DECISION_TTL = 60.0
#: A decision posted at the very moment the run's wait ended is in its mailbox: taken within this bound.
_LATE = 1.0
#: The state keeps an approval this long past its ``expires``, so the run that waits for it is the one
#: that withdraws it (an approval the state had dropped already would look decided).
_GRACE = 5.0


def ask(state: State, request: WriteRequest, message: str, timeout: float) -> dict[str, Any]:
    """List a new pending approval of ``request`` for ``timeout`` seconds; the approval. Its id is hex:
    an operator types it after ``kosmo approvals approve``, where a leading ``-`` would read as an option."""
    now = time.time()
    approval = {"id": secrets.token_hex(9), "integration": request.integration, "account": request.account,
                "function": request.function, "arguments": request.arguments, "message": message,
                "asked": round(now, 3), "expires": round(now + timeout, 3),
                "replica": f"{socket.gethostname()}:{os.getpid()}"}
    state.ask_approval(approval, timeout + _GRACE)
    return approval


def await_decision(state: State, approval_id: str, timeout: float) -> dict[str, Any] | None:
    """The decision, waiting at most ``timeout`` seconds; None when none came (the approval is withdrawn)."""
    box = f"decision:{approval_id}"
    decision = state.take(box, timeout)
    if decision is not None or state.withdraw_approval(approval_id):
        return decision
    return state.take(box, _LATE)  # decided as the wait ended: the decision was posted with its removal


def decide(state: State, approval_id: str, approved: bool, by: str, *, error: str | None = None) -> bool:
    """Decide a pending approval; False when it is unknown, expired or already decided."""
    decision: dict[str, Any] = {"approved": approved, "by": by}
    if error is not None:
        decision["error"] = error
    return state.decide_approval(approval_id, decision, _DECISION_TTL)
