"""What a run returns: ``RunResult`` and one ``CallRecord`` per integration call."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ._errors import KosmoError

__all__ = ["ENVELOPE_VERSION", "CallRecord", "RunResult", "envelope_schema"]

#: Version of the JSON envelope (``RunResult.to_dict()``); ``envelope.schema.json`` describes it.
ENVELOPE_VERSION = 1


@dataclass(slots=True)
class CallRecord:
    """One integration call: who was called, how long it took, and how it ended.

    Argument values are never recorded here (they could carry secrets). ``requests``
    lists the HTTP requests made (method, path, status, duration), retries included.
    ``trace_id``/``span_id`` name the call's span when tracing is on (see ``_tracing``).
    ``replayed`` is True for a write an earlier attempt under the same idempotency key sent: its
    recorded result is the answer and nothing was sent again.
    """

    integration: str
    function: str
    account: str
    operation: str
    duration: float
    ok: bool
    error: str | None = None
    status: int | None = None
    retries: int = 0
    dry_run: bool = False
    run_id: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    trace_id: str | None = None  # the call's OpenTelemetry span, when tracing is on
    span_id: str | None = None
    replayed: bool | None = None  # True: a write not sent again, answered from its idempotency record

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k in _CALL_FIELDS if (v := getattr(self, k)) is not None}  # asdict() deep-copies: 20 µs
        data["duration"] = round(self.duration, 6)  # microseconds: the clock says no more
        data["requests"] = [{**r, "duration": round(r["duration"], 6)} if isinstance(r.get("duration"), float) else r
                            for r in self.requests]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        """The record ``to_dict()`` described."""
        return cls(**data)


_CALL_FIELDS = tuple(f.name for f in fields(CallRecord))


@dataclass
class RunResult:
    """The outcome of ``Runtime.run``.

    ``ok``       the script finished without an error;
    ``result``   its return values as JSON-compatible Python (``None`` for none,
                 the value for one, a list for several);
    ``output``   what ``print`` wrote;
    ``error``    the KosmoError that ended the run (type, message, script, line,
                 Lua traceback), or ``None``;
    ``calls``    one CallRecord per integration call;
    ``duration`` seconds from start to end.
    """

    ok: bool
    result: Any = None
    output: str = ""
    error: KosmoError | None = None
    calls: list[CallRecord] = field(default_factory=list)
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The run as one JSON-compatible dict: the envelope shared by ``kosmo run --json``,
        ``kosmo call --json`` and the MCP tools, described by ``envelope.schema.json``."""
        return {
            "version": ENVELOPE_VERSION,
            "ok": self.ok,
            "result": self.result,
            "output": self.output,
            "error": self.error.to_dict() if self.error else None,
            "calls": [call.to_dict() for call in self.calls],
            "duration": round(self.duration, 6),
        }

    @classmethod
    def from_dict(cls, envelope: dict[str, Any]) -> RunResult:
        """The run an envelope (``to_dict()``) describes, e.g. one a worker process sent back."""
        error = envelope.get("error")
        return cls(ok=envelope["ok"], result=envelope.get("result"), output=envelope.get("output", ""),
                   error=KosmoError.from_dict(error) if error else None,
                   calls=[CallRecord.from_dict(call) for call in envelope.get("calls", ())],
                   duration=envelope.get("duration", 0.0))

    def raise_for_error(self) -> RunResult:
        """Raise the run's error if it failed; return the result otherwise."""
        if self.error is not None:
            raise self.error
        return self


def envelope_schema() -> dict[str, Any]:
    """The JSON Schema of ``RunResult.to_dict()`` (``kosmo_runtime/envelope.schema.json``)."""
    import json
    from importlib import resources

    schema: dict[str, Any] = json.loads(resources.files(__package__).joinpath("envelope.schema.json").read_text(encoding="utf-8"))
    return schema
