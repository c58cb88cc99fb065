"""Integrations are written against one public module, ``kosmo_runtime.integration``, which stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import kosmo_runtime
import kosmo_runtime.integration as integration

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION_TREES = [ROOT / "integrations", ROOT / "tests" / "fixtures" / "integrations"]


def _kosmo_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a ``kosmo_runtime`` module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [(node.lineno, name) for name in names if name.split(".")[0] == "kosmo_runtime"]
    return found


def test_integrations_import_only_the_authoring_api() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for tree in INTEGRATION_TREES
        for path in sorted(tree.rglob("*.py"))
        for line, module in _kosmo_imports(path)
        if module != "kosmo_runtime.integration"
    ]
    assert not offending, "use `from kosmo_runtime.integration import ...`:\n" + "\n".join(offending)


def test_the_check_sees_private_and_facade_imports(tmp_path: Path) -> None:
    sample = tmp_path / "hooks.py"
    sample.write_text("import kosmo_runtime\nfrom kosmo_runtime._calls import CallContext\n"
                      "from kosmo_runtime.integration import Clock\nimport httpx\n")
    assert _kosmo_imports(sample) == [(1, "kosmo_runtime"), (2, "kosmo_runtime._calls"),
                                      (3, "kosmo_runtime.integration")]


def test_the_authoring_api_exports_what_it_lists() -> None:
    assert set(integration.__all__) == {
        "AccountError", "BadResponse", "CallContext", "Clock", "ConfigError", "Fault", "InvalidArgument",
        "NotFound", "Pagination", "ScopedStore", "Simulator", "UpstreamError", "UpstreamNotFound", "route"}
    for name in integration.__all__:
        assert getattr(integration, name) is not None, name
    assert integration.Simulator is kosmo_runtime.Simulator and integration.CallContext is kosmo_runtime.CallContext


def test_the_authoring_api_is_light_to_import() -> None:
    """Imported on its own (the package façade bypassed), it loads no HTTP, YAML, pydantic, Lua or SQLite."""
    probe = f"""
import sys, types
package = types.ModuleType("kosmo_runtime"); package.__path__ = [{str(ROOT / "kosmo_runtime")!r}]
sys.modules["kosmo_runtime"] = package
import kosmo_runtime.integration
heavy = sorted({{"httpx", "yaml", "pydantic", "lupa", "sqlite3", "platformdirs"}} & set(sys.modules))
loaded = sorted(m for m in sys.modules if m.startswith("kosmo_runtime."))
print(heavy, loaded)
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == (
        "[] ['kosmo_runtime._clock', 'kosmo_runtime._context', 'kosmo_runtime._errors', 'kosmo_runtime.integration']"
    ), result.stdout + result.stderr


def test_hooks_never_stamp_where_an_error_happened() -> None:
    """The framework adds integration, function and account to every error once; hooks leave them out."""
    stamped = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((ROOT / "integrations").glob("*/hooks.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and {k.arg for k in node.keywords} & {"integration", "function", "account"}
    ]
    assert not stamped, "errors raised with integration=/function=/account=: " + ", ".join(stamped)
