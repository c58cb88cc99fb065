"""Write permissions: per account (accounts file) and per run (``--read-only``, ``writes=``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import PermissionDenied

if TYPE_CHECKING:
    from ._accounts import Account, WritePolicy

__all__ = ["Approver", "WriteRequest", "ask_approval", "authorize", "strictest"]

_STRICTNESS = {"allow": 0, "ask": 1, "deny": 2}


@dataclass(frozen=True)
class WriteRequest:
    """What an approver is asked about: one write call (arguments with secrets redacted)."""

    integration: str
    function: str
    account: str
    arguments: dict[str, Any]

    def describe(self) -> str:
        return f"{self.integration}.{self.function} on account '{self.account}' with {self.arguments}"


Approver = Callable[[WriteRequest], bool]


def strictest(*policies: WritePolicy | None) -> WritePolicy:
    """The most restrictive of the given policies (``None`` ignored; all ``None``: allow)."""
    chosen = [p for p in policies if p is not None]
    return max(chosen, key=_STRICTNESS.__getitem__) if chosen else "allow"


def authorize(account: Account, request: WriteRequest, *, run_policy: WritePolicy | None,
              approve: Approver | None, dry_run: bool, ask: bool = True) -> WritePolicy:
    """Raise PermissionDenied unless the write may go ahead; returns the policy applied.

    In a dry run nothing is sent, so ``ask`` does not ask; ``deny`` still refuses. With ``ask=False``
    an ``ask`` policy is returned unasked: the caller asks (:func:`ask_approval`) only if the write is
    to be sent (a write an earlier attempt under the run's idempotency key sent is replayed unasked).
    """
    policy = strictest(account.writes, run_policy)
    label = f"{request.integration}.{request.function}"
    if policy == "deny":
        if run_policy == "deny":
            reason, hint = "this run is read-only", ("to allow writes, start the run without --read-only "
                                                      "(Python: without read_only=True or writes='deny')")
        else:
            reason = f"account '{account.name}' has writes: deny"
            hint = "use an account that allows writes, or change 'writes' for this account in the accounts file"
        raise PermissionDenied(f"{label} is a write and {reason}", integration=request.integration,
                               function=request.function, account=account.name, operation="write", hint=hint)
    if policy == "ask" and not dry_run and ask:
        ask_approval(request, approve)
    return policy


def ask_approval(request: WriteRequest, approve: Approver | None) -> None:
    """Raise PermissionDenied unless ``approve`` is given and approves ``request``."""
    label = f"{request.integration}.{request.function}"
    where = {"integration": request.integration, "function": request.function, "account": request.account,
             "operation": "write"}
    if approve is None:
        raise PermissionDenied(
            f"{label} is a write that needs approval, and nobody can approve it here (no terminal, no approver)",
            hint="run 'kosmo run' on a terminal to be asked, pass approve= to Runtime.run, or set writes: allow",
            **where)
    if not approve(request):
        raise PermissionDenied(f"{label} was not approved", hint="the write was declined; nothing was sent", **where)
