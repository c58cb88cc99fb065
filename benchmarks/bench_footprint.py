"""The MCP tool listing's size (what every agent pays in context), with 4 and with 500 installed integrations."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import anyio
from bench_startup import _synthetic_integrations
from common import Figure

from kosmo_runtime import AccountsConfig, Runtime
from kosmo_runtime._mcp import build_server

BUDGET = 1000  # tokens, for the default listing
BUILTIN = 4


def listing_chars(integration_paths: list[str], *, expose_functions: bool) -> tuple[int, int]:
    """Characters of the ``tools/list`` result's tools as JSON (as the SDK's client receives them), and the tool count."""
    from mcp import Client

    with Runtime(accounts=AccountsConfig.empty(), integration_paths=integration_paths, store=":memory:") as runtime:
        server = build_server(runtime, expose_functions=expose_functions)
        listed: list[dict[str, object]] = []

        async def list_tools() -> None:
            async with Client(server) as client:
                result = await client.list_tools()
                listed.extend(tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in result.tools)

        anyio.run(list_tools)
    return len(json.dumps(listed, ensure_ascii=False, separators=(",", ":"))), len(listed)


def bench_footprint() -> list[Figure]:
    """Tokens (characters / 4) of the tool listing: default tools and --expose-functions, 4 vs 500 installed."""
    with tempfile.TemporaryDirectory(prefix="kosmo-bench-") as temp:
        _synthetic_integrations(Path(temp), 500 - BUILTIN)
        for manifest in Path(temp).glob("*/manifest.yaml"):  # one prefix each, so each has its own tool names
            text = manifest.read_text()
            manifest.write_text(text.replace("prefix: noop\n", f"prefix: {manifest.parent.name}\n"))
        sizes = {(installed, expose): listing_chars(paths, expose_functions=expose)
                 for installed, paths in ((BUILTIN, []), (500, [temp])) for expose in (False, True)}

    def tokens(installed: int, expose: bool) -> float:
        return sizes[installed, expose][0] / 4

    def tools(installed: int, expose: bool) -> str:
        return f"{sizes[installed, expose][1]} tools"

    return [
        Figure(f"MCP tool listing, default tools, {BUILTIN} installed", "tokens", tokens(BUILTIN, False),
               "budget", BUDGET, f"≤ {BUDGET:,} tokens", tokens(BUILTIN, False) <= BUDGET, tools(BUILTIN, False)),
        Figure("MCP tool listing, default tools, 500 installed", "tokens", tokens(500, False),
               f"{BUILTIN} installed", tokens(BUILTIN, False), f"≤ {BUDGET:,} tokens, no growth",
               tokens(500, False) <= BUDGET and tokens(500, False) == tokens(BUILTIN, False), tools(500, False)),
        Figure(f"MCP tool listing, --expose-functions, {BUILTIN} installed", "tokens", tokens(BUILTIN, True),
               "default tools", tokens(BUILTIN, False), "reported", None, tools(BUILTIN, True) + ", reads only"),
        Figure("MCP tool listing, --expose-functions, 500 installed", "tokens", tokens(500, True),
               "default tools", tokens(500, False), "reported", None, tools(500, True) + ", reads only"),
    ]


BENCHMARKS = {"footprint": bench_footprint}
