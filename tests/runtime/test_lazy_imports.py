"""Start-up stays lean: a command imports only what it needs (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("httpx", "pydantic", "yaml", "mcp", "kosmo_runtime._manifest", "kosmo_runtime._simulate", "kosmo_runtime._demo",
         "kosmo_runtime._examples", "statistics", "kosmo_runtime._workers", "kosmo_runtime._cassette", "opentelemetry")


def _imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("code", [
    "import kosmo_runtime",
    "from kosmo_runtime._cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "from kosmo_runtime._cli import main\nmain(['run', '-e', 'return 1'])",
    "from kosmo_runtime import Runtime\nassert Runtime().run('return 6 * 7').result == 42",
])
def test_nothing_heavy_is_imported_before_it_is_needed(code: str) -> None:
    assert _imported_after(code).isdisjoint(HEAVY)


@pytest.mark.skipif(not (sys.platform.startswith("linux") and os.environ.get("HOME", "").startswith("/")),
                    reason="the per-user folders are found without platformdirs on Linux with an absolute HOME")
def test_a_one_line_run_finds_its_folders_and_clock_without_their_libraries() -> None:
    imported = _imported_after("from kosmo_runtime._cli import main\nmain(['run', '-e', 'return 1'])")
    assert imported.isdisjoint({"platformdirs", "datetime", "kosmo_runtime._policy"})


def test_public_names_still_import_on_first_use() -> None:
    modules = _imported_after("import kosmo_runtime\nkosmo_runtime.Demo\nkosmo_runtime.RetryPolicy")
    assert "kosmo_runtime._demo" in modules


def test_an_integration_call_loads_the_call_layer() -> None:
    code = ("from kosmo_runtime import Runtime\n"
            "r = Runtime(store=':memory:')\n"
            "assert r.run('return app.integrations.whereby ~= nil').result is True")
    assert "kosmo_runtime._manifest" in _imported_after(code)
