"""kosmo-runtime: a sandboxed Lua 5.4 runtime in which AI agents call SaaS integrations.

Everything public is imported from here; the ``_private`` modules may change.

    from kosmo_runtime import Runtime
    result = Runtime().run("return 6 * 7")
    print(result.result)   # 42
"""

import logging

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
    ScriptError,
    ServiceUnavailable,
    UpstreamError,
    UpstreamNotFound,
    UsageError,
)
from ._http import RetryPolicy
from ._limits import Limits
from ._policy import WriteRequest
from ._result import ENVELOPE_VERSION, CallRecord, RunResult, envelope_schema
from ._runtime import Runtime, Session
from ._simulate import ConnectionDropped, Fault, LoopbackServer, Simulator, route
from ._store import Store

__version__ = "0.1.0"

# A library logs, the application decides where logs go (no output unless configured).
logging.getLogger("kosmo_runtime").addHandler(logging.NullHandler())

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
    "NetworkError",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "RateLimited",
    "RetryPolicy",
    "RunResult",
    "Runtime",
    "ScriptError",
    "Secret",
    "Session",
    "ServiceUnavailable",
    "Simulator",
    "Store",
    "UpstreamError",
    "UpstreamNotFound",
    "UsageError",
    "WriteRequest",
    "__version__",
    "envelope_schema",
    "route",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and getattr(_obj, "__module__", "").startswith("kosmo_runtime._"):
        try:
            _obj.__module__ = "kosmo_runtime"
        except (AttributeError, TypeError):
            pass
del _name, _obj
