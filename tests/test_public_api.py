"""The public API is what kosmo_runtime exports; this pins it (like httpx's test_exported_members)."""

import kosmo_runtime

EXPECTED = {
    "Account", "AccountError", "AccountsConfig", "AccountsFileError", "AuthFailed", "BadResponse", "CallContext",
    "CallError", "CallRecord", "ConfigError", "ConnectionDropped", "Demo", "Fault", "HTTPStatusError",
    "IntegrationBug", "InvalidArgument", "KosmoError", "LimitExceeded", "Limits", "LoopbackServer",
    "LuaRuntimeError", "LuaSyntaxError", "ManifestError", "NetworkError", "NotFound", "OutcomeUnknown",
    "PermissionDenied", "RateLimited", "ReplayMismatch", "RetryPolicy", "RunOptions", "RunResult", "Runtime", "ScriptError", "Secret", "Session",
    "ServiceUnavailable", "Simulator", "Store", "State", "StateUnavailable", "MemoryState", "SqliteState", "RedisState", "UpstreamError", "UpstreamNotFound", "UsageError", "WriteRequest",
    "__version__", "route", "ENVELOPE_VERSION", "envelope_schema",
}


def test_exports_are_pinned():
    assert set(kosmo_runtime.__all__) == EXPECTED


def test_exports_present_their_public_module():
    for name in kosmo_runtime.__all__:
        member = getattr(kosmo_runtime, name)
        if isinstance(member, type):
            assert member.__module__ == "kosmo_runtime", name


def test_every_error_class_has_a_distinct_code_or_is_abstract():
    errors = [getattr(kosmo_runtime, n) for n in kosmo_runtime.__all__
              if isinstance(getattr(kosmo_runtime, n), type) and issubclass(getattr(kosmo_runtime, n), kosmo_runtime.KosmoError)]
    concrete = [e for e in errors if "code" in vars(e)]
    codes = [e.code for e in concrete]
    assert len(codes) == len(set(codes))
    assert all(e.__doc__ and e.__doc__.startswith("Raised ") for e in errors)
