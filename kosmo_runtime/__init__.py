"""kosmo-runtime: a sandboxed Lua 5.4 runtime in which AI agents call SaaS integrations.

Everything public is imported from here; the ``_private`` modules may change.

    from kosmo_runtime import Runtime
    result = Runtime().run("return 6 * 7")
    print(result.result)   # 42
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Where each public name lives. The names are imported on first use (module ``__getattr__``), so that
#: ``import kosmo_runtime`` or ``kosmo --help`` does not pay for httpx, pydantic, yaml or the simulators.
_EXPORTS = {
    "._accounts": ("Account", "AccountsConfig", "Secret"),
    "._calls": ("CallContext",),
    "._demo": ("Demo",),
    "._errors": ("AccountError", "AccountsFileError", "AuthFailed", "BadResponse", "CallError", "ConfigError",
                 "HTTPStatusError", "IntegrationBug", "InvalidArgument", "KosmoError", "LimitExceeded",
                 "LuaRuntimeError", "LuaSyntaxError", "ManifestError", "NetworkError", "NotFound", "OutcomeUnknown",
                 "PermissionDenied", "RateLimited", "ReplayMismatch", "ScriptError", "ServiceUnavailable",
                 "StateUnavailable", "UpstreamError",
                 "UpstreamNotFound", "UsageError"),
    "._retry": ("RetryPolicy",),
    "._limits": ("Limits",),
    "._options": ("RunOptions",),
    "._policy": ("WriteRequest",),
    "._result": ("ENVELOPE_VERSION", "CallRecord", "RunResult", "envelope_schema"),
    "._runtime": ("Runtime", "Session"),
    "._simulate": ("ConnectionDropped", "Fault", "LoopbackServer", "Simulator", "route"),
    "._state": ("MemoryState", "SqliteState", "State"),
    "._state_redis": ("RedisState",),
    "._store": ("Store",),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "ENVELOPE_VERSION",
    "Account",
    "AccountError",
    "AccountsConfig",
    "AccountsFileError",
    "AuthFailed",
    "BadResponse",
    "CallContext",
    "CallError",
    "CallRecord",
    "ConfigError",
    "ConnectionDropped",
    "Demo",
    "Fault",
    "HTTPStatusError",
    "IntegrationBug",
    "InvalidArgument",
    "KosmoError",
    "LimitExceeded",
    "Limits",
    "LoopbackServer",
    "LuaRuntimeError",
    "LuaSyntaxError",
    "ManifestError",
    "MemoryState",
    "NetworkError",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "RateLimited",
    "RedisState",
    "ReplayMismatch",
    "RetryPolicy",
    "RunOptions",
    "RunResult",
    "Runtime",
    "ScriptError",
    "Secret",
    "ServiceUnavailable",
    "Session",
    "Simulator",
    "SqliteState",
    "State",
    "StateUnavailable",
    "Store",
    "UpstreamError",
    "UpstreamNotFound",
    "UsageError",
    "WriteRequest",
    "__version__",
    "envelope_schema",
    "route",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'kosmo_runtime' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    if getattr(value, "__module__", "").startswith("kosmo_runtime._"):
        try:
            value.__module__ = "kosmo_runtime"
        except (AttributeError, TypeError):
            pass
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from ._accounts import Account, AccountsConfig, Secret
    from ._calls import CallContext
    from ._demo import Demo
    from ._errors import (
        AccountError,
        AccountsFileError,
        AuthFailed,
        BadResponse,
        CallError,
        ConfigError,
        HTTPStatusError,
        IntegrationBug,
        InvalidArgument,
        KosmoError,
        LimitExceeded,
        LuaRuntimeError,
        LuaSyntaxError,
        ManifestError,
        NetworkError,
        NotFound,
        OutcomeUnknown,
        PermissionDenied,
        RateLimited,
        ReplayMismatch,
        ScriptError,
        ServiceUnavailable,
        StateUnavailable,
        UpstreamError,
        UpstreamNotFound,
        UsageError,
    )
    from ._limits import Limits
    from ._options import RunOptions
    from ._policy import WriteRequest
    from ._result import ENVELOPE_VERSION, CallRecord, RunResult, envelope_schema
    from ._retry import RetryPolicy
    from ._runtime import Runtime, Session
    from ._simulate import ConnectionDropped, Fault, LoopbackServer, Simulator, route
    from ._state import MemoryState, SqliteState, State
    from ._state_redis import RedisState
    from ._store import Store
