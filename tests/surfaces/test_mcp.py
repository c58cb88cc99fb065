"""``kosmo mcp`` driven by the MCP SDK's own client, over stdio (and once over streamable HTTP)."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from kosmo_runtime import LoopbackServer, Runtime
from kosmo_runtime._cli import main
from kosmo_runtime._mcp import function_tool_schema, listing_schema
from kosmo_runtime._result import envelope_schema
from tests.fixtures.integrations.test_notes.simulator import KEY, NotesSimulator
from tests.surfaces import check_envelope

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "integrations"
BASE_TOOLS = {"lua_list_docs", "lua_search_docs", "lua_read_doc", "execute_lua", "call_integration"}


def params(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    # The SDK passes a minimal environment; the XDG folders keep the user's files out of the tests.
    return StdioServerParameters(
        command=sys.executable, args=["-m", "kosmo_runtime", "mcp", *args], cwd=str(REPO),
        env={"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
             "XDG_STATE_HOME": str(tmp_path / "state"), **(env or {})})


def drive(server: StdioServerParameters | str, body: Callable[[Client], Awaitable[None]]) -> None:
    async def run() -> None:
        async with Client(server, read_timeout_seconds=60) as client:
            await body(client)

    try:
        anyio.run(run)
    except BaseException as exc:  # report the failing assertion, not the task groups around it
        leaf: BaseException = exc
        while len(getattr(leaf, "exceptions", ())) == 1:
            leaf = leaf.exceptions[0]  # type: ignore[attr-defined]
        if leaf is exc:
            raise
        raise leaf from None


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def envelope(result: CallToolResult, *, ok: bool) -> dict[str, Any]:
    assert result.is_error is (not ok), text(result)
    data = check_envelope(result.structured_content)
    assert data["ok"] is ok
    return data


# --------------------------------------------------------------------------------------------------
# the five tools, against the demo simulators
# --------------------------------------------------------------------------------------------------


def test_discovery_run_and_errors_over_stdio(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"

    async def body(client: Client) -> None:
        assert "list" in (client.instructions or "") and "never guess" in (client.instructions or "").lower()
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == BASE_TOOLS
        for name in ("lua_list_docs", "lua_search_docs", "lua_read_doc", "execute_lua"):
            assert "Never guess names" in tools[name].description, name
        assert "lua_read_doc" in tools["execute_lua"].description
        assert tools["execute_lua"].input_schema["required"] == ["code"]
        assert set(tools["call_integration"].input_schema["properties"]) == {"function", "arguments", "account",
                                                                       "idempotency_key"}
        assert tools["lua_read_doc"].annotations.read_only_hint is True
        assert tools["execute_lua"].annotations.read_only_hint is False
        assert tools["execute_lua"].output_schema == listing_schema()

        # list, search, read
        listed = await client.call_tool("lua_list_docs", {})
        assert not listed.is_error and "integrations.whereby" in text(listed)
        assert {"path": "runtime"}.items() <= listed.structured_content["pages"][0].items()
        found = await client.call_tool("lua_search_docs", {"query": "create room"})
        assert "integrations.whereby.create_room" in [hit["path"] for hit in found.structured_content["hits"]]
        too_long = await client.call_tool("lua_search_docs", {"query": "webinar " * 200})
        assert too_long.is_error and "at most 1,000 are searched" in text(too_long)
        page = await client.call_tool("lua_read_doc", {"path": "integrations.whereby.list_rooms"})
        assert not page.is_error and "app.integrations.whereby.list_rooms({limit?: integer" in text(page)
        missing = await client.call_tool("lua_read_doc", {"path": "integrations.wherby"})
        assert missing.is_error and "did you mean 'integrations.whereby'?" in text(missing)

        # a script against the demo simulators
        ran = await client.call_tool("execute_lua", {"code": (
            "local rooms = app.integrations.whereby.list_rooms{limit = 2}\n"
            "print('rooms:', #rooms.data)\n"
            "return {first = rooms.data[1].roomName, count = #rooms.data}")})
        data = envelope(ran, ok=True)
        assert data["output"] == "rooms:\t2\n" and data["result"]["count"] == 2
        assert [(c["integration"], c["function"], c["ok"]) for c in data["calls"]] == [("whereby", "list_rooms", True)]
        assert text(ran).startswith("ok (1 integration call") and "rooms:\t2" in text(ran)

        # a limit hit is a tool error, and the server keeps serving
        limited = await client.call_tool("execute_lua", {"code": "while true do end"})
        data = envelope(limited, ok=False)
        assert (data["error"]["code"], data["error"]["limit"]) == ("limit_exceeded", "instructions")
        assert "instruction limit of 200,000 instructions exceeded" in text(limited)
        again = await client.call_tool("execute_lua", {"code": "return 6 * 7"})
        assert envelope(again, ok=True)["result"] == 42

        # script errors: runtime and syntax, with the line
        failed = await client.call_tool("execute_lua", {"code": "print('partial')\nlocal t = nil\nreturn t.x"})
        data = envelope(failed, ok=False)
        assert data["error"]["type"] == "LuaRuntimeError" and data["error"]["line"] == 3
        assert data["output"] == "partial\n" and "script.lua:3: attempt to index a nil value" in text(failed)
        broken = await client.call_tool("execute_lua", {"code": "local = 1"})
        assert envelope(broken, ok=False)["error"]["type"] == "LuaSyntaxError"

        # one call without Lua: other account, bad arguments, unknown function
        called = await client.call_tool("call_integration", {"function": "whereby.list_rooms",
                                                             "arguments": {"limit": 1}, "account": "work"})
        data = envelope(called, ok=True)
        assert data["calls"][0]["account"] == "work" and len(data["result"]["data"]) <= 1
        bad = await client.call_tool("call_integration", {"function": "whereby.list_rooms", "arguments": {"limit": "x"}})
        assert envelope(bad, ok=False)["error"]["code"] == "invalid_argument"
        assert "hint:" in text(bad)
        unknown = await client.call_tool("call_integration", {"function": "whereby.list_roomz"})
        assert envelope(unknown, ok=False)["error"]["code"] == "not_found"

    drive(params(tmp_path, "--demo", "--instructions", "200000", "--audit-log", str(audit)), body)
    lines = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert ("whereby", "list_rooms", "work") in [(r["integration"], r["function"], r["account"]) for r in lines]


# --------------------------------------------------------------------------------------------------
# one tool per function
# --------------------------------------------------------------------------------------------------


def test_expose_functions_reads_only(tmp_path: Path) -> None:
    with Runtime() as runtime:
        whereby = runtime.catalog.find("whereby").manifest
        cal = runtime.catalog.find("cal-com").manifest
        reads = {whereby.full_name(n) for n, f in whereby.functions.items() if f.operation == "read"}

    async def body(client: Client) -> None:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert reads <= set(tools) and BASE_TOOLS <= set(tools)
        assert not any(name in tools for name in ("whereby_create_room", "whereby_delete_room",
                                                   "gotowebinar_create_webinar", "cal_com_create_booking"))
        rooms = tools["whereby_list_rooms"]
        assert rooms.input_schema == function_tool_schema(whereby, "list_rooms", ["default", "work"])
        assert rooms.input_schema["properties"]["limit"] == {
            "type": "integer", "minimum": 1, "maximum": 100,
            "description": whereby.functions["list_rooms"].params["limit"].description}
        assert rooms.input_schema["additionalProperties"] is False
        assert rooms.input_schema["properties"]["account"]["enum"] == ["default", "work"]
        assert (rooms.annotations.read_only_hint, rooms.annotations.destructive_hint) == (True, False)
        assert rooms.output_schema == listing_schema()
        room = tools["whereby_get_room"].input_schema
        assert room["required"] == ["room_name"] and room["properties"]["room_name"]["minLength"] == 1
        bookings = tools["cal_com_list_bookings"].input_schema["properties"]["status"]
        assert bookings["enum"] == cal.functions["list_bookings"].params["status"].enum

        listed = await client.call_tool("whereby_list_rooms", {"limit": 1, "account": "work"})
        data = envelope(listed, ok=True)
        assert data["calls"][0]["account"] == "work" and len(data["result"]["data"]) == 1
        invalid = await client.call_tool("whereby_list_rooms", {"limit": 0})
        assert envelope(invalid, ok=False)["error"]["param"] == "limit"

    drive(params(tmp_path, "--demo", "--expose-functions"), body)


def test_expose_functions_with_writes(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        create = tools["whereby_create_room"]
        assert (create.annotations.read_only_hint, create.annotations.destructive_hint) == (False, True)
        assert create.input_schema["properties"]["room_mode"]["enum"] == ["normal", "group"]
        assert create.input_schema["properties"]["fields"]["items"] == {"type": "string", "enum": ["hostRoomUrl", "viewerRoomUrl"]}
        assert create.input_schema["properties"]["room_name_prefix"]["maxLength"] == 39
        assert tools["gotowebinar_create_webinar"].input_schema["properties"]["times"]["minItems"] == 1
        made = await client.call_tool("whereby_create_room", {"room_mode": "group", "room_name_prefix": "mcp"})
        data = envelope(made, ok=True)
        assert data["calls"][0]["operation"] == "write" and data["result"]["roomName"].startswith("mcp")

    drive(params(tmp_path, "--demo", "--expose-functions", "--allow-writes"), body)


@pytest.mark.parametrize("argv", [["mcp", "--allow-writes"],
                                  ["mcp", "--expose-functions", "--allow-writes", "--read-only"],
                                  ["mcp", "--http", "65536"], ["mcp", "--http", "-1"]])
def test_contradictory_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "kosmo" in capsys.readouterr().err


def test_function_schemas_carry_item_enums_and_formats() -> None:
    whereby = Runtime(store=":memory:").catalog.find("whereby").manifest
    properties = function_tool_schema(whereby, "create_room")["properties"]
    assert properties["fields"]["items"] == {"type": "string", "enum": ["hostRoomUrl", "viewerRoomUrl"]}
    assert properties["end_date"]["format"] == "date-time"


def test_the_advertised_output_schema_is_the_envelope_s_top_level() -> None:
    import jsonschema

    schema = listing_schema()
    assert schema["required"] == envelope_schema()["required"]
    assert set(schema["properties"]) == set(envelope_schema()["properties"])
    with Runtime(store=":memory:") as runtime:
        for code in ("return {1, 2}", "error('boom')", "return app.integrations.nope.x{}"):
            jsonschema.validate(runtime.run(code).to_dict(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "ok": "yes"}, schema)


# --------------------------------------------------------------------------------------------------
# policies
# --------------------------------------------------------------------------------------------------


def test_read_only_server_denies_writes(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert tools["execute_lua"].annotations.read_only_hint is True
        assert "read-only" in tools["execute_lua"].description
        denied = await client.call_tool("execute_lua", {"code": "return app.integrations.whereby.create_room{}"})
        data = envelope(denied, ok=False)
        assert data["error"]["type"] == "PermissionDenied" and "read-only" in data["error"]["message"]
        assert envelope(await client.call_tool("call_integration", {"function": "whereby.list_rooms"}), ok=True)

    drive(params(tmp_path, "--demo", "--read-only"), body)


@pytest.fixture
def notes() -> Iterator[tuple[NotesSimulator, str]]:
    simulator = NotesSimulator([KEY])
    with LoopbackServer(simulator) as server:
        yield simulator, server.url


def test_ask_writes_are_denied_without_an_approver(tmp_path: Path, notes: tuple[NotesSimulator, str]) -> None:
    simulator, url = notes
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(f"version: 1\nintegrations:\n  test-notes:\n    accounts:\n      main:\n"
                        f"        api_key: ${{MCP_NOTES_KEY}}\n        base_url: {url}\n        writes: ask\n",
                        encoding="utf-8")

    async def body(client: Client) -> None:
        denied = await client.call_tool("execute_lua", {"code": "return app.integrations['test-notes'].create_note{text = 'x'}"})
        data = envelope(denied, ok=False)
        assert data["error"]["type"] == "PermissionDenied" and "nobody can approve" in data["error"]["message"]
        listed = await client.call_tool("call_integration", {"function": "test-notes.list_notes", "arguments": {"limit": 1}})
        assert envelope(listed, ok=True)["result"]["count"] == 1

    drive(params(tmp_path, "--accounts", str(accounts),
                 env={"KOSMO_INTEGRATIONS_PATH": str(FIXTURES), "MCP_NOTES_KEY": KEY}), body)
    assert [request.method for request in simulator.requests] == ["GET"]
