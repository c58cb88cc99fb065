"""The kosmo error tree. Every failure a caller or a script can see is one of these.

KosmoError                      (base; ``code`` is stable, ``message`` is one line)
├── ScriptError                 the Lua script itself failed
│   ├── LuaSyntaxError          the script does not compile            syntax_error
│   ├── LuaRuntimeError         the script raised an error             runtime_error
│   ├── LimitExceeded           a run limit was hit                    limit_exceeded
│   └── WorkerCrashed           the worker process of the run died     worker_crashed
├── CallError                   an integration call failed (a Lua error table in scripts)
│   ├── UsageError              the script asked for something wrongly, never retryable
│   │   ├── NotFound            unknown integration, function, account or doc   not_found
│   │   ├── InvalidArgument     an argument breaks the function's declaration   invalid_argument
│   │   ├── PermissionDenied    a write refused by policy, read-only or denial  permission_denied
│   │   └── ReplayMismatch      a replayed run sent a request its cassette lacks  replay_mismatch
│   ├── AccountError            the account cannot be used (not configured, missing secret)
│   │                                                                  account_error
│   ├── IntegrationBug          the integration's own code failed (never the script's fault)
│   │                                                                  internal_error
│   ├── StateUnavailable        the shared state (Redis) cannot be reached; nothing was sent
│   │                                                                  state_unavailable
│   └── UpstreamError           the service said no or could not be reached
│       ├── HTTPStatusError     the service answered 4xx/5xx           upstream_error
│       │   ├── AuthFailed      401/403: credentials refused           auth_failed
│       │   ├── UpstreamNotFound  404: the service has no such object  upstream_not_found
│       │   ├── RateLimited     429: slow down (``retry_after``)       rate_limited
│       │   └── ServiceUnavailable  5xx                                service_unavailable
│       ├── NetworkError        connect error or timeout before the request was sent
│       │                                                              network_error
│       ├── OutcomeUnknown      a write may or may not have happened   outcome_unknown
│       └── BadResponse         the body is not what the service documents  bad_response
├── ConfigError                 a configuration file or manifest is wrong  config_error
│   ├── AccountsFileError       the accounts YAML file                 accounts_file_error
│   └── ManifestError           an integration's manifest.yaml         manifest_error
└── ServerBusy                  the MCP server takes no more runs now (``retry_after``)  server_busy

"Upstream said no" (UpstreamError) is kept apart from "the script or integration
is wrong" (UsageError, ConfigError). Every error carries ``code``, ``message``,
an optional ``hint`` (how to fix it) and context fields, and renders to a plain
dict with :meth:`KosmoError.to_dict`; that dict is what JSON output and Lua see.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccountError",
    "AccountsFileError",
    "AuthFailed",
    "BadResponse",
    "CallError",
    "ConfigError",
    "HTTPStatusError",
    "IntegrationBug",
    "InvalidArgument",
    "KosmoError",
    "LimitExceeded",
    "LuaRuntimeError",
    "LuaSyntaxError",
    "ManifestError",
    "NetworkError",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "RateLimited",
    "ReplayMismatch",
    "ScriptError",
    "ServerBusy",
    "ServiceUnavailable",
    "StateUnavailable",
    "UpstreamError",
    "UpstreamNotFound",
    "UsageError",
    "WorkerCrashed",
    "error_table",
]

# Context fields copied into to_dict() when set, in this order.
CONTEXT_FIELDS = (
    "hint", "script", "line", "traceback", "integration", "function", "account",
    "operation", "param", "expected", "got", "status", "service_code", "retryable",
    "retry_after", "limit", "value", "file", "sent", "candidates",
)


class KosmoError(Exception):
    """Raised for every kosmo failure (the base): a stable ``code``, a one-line ``message`` and context."""

    code: ClassVar[str] = "error"
    retryable: bool = False
    # The context (CONTEXT_FIELDS): unset is None.
    script: str | None = None
    line: int | None = None
    traceback: str | None = None
    integration: str | None = None
    function: str | None = None
    account: str | None = None
    operation: str | None = None
    param: str | None = None
    expected: str | None = None
    got: Any = None
    status: int | None = None
    service_code: str | None = None
    retry_after: float | None = None
    limit: str | None = None
    value: Any = None
    file: str | None = None
    sent: Any = None
    candidates: list[str] | None = None

    def __init__(self, message: str, *, hint: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        for key, value in context.items():
            setattr(self, key, value)

    @property
    def type(self) -> str:
        """The error's class name, as scripts and JSON output see it."""
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible description: type, code, message, then the context that is set."""
        data: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        for key in CONTEXT_FIELDS:
            value = getattr(self, key, None)
            if value is not None and not (key == "retryable" and value is False and not isinstance(self, CallError)):
                data[key] = value
        return data

    def __str__(self) -> str:
        return self.message

    def headline(self) -> str:
        """``Type: script:line: message``, the one line a terminal shows (the position only when the error
        has one its message does not already start with, as a call's error raised at a script line)."""
        where = f"{self.script}:{self.line}: " if self.script and self.line else ""
        return f"{self.type}: {'' if self.message.startswith(where) else where}{self.message}"

    @staticmethod
    def from_dict(data: dict[str, Any]) -> KosmoError:
        """The error ``to_dict()`` described (a worker process's envelope, read back in the parent)."""
        pending: list[type[KosmoError]] = [KosmoError]
        cls: type[KosmoError] = KosmoError
        while pending:
            candidate = pending.pop()
            if candidate.__name__ == data.get("type"):
                cls = candidate
                break
            pending += candidate.__subclasses__()
        context = {k: v for k, v in data.items() if k in CONTEXT_FIELDS and k != "hint"}
        error = cls(str(data.get("message", "")), hint=data.get("hint"), **context)
        if error.code != data.get("code", error.code):
            error.code = data["code"]  # type: ignore[misc]
        return error


class ScriptError(KosmoError):
    """Raised when the Lua script itself fails (compile, run or limits)."""


class LuaSyntaxError(ScriptError):
    """Raised when the script does not compile."""

    code = "syntax_error"


class LuaRuntimeError(ScriptError):
    """Raised when the script raises an error that it does not catch."""

    code = "runtime_error"


class LimitExceeded(ScriptError):
    """Raised when a run limit (``limit``, ``value``) is hit; ``pcall`` cannot catch it."""

    code = "limit_exceeded"


class WorkerCrashed(ScriptError):
    """Raised when the worker process running the run died (a crash, its memory cap, or killed from outside); a new one took its place."""

    code = "worker_crashed"


class CallError(KosmoError):
    """Raised when an integration call fails; scripts receive it as a catchable error table."""


class UsageError(CallError):
    """Raised when the script asked for something that cannot work as asked."""


class NotFound(UsageError):
    """Raised for an unknown integration, function, account or doc page."""

    code = "not_found"


class InvalidArgument(UsageError):
    """Raised when an argument breaks the function's declared parameters."""

    code = "invalid_argument"


class PermissionDenied(UsageError):
    """Raised when a write is refused by the account's or the run's policy."""

    code = "permission_denied"


class ReplayMismatch(UsageError):
    """Raised in a replayed run on a request the cassette does not hold (``got``; ``expected`` is what it holds next)."""

    code = "replay_mismatch"


class AccountError(CallError):
    """Raised when an account cannot be used: not configured, or a credential is missing."""

    code = "account_error"


class IntegrationBug(CallError):
    """Raised when an integration's handler itself fails; the details go to the log, not the script."""

    code = "internal_error"


class StateUnavailable(CallError):
    """Raised when the shared state (Redis: rate budgets, records, idempotency) cannot be reached; nothing was sent."""

    code = "state_unavailable"
    retryable = True


class UpstreamError(CallError):
    """Raised when the service refused the request or could not be reached."""


class HTTPStatusError(UpstreamError):
    """Raised when the service answered with a 4xx or 5xx status."""

    code = "upstream_error"


class AuthFailed(HTTPStatusError):
    """Raised on 401/403: the service refused the account's credentials or scope."""

    code = "auth_failed"


class UpstreamNotFound(HTTPStatusError):
    """Raised on 404: the service has no object with that id."""

    code = "upstream_not_found"


class RateLimited(HTTPStatusError):
    """Raised on 429: the service asks to slow down (see ``retry_after``)."""

    code = "rate_limited"
    retryable = True


class ServiceUnavailable(HTTPStatusError):
    """Raised on a 5xx status."""

    code = "service_unavailable"
    retryable = True


class NetworkError(UpstreamError):
    """Raised when the service could not be reached or did not answer in time."""

    code = "network_error"
    retryable = True


class OutcomeUnknown(UpstreamError):
    """Raised when a write failed after it may have reached the service (see ``sent``)."""

    code = "outcome_unknown"


class BadResponse(UpstreamError):
    """Raised when the service's answer is not what it documents (not JSON, wrong shape)."""

    code = "bad_response"


class ConfigError(KosmoError):
    """Raised when a configuration file or an integration manifest is invalid."""

    code = "config_error"


class AccountsFileError(ConfigError):
    """Raised when the accounts file is invalid (``file``, ``line`` and a ``hint``)."""

    code = "accounts_file_error"


class ManifestError(ConfigError):
    """Raised when an integration's manifest is invalid (``file`` and a ``hint``)."""

    code = "manifest_error"


class ServerBusy(KosmoError):
    """Raised when the MCP server is running and queueing all the runs it takes; retry after ``retry_after`` s."""

    code = "server_busy"
    retryable = True


def error_table() -> str:
    """The Markdown table of every error a script or caller can see: type, code and when, from this tree.

    ``lua_docs/runtime.md`` carries it between ``<!-- kosmo:errors -->`` markers; a test keeps them equal.
    """
    rows = ["| type | code | raised when |", "|---|---|---|"]
    pending: list[type[KosmoError]] = [KosmoError]
    while pending:
        cls = pending.pop(0)
        pending[:0] = cls.__subclasses__()
        if "code" in vars(cls) and cls is not KosmoError:
            when = (cls.__doc__ or "").removeprefix("Raised ").rstrip(".").replace("``", "`")
            rows.append(f"| `{cls.__name__}` | `{cls.code}` | {when} |")
    return "\n".join(rows) + "\n"
