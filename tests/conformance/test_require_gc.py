"""require and collectgarbage (manual §6.3, §6.1), and the libraries refused by name (io, debug, package)."""

from __future__ import annotations

import pytest

from tests.conformance import refused, same, sandboxed

SAME = [
    "return require('string') == string, require('table') == table, require('math') == math",
    "return require('utf8') == utf8, require('coroutine') == coroutine, require('os') == os, require('_G') == _G",
    "return select('#', require('string'))",
    "local s = string string = nil return require('string') == s",
    "return pcall(require)",
    "return pcall(require, {})",
    "return math.type(collectgarbage('count')), collectgarbage('count') > 0",
    "return collectgarbage(), collectgarbage('collect'), collectgarbage('isrunning')",
    "return type(collectgarbage('step')), type(collectgarbage('step', 10))",
    "return pcall(collectgarbage, 'bogus')",
    "return pcall(collectgarbage, {})",
    "local before = collectgarbage('count') local t = {} for i = 1, 1e5 do t[i] = {i} end"
    " local during = collectgarbage('count') t = nil collectgarbage() return during > before, collectgarbage('count') < during",
    "return type(debug.traceback), type(debug.traceback('msg')), debug.traceback({}) ~= nil",
    "return (debug.traceback('here', 1):match('^here\\nstack traceback:\\n')) ~= nil",
    "return debug.traceback(nil) ~= nil, type(debug.traceback(42))",
    "local ok, tb = xpcall(function() error('boom') end, debug.traceback)"
    " return ok, (tb:match('^script.lua:1: boom\\nstack traceback:')) ~= nil",
]

REFUSED = [
    ("io.stderr:write('x')", "`io.stderr` is not available in the sandbox", "no file access"),
    ("return io.stdout:read('l')", "`io.stdout:read` is not available in the sandbox", "no file access"),
    ("return io.open('/etc/passwd')", "`io.open` is not available in the sandbox", "no file access"),
    ("for k in pairs(io) do end", "`io` is not available in the sandbox"),
    ("return require('io').read()", "`io.read` is not available in the sandbox"),
    ("return require('socket')", "module 'socket' not found", "standard", "libraries"),
    ("return pcall(require, 'lpeg')", "module 'lpeg' not found"),
    ("return debug.getinfo(1)", "`debug.getinfo` is not available in the sandbox", "debug.traceback is available"),
    ("debug.sethook()", "`debug.sethook` is not available in the sandbox"),
    ("return package.path", "`package.path` is not available in the sandbox", "require"),
    ("package.loaded.x = 1", "`package.loaded` is not available in the sandbox"),
    ("collectgarbage('stop')", '`collectgarbage("stop")` is not available in the sandbox', "limits"),
    ("return pcall(collectgarbage, 'generational')", '`collectgarbage("generational")` is not available'),
    ("collectgarbage('incremental', 100)", '`collectgarbage("incremental")` is not available'),
    ("collectgarbage('setpause', 100)", '`collectgarbage("setpause")` is not available'),
    ("collectgarbage('restart')", '`collectgarbage("restart")` is not available'),
]


@pytest.mark.parametrize("source", SAME)
def test_same_as_lua(source: str) -> None:
    same(source)


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_by_name(case: tuple[str, ...]) -> None:
    refused(*case)


def test_debug_traceback_names_script_frames_only() -> None:
    got = sandboxed("local function inner() local tb = debug.traceback('msg') return tb end\nlocal tb = inner() return tb")
    assert got.ok and got.value.startswith("msg\nstack traceback:")
    assert "[kosmo]" not in got.value and "xpcall" not in got.value
    assert "script.lua:1: in " in got.value and "script.lua:2: in main chunk" in got.value
