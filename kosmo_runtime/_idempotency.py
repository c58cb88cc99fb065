"""Idempotency keys: a run retried with the same key never sends one of its writes twice.

A client that retries a run (the same script, after an answer was lost, perhaps on another
replica) passes the same ``idempotency_key``. The run's n-th write is claimed in the state as
``idem:<digest of key>:<n>``; the attempt that wins the claim sends it and records the result. A
later attempt finds the claim and

* recorded for the same function and arguments: gets the recorded result, nothing is sent;
* recorded for another write: ``invalid_argument`` (the key was reused for a different script);
* not recorded (the earlier attempt is still sending it, or stopped while sending): ``outcome_unknown``.

A write the service refused (4xx) or that was never sent (policy, validation, limits, state)
gives its claim back, so a retry may send it. Records expire after ``ttl`` seconds (default a day).

Approval. A write under an ``ask`` policy is asked about only when it is to be sent: its record is looked
up first, and a recorded write is replayed without asking again (it was approved when it was sent). A
``deny`` policy (read-only run, ``writes: deny``) refuses before the record is looked at, replay or not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import (
    AccountError,
    HTTPStatusError,
    InvalidArgument,
    KosmoError,
    NetworkError,
    OutcomeUnknown,
    StateUnavailable,
    UsageError,
)
from ._log import log

if TYPE_CHECKING:
    from ._state import State

__all__ = ["DEFAULT_TTL", "Idempotency"]

DEFAULT_TTL = 86400.0


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _not_applied(exc: KosmoError) -> bool:
    """Whether the failed write surely did not happen (its claim is then given back; any doubt keeps it)."""
    if isinstance(exc, HTTPStatusError):
        return exc.status is not None and exc.status < 500
    return isinstance(exc, (UsageError, AccountError, NetworkError, StateUnavailable))


class Idempotency:
    """The writes of one run under one idempotency key (see the module docstring)."""

    def __init__(self, state: State, key: str, ttl: float | None = None) -> None:
        self._state = state
        self._key = key
        self._prefix = f"idem:{_digest(key)}:"
        self._ttl = ttl if ttl is not None else DEFAULT_TTL
        self._writes = 0

    def once(self, integration: str, account: str, function: str, args: dict[str, Any], send: Callable[[], Any],
             *, replayed: Callable[[], None] | None = None, ask: Callable[[], None] | None = None) -> Any:
        """``send()``'s result, or the result an earlier attempt of this run recorded for this write
        (then ``replayed()`` is called first: nothing is sent).

        ``ask`` (an ``ask`` policy's approval, raising when declined) runs only for a write to be sent: a
        recorded one is replayed unasked; nothing is claimed while the approver thinks.
        """
        self._writes += 1
        slot = f"{self._prefix}{self._writes}"
        fingerprint = _digest(integration, account, function, args)
        label = f"{integration}.{function}"
        if ask is not None:
            recorded = self._state.recall(slot)
            if recorded is not None:
                return self._replay(recorded, fingerprint, label, replayed)
            ask()
        if not self._state.claim(slot, self._ttl):
            recorded = self._state.recall(slot)
            if recorded is None:
                raise OutcomeUnknown(
                    f"{label}: an earlier attempt of this run (idempotency key {self._key!r}) is sending this write, "
                    "or stopped while sending it; it was not sent again",
                    hint="read the object back to see whether the write happened before running again")
            return self._replay(recorded, fingerprint, label, replayed)
        try:
            result = send()
        except KosmoError as exc:
            if _not_applied(exc):
                self._state.release(slot)
            raise
        try:
            self._state.remember(slot, {"fingerprint": fingerprint, "result": result}, self._ttl)
        except StateUnavailable:  # the write happened: its result is the answer; a retry will see the claim unrecorded
            log.warning("%s: sent, but its result could not be recorded for idempotency key %r", label, self._key)
        return result

    def _replay(self, recorded: dict[str, Any], fingerprint: str, label: str,
                replayed: Callable[[], None] | None) -> Any:
        """The recorded result of this write, unless the key's write of that number was another one."""
        if recorded.get("fingerprint") != fingerprint:
            raise InvalidArgument(
                f"{label}: idempotency key {self._key!r} was used by a run whose write #{self._writes} was "
                "different; nothing was sent", hint="use a new idempotency key for a different script")
        if replayed is not None:
            replayed()
        return recorded.get("result")
