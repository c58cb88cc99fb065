"""What a wheel user does, from a directory that is not the clone: run in CI by .ci/run.

Usage: python wheel_smoke.py WHEEL (with the wheel installed in the running interpreter's
environment). Checks the wheel's contents, then runs ``kosmo docs read runtime``, the bundled
demo, and ``kosmo mcp --demo`` listing its tools and reading a doc through the MCP SDK client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

KOSMO = str(Path(sys.executable).with_name("kosmo"))
NEEDED = ["kosmo_runtime/envelope.schema.json", "kosmo_runtime/lua_docs/runtime.md",
          "kosmo_runtime/lua_docs/integrations/whereby.md", "kosmo_runtime/examples/demo.lua",
          "kosmo_integrations/whereby/manifest.yaml", "kosmo_integrations/agora/simulator.py"]


def check_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in NEEDED if n not in names]
    tops = sorted({n.split("/")[0] for n in names})
    assert not missing, f"missing from the wheel: {missing}"
    assert tops == ["kosmo_integrations", "kosmo_runtime", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"], tops
    print(f"wheel: {len(names)} files, top-level {tops}")


def kosmo(*argv: str) -> str:
    done = subprocess.run([KOSMO, *argv], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"kosmo {' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done.stdout


async def check_mcp() -> None:
    async with Client(StdioServerParameters(command=KOSMO, args=["mcp", "--demo"]), read_timeout_seconds=60) as client:
        tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        print(f"kosmo mcp tools: {', '.join(tools)}")
        assert {"execute_lua", "lua_read_doc", "lua_list_docs"} <= set(tools), tools
        page = await client.call_tool("lua_read_doc", {"path": "runtime"})
        assert not page.is_error and "app.integrations" in str(page.content), page
        run = await client.call_tool("execute_lua", {"code": "return #lua_list_docs()"})
        assert not run.is_error and run.structured_content["ok"], run


def main() -> None:
    check_contents(Path(sys.argv[1]))
    assert not (Path.cwd() / "kosmo_runtime").exists(), "run me outside the clone"
    runtime_page = kosmo("docs", "read", "runtime")
    assert runtime_page.startswith("#"), runtime_page[:200]
    print(f"kosmo docs read runtime: {len(runtime_page.splitlines())} lines")
    print(f"kosmo docs list: {len(kosmo('docs', 'list').splitlines())} pages")
    demo = kosmo("run", "--demo", "--example", "demo")
    assert "rooms_created" in demo, demo
    print(f"kosmo run --demo --example demo: {len(demo.splitlines())} lines, ends {demo.splitlines()[-1]!r}")
    anyio.run(check_mcp)
    print("wheel smoke test: ok")


if __name__ == "__main__":
    os.environ.pop("KOSMO_DOCS_PATH", None)
    main()
