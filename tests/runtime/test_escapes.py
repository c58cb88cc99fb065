"""Escape attempts against the Lua sandbox.

Every technique here is something an untrusted script could try to reach the host
(Python, the file system, the environment) or to tamper with the runtime (its
libraries, its limits, the next run). Each one must end in a Lua-level error or in
harmless values, and after each one the host must be intact: the canary file is
unread and unchanged, ``os.environ`` and the working directory are unchanged, and
a fresh run in the same process sees pristine globals.

Techniques that could hang the process run in a child process (see ``Probes``)
so a regression cannot hang the test session.
"""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kosmo_runtime import AccountsConfig, Limits, RunResult, Runtime

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "integrations"
REPO = Path(__file__).resolve().parents[2]
SECRET = "kosmo-canary-secret-7f3a9c"
MiB = 1024 * 1024

#: Limits for attack scripts: small, so a runaway attack ends fast.
QUICK = Limits(instructions=5_000_000, wall_time=2.0, memory=32 * MiB)

#: Names the sandbox must not expose at all (lupa's python, 5.1/JIT leftovers).
REMOVED = ["python", "jit", "loadstring", "module", "getfenv", "setfenv", "newproxy", "unpack"]

#: Standard Lua 5.4 names the sandbox refuses by name: using them raises "`name` is not available in the sandbox".
REFUSED = [
    "io", "os.execute", "os.getenv", "os.remove", "os.rename", "os.exit", "os.tmpname", "os.setlocale",
    "package", "dofile", "loadfile", "debug", "warn", "string.dump",
]
REFUSAL = r"`[^`]+` is not available in the sandbox: "

# Collects the global names, library members and string-metatable behaviour of a fresh run.
FINGERPRINT = """
local names = {}
for k, v in pairs(_G) do names[#names + 1] = "_G." .. k .. ":" .. type(v) end
for _, lib in ipairs({"string", "table", "math", "os", "coroutine", "utf8"}) do
  for k, v in pairs(_G[lib]) do names[#names + 1] = lib .. "." .. k .. ":" .. type(v) end
end
for k, v in pairs(json) do names[#names + 1] = "json." .. k .. ":" .. type(v) end
for k, v in pairs(app) do names[#names + 1] = "app." .. k .. ":" .. type(v) end
table.sort(names)
names[#names + 1] = "string-mt:" .. tostring(getmetatable(""))
names[#names + 1] = "dump-method:" .. type(("").dump)
names[#names + 1] = "upper-method:" .. ("abc"):upper()
names[#names + 1] = "rep-method:" .. ("ab"):rep(2, "-")
names[#names + 1] = "leak:" .. tostring(rawget(_G, "LEAK"))
names[#names + 1] = "null:" .. tostring(json.null) .. ":" .. tostring(getmetatable(json.null))
names[#names + 1] = "floor:" .. tostring(math.floor(2.5))
return names
"""

# A Lua function `kinds(v)` listing the Lua types found in v: keys, values, and "mt:<type>" for metatables.
KINDS = """
local function kinds(value)
  local seen, found = {}, {}
  local function walk(v, depth)
    found[type(v)] = true
    if type(v) == "table" and not seen[v] and depth < 6 then
      seen[v] = true
      local mt = getmetatable(v)
      if mt ~= nil then found["mt:" .. type(mt)] = true end
      for k, x in next, v do walk(k, depth + 1); walk(x, depth + 1) end
    end
  end
  walk(value, 0)
  local out = {}
  for k in pairs(found) do out[#out + 1] = k end
  table.sort(out)
  return out
end
"""


def make_runtime() -> Runtime:
    return Runtime(integration_paths=[FIXTURES], store=":memory:", accounts=AccountsConfig.empty())


@pytest.fixture(scope="module")
def rt() -> Runtime:
    runtime = make_runtime()
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def pristine() -> list[str]:
    """The fingerprint of a brand-new runtime, before any attack ran."""
    with make_runtime() as fresh:
        result = fresh.run(FINGERPRINT)
    assert result.ok, result.error and result.error.to_dict()
    return result.result


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary.txt"
    path.write_text(SECRET)
    return path


@pytest.fixture(autouse=True)
def host_intact(rt: Runtime, pristine: list[str], canary: Path, tmp_path: Path):
    """After every test: canary, environment, working directory and a fresh run are untouched."""
    environ = _environ()
    cwd = os.getcwd()
    listing = sorted(p.name for p in tmp_path.iterdir())
    mtime = canary.stat().st_mtime_ns
    yield
    assert canary.read_text() == SECRET
    assert canary.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    assert _environ() == environ
    assert os.getcwd() == cwd
    after = rt.run(FINGERPRINT)
    assert after.ok, after.error and after.error.to_dict()
    assert after.result == pristine


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def attack(rt: Runtime, source: str, canary: Path, limits: Limits = QUICK) -> RunResult:
    """Run an attack script (CANARY is replaced by the canary's path) and check nothing leaked."""
    result = rt.run(textwrap.dedent(source).replace("CANARY", lua_string(str(canary))), limits=limits)
    shown = json.dumps([result.result, result.output, result.error and result.error.to_dict()], default=str)
    assert SECRET not in shown
    return result


# -- expectations -------------------------------------------------------------------------

Check = Callable[[RunResult], None]
NIL = r"attempt to (call|index) a nil value"


def fails(pattern: str, kind: str = "LuaRuntimeError") -> Check:
    def check(result: RunResult) -> None:
        assert result.ok is False, f"expected an error, got {result.result!r}"
        assert result.error.type == kind, result.error.to_dict()
        assert re.search(pattern, result.error.message), result.error.message
        assert result.result is None
    return check


def returns(expected: Any) -> Check:
    def check(result: RunResult) -> None:
        assert result.ok, result.error and result.error.to_dict()
        assert result.result == expected
    return check


def stops_at(*limits: str) -> Check:
    def check(result: RunResult) -> None:
        assert result.ok is False, f"expected a limit, got {result.result!r}"
        assert result.error.type == "LimitExceeded", result.error.to_dict()
        assert result.error.limit in limits
        assert result.result is None
        assert "survived" not in result.output
    return check


def returns_where(predicate: Callable[[Any], bool]) -> Check:
    def check(result: RunResult) -> None:
        assert result.ok, result.error and result.error.to_dict()
        assert predicate(result.result), result.result
    return check


# -- the removed globals -------------------------------------------------------------------


@pytest.mark.parametrize("name", REMOVED)
def test_removed_global_is_nil(rt: Runtime, canary: Path, name: str) -> None:
    head, _, field = name.partition(".")
    probe = f"rawget(_G, {head!r})" if not field else f"rawget({head}, {field!r})"
    result = attack(rt, f"return type({probe}), type(_G.{name}), type(_ENV.{name})", canary)
    assert result.ok, result.error and result.error.to_dict()
    assert result.result == ["nil", "nil", "nil"]


@pytest.mark.parametrize("name", REFUSED)
def test_refused_name_holds_nothing(rt: Runtime, canary: Path, name: str) -> None:
    """A refused library is an empty table with a locked metatable; a refused function a Lua closure."""
    result = attack(rt, KINDS + f"""
        local v = {name}
        local raw = {{}}
        if type(v) == "table" then for k, x in next, v do raw[#raw + 1] = tostring(k) .. ":" .. type(x) end end
        local ok, err = pcall(function() return type(v) == "table" and v.anything or v() end)
        return type(v), raw, getmetatable(v), ok, err, kinds(v)
    """, canary)
    assert result.ok, result.error and result.error.to_dict()
    kind, raw, mt, ok, err, kinds = result.result
    assert kind in ("table", "function")
    # debug.traceback is the one debug function provided; io.write and io.stdout write to the run's output
    # (with io.flush, io.output and io.type, which reach nothing else)
    assert sorted(raw) in ([], ["traceback:function"],
                           ["flush:function", "output:function", "stdout:table", "type:function", "write:function"])
    assert mt in (None, "locked")
    assert ok is False and re.search(REFUSAL, err), err
    assert not set(kinds) & {"userdata", "thread"}


# Each attack tries to *use* a removed or refused global against the host.
USE_REMOVED = {
    "python": 'return python.eval("__import__(\'os\').system(\'id\')")',
    "python.builtins": "return python.builtins.open(CANARY).read()",
    "jit": "jit.off() return jit.version",
    "loadstring": 'return loadstring("return 1")()',
    "module": 'module("evil")',
    "setfenv": "setfenv(1, {})",
}
USE_REFUSED = {
    "io": 'return io.open(CANARY):read("a")',
    "io.lines": "for line in io.lines(CANARY) do return line end",
    "io-pairs": "for k, v in pairs(io) do return k end",
    "os.execute": 'return os.execute("cat " .. CANARY)',
    "os.getenv": 'return os.getenv("HOME")',
    "os.remove": "return os.remove(CANARY)",
    "os.rename": 'return os.rename(CANARY, CANARY .. ".moved")',
    "os.exit": "os.exit(3)",
    "os.tmpname": "return os.tmpname()",
    "require-io": 'return require("io").open(CANARY)',
    "require-package": 'return require("package").loadlib("libc.so.6", "system")',
    "package": 'return package.loaded.io.open(CANARY)',
    "package.loadlib": 'return package.loadlib("libc.so.6", "system")',
    "package.searchers": 'package.searchers[1] = print',
    "dofile": "return dofile(CANARY)",
    "loadfile": "return loadfile(CANARY)()",
    "debug": "return debug.getregistry()",
    "debug.sethook": "debug.sethook() while true do end",
    "debug.getinfo": "return debug.getinfo(1).func",
    "debug.setmetatable": 'debug.setmetatable("", {__index = {}})',
    "debug-set-field": "debug.getlocal = print",
    "collectgarbage-stop": 'collectgarbage("stop") return collectgarbage("count")',
    "collectgarbage-generational": 'collectgarbage("generational")',
    "collectgarbage-setpause": 'collectgarbage("setpause", 1000)',
    "warn": 'warn("@on") warn("x")',
    "string.dump": "return string.dump(print)",
    "string.dump-method": 'return ("").dump(function() return 1 end)',
}


@pytest.mark.parametrize("source", list(USE_REMOVED.values()), ids=list(USE_REMOVED))
def test_using_a_removed_global_is_a_lua_error(rt: Runtime, canary: Path, source: str) -> None:
    fails(NIL)(attack(rt, source, canary))


@pytest.mark.parametrize("source", list(USE_REFUSED.values()), ids=list(USE_REFUSED))
def test_using_a_refused_name_is_refused_by_name(rt: Runtime, canary: Path, source: str) -> None:
    result = attack(rt, source, canary)
    fails(REFUSAL)(result)
    assert not re.search(NIL, result.error.message)


# -- the escape catalogue ------------------------------------------------------------------

BINARY_HEADER = r'"\27Lua\84\0\25\147\13\10\26\10\4\8\8\120\86\0\0\0\0\0\0\0\0\0\0\0\40\119\64\1"'

ESCAPES = [
    # bytecode
    pytest.param(f"return load({BINARY_HEADER})",
                 returns([None, "load: binary (precompiled) chunks are not allowed in the sandbox"]),
                 id="load-binary-chunk-string"),
    pytest.param(f'return load({BINARY_HEADER}, "x", "b")',
                 returns([None, "load: binary (precompiled) chunks are not allowed in the sandbox"]),
                 id="load-binary-chunk-mode-b"),
    pytest.param(f'return load({BINARY_HEADER}, "x", "bt", {{}})',
                 returns([None, "load: binary (precompiled) chunks are not allowed in the sandbox"]),
                 id="load-binary-chunk-mode-bt-custom-env"),
    pytest.param(f"""
        local parts, i = {{{BINARY_HEADER}}}, 0
        return load(function() i = i + 1 return parts[i] end, "x", "b")
     """, returns([None, "load: binary (precompiled) chunks are not allowed in the sandbox"]),
                 id="load-reader-function"),
    pytest.param("""
        local parts, i = {"\\27", "Lua", "\\84\\0"}, 0
        return load(function() i = i + 1 return parts[i] end)
     """, returns([None, "load: binary (precompiled) chunks are not allowed in the sandbox"]),
                 id="load-reader-function-binary-in-pieces"),
    pytest.param(f'return load({BINARY_HEADER}, "x", "t")', returns([None, "attempt to load a binary chunk (mode is 't')"]),
                 id="load-binary-chunk-mode-t"),
    pytest.param('return load("return 40 + 2", "x", "b")', returns([None, "attempt to load a text chunk (mode is 'b')"]),
                 id="load-mode-b-refuses-text"),
    # the string metatable
    pytest.param('return ("").dump == string.dump, getmetatable("")', returns([True, False]),
                 id="string-dump-through-metatable"),
    pytest.param('return ("").dump(function() return 1 end)', fails(r"`string.dump` is not available in the sandbox"),
                 id="string-dump-method-call"),
    pytest.param('return getmetatable("").__index', fails(r"attempt to index a boolean value"),
                 id="string-metatable-index"),
    pytest.param('getmetatable("").__index = {dump = print}', fails(r"attempt to index a boolean value"),
                 id="string-metatable-set-field"),
    pytest.param('setmetatable("", {__index = {evil = print}}) return ("").evil',
                 fails(r"bad argument #1 to 'setmetatable' \(table expected, got string\)"),
                 id="setmetatable-on-string"),
    # the run's string table is the strings' methods (as in Lua), and nothing of the runtime's
    pytest.param('string.rep = nil string.upper = function() return "pwned" end '
                 'return ("abc"):upper(), pcall(function() return ("x"):rep(3) end)',
                 returns_where(lambda r: r[0] == "pwned" and r[1] is False and "method 'rep'" in r[2]),
                 id="string-library-changes-reach-methods"),
    pytest.param("""
        for name in pairs(string) do string[name] = function() error("poisoned " .. name) end end
        print("printed", 1.5, {a = 1})
        local ok, e = pcall(error, "plain")
        local caught, parallel = pcall(app.parallel, {function() return 1 end})
        return json.encode({a = 1}), e, caught, #lua_list_docs() > 0, json.decode('{"b": 2}').b
     """, returns(['{"a": 1}', "plain", True, True, 2]), id="string-library-poisoning-does-not-reach-the-runtime"),
    # _ENV
    pytest.param("local real = _ENV local _ENV = {} return real.python, real.jit, real.package.loaded, real._G == real",
                 fails(REFUSAL), id="local-ENV-swap"),
    pytest.param("_ENV = nil return print", fails(r"attempt to index a nil value \(upvalue '_ENV'\)"),
                 id="ENV-set-to-nil"),
    pytest.param('return load("return python, jit, getfenv, debug.getregistry", "x", "t", setmetatable({}, {__index = _G}))()',
                 fails(REFUSAL), id="load-with-custom-env"),
    pytest.param('return load("return python, jit, io.open", "x", "t", setmetatable({}, {__index = _G}))()',
                 fails(r"`io.open` is not available"), id="load-with-custom-env-io"),
    pytest.param('return load("return io, os.execute, debug", "x", "t", nil)()',
                 fails(r"attempt to index a nil value \(upvalue '_ENV'\)"), id="load-with-nil-env"),
    pytest.param('local e = {} load("x = 1; rawset(_ENV, \'y\', 2)", "x", "t", setmetatable(e, {__index = _G}))()'
                 ' return e.x, e.y, rawget(_G, "x"), rawget(_G, "y")', returns([1, 2, None, None]),
                 id="load-custom-env-rawset-stays-there"),
    pytest.param('return load("return _ENV == _G and _G == ...", "x")(_G)', returns(True),
                 id="load-text-sees-sandbox-env"),
    pytest.param("return _G._G._G.python, _G._G == _G, rawget(_G, '_G') == _G, _G.jit", returns([None, True, True, None]),
                 id="G-G-chain"),
    # functions as a way back to the real globals (there is no debug library)
    pytest.param("return getmetatable(print), getmetatable(tostring), getmetatable(pcall), getmetatable(json.encode),"
                 " getmetatable(app.integrations.test_notes.list_notes)", returns([None] * 5),
                 id="function-metatables"),
    pytest.param("return type(string.format('%p', print)), tostring(print):match('^function: ') ~= nil",
                 returns(["string", True]), id="function-addresses-are-only-strings"),
    # rawget/rawequal/rawlen on host values
    pytest.param("return rawget(app, 'integrations'), rawget(json, 'encode'), rawget(json, 'null'),"
                 " rawget(app.integrations, 'test_notes'), rawlen(app), rawequal(app, _G.app)",
                 returns([None, None, None, None, 0, True]), id="rawget-on-host-tables"),
    pytest.param("rawset(json, 'encode', print)", fails(r"json is read-only \(cannot set 'encode'\)"),
                 id="rawset-on-host-tables"),
    pytest.param("rawset(app, 'integrations', {})", fails(r"app is read-only"), id="rawset-on-app"),
    pytest.param("rawset(app.integrations, 'test_notes', {})", fails(r"app.integrations is read-only"),
                 id="rawset-on-integrations"),
    pytest.param("rawset(app.integrations.test_notes, 'list_notes', print)", fails(r"test-notes is read-only"),
                 id="rawset-on-namespace"),
    pytest.param("rawset(app.integrations.test_notes.default, 'list_notes', print)", fails(r"read-only"),
                 id="rawset-on-account-namespace"),
    pytest.param("rawset(json.null, 'x', 1)", fails(r"json.null is read-only"), id="rawset-on-json-null"),
    pytest.param("local _, it = pairs(json) rawset(json, 1, 2)", fails(r"json is read-only"), id="rawset-after-pairs"),
    pytest.param("rawset(io, 'open', print) return io.open", fails(r"io is read-only"), id="rawset-on-refused-library"),
    pytest.param("rawset(_G, 'print2', print) rawset(string, 'shout', string.upper) return print2 == print, string.shout('a')",
                 returns([True, "A"]), id="rawset-on-script-tables-works"),
    # the globals' metatable
    pytest.param("return getmetatable(_G), getmetatable(_ENV)", returns([None, None]), id="globals-have-no-metatable"),
    pytest.param("""
        setmetatable(_G, {__index = function(_, k) error("undefined " .. k, 2) end})
        local ok, err = pcall(function() return undefined_name end)
        return ok, err, type(app), type(lua_read_doc), getmetatable(_G) ~= nil
     """, returns([False, "script.lua:3: undefined undefined_name", "table", "function", True]), id="strict-mode-idiom"),
    pytest.param("setmetatable(_G, nil) return type(app.integrations), getmetatable(_G)", returns(["table", None]),
                 id="globals-metatable-removed-keeps-app"),
    pytest.param("""
        setmetatable(_G, {__index = function(t, k) return k end, __newindex = function(t, k, v) rawset(t, k, v * 2) end})
        x = 21
        return x, some_name, python == "python", type(debug.getinfo)
     """, fails(REFUSAL), id="globals-metatable-index-reaches-nothing"),
    pytest.param("setmetatable(_G, {__metatable = 'mine'}) return getmetatable(_G), pcall(setmetatable, _G, {})",
                 returns(["mine", False, "cannot change a protected metatable"]), id="globals-metatable-protected-by-script"),
    # require and collectgarbage
    pytest.param("return require('string') == string, require('math') == math, require('_G') == _G, "
                 "select('#', require('table'))", returns([True, True, True, 1]), id="require-standard-libraries"),
    pytest.param("string = nil return require('string').upper('a')", returns("A"), id="require-after-global-removed"),
    pytest.param("return require('socket')", fails(r"module 'socket' not found: the sandbox loads no modules"),
                 id="require-other-module"),
    pytest.param("return require('kosmo'), require('python')", fails(r"module 'kosmo' not found"),
                 id="require-internal-names"),
    pytest.param("local n = collectgarbage('count') local t = {} for i = 1, 1e5 do t[i] = {} end t = nil "
                 "collectgarbage() collectgarbage('collect') return collectgarbage('isrunning'), "
                 "type(collectgarbage('step')), math.type(n)", returns([True, "boolean", "float"]),
                 id="collectgarbage-allowed-options"),
    pytest.param("while true do collectgarbage() end", stops_at("instructions", "wall_time"), id="collectgarbage-loop"),
    # the script's own "not enough memory" is an ordinary error, but never a way to swallow a real one
    pytest.param('return pcall(error, "not enough memory", 0)', returns([False, "not enough memory"]),
                 id="script-memory-error-text-is-ordinary"),
    pytest.param("""
        pcall(function()
          local x <close> = setmetatable({}, {__close = function() error("replaced", 0) end})
          error("not enough memory", 0)
        end)
        local ok = pcall(string.rep, "x", 1e9)
        return "survived", ok
     """, stops_at("memory"), id="script-memory-error-note-cannot-cover-a-real-one"),
    pytest.param("""
        local f = coroutine.wrap(function() error("not enough memory", 0) end)
        pcall(f)
        local ok = pcall(string.rep, "x", 1e9)
        return "survived", ok
     """, stops_at("memory"), id="script-memory-error-through-wrap-then-real-one"),
    # more ways to use the globals' metatable, require and debug.traceback
    pytest.param("setmetatable(_G, {__index = _G}) return pcall(function() return no_such_global end)",
                 returns_where(lambda r: r[0] is False and "loop" in r[1]), id="globals-index-loop"),
    pytest.param("require('io').open = print", fails(REFUSAL), id="require-io-write"),
    pytest.param("local d = require('debug') d.traceback = nil return debug.getinfo", fails(REFUSAL),
                 id="require-debug-write"),
    pytest.param("return debug.traceback((coroutine.running()), 'x', 0):find('kosmo', 1, true)", returns(None),
                 id="traceback-of-the-main-thread"),
    pytest.param("""
        local tb
        app.parallel({function() tb = debug.traceback((coroutine.running())) end})
        return tb:find("kosmo", 1, true)
     """, returns(None), id="traceback-of-a-branch"),
    # __gc finalizers
    pytest.param("return setmetatable({}, {__gc = function() while true do end end})",
                 fails(r"__gc finalizers are not allowed", "InvalidArgument"), id="gc-finalizer"),
    pytest.param("return setmetatable({}, {__gc = false})",
                 fails(r"__gc finalizers are not allowed", "InvalidArgument"), id="gc-finalizer-false"),
    pytest.param("""
        local mt = {}
        local victim = setmetatable({}, mt)
        mt.__gc = function() print("finalizer ran") while true do end end
        victim = nil
        local junk = {} for i = 1, 20000 do junk[i] = {i} end
        return "done"
     """, returns("done"), id="gc-added-after-setmetatable"),
    pytest.param("""
        local proxy = setmetatable({}, setmetatable({}, {__index = {__gc = function() while true do end end}}))
        proxy = nil
        local junk = {} for i = 1, 20000 do junk[i] = {i} end
        return "done"
     """, returns("done"), id="gc-through-metatable-index"),
    # to-be-closed variables
    pytest.param('local x <close> = setmetatable({}, {__close = function() while true do end end}) return "survived"',
                 stops_at("instructions", "wall_time"), id="close-loop"),
    pytest.param("""
        for i = 1, 3 do
          pcall(function()
            local x <close> = setmetatable({}, {__close = function() return "ignored" end})
            while true do end
          end)
        end
        return "survived"
     """, stops_at("instructions", "wall_time"), id="close-after-limit"),
    pytest.param('local x <close> = print return 1', fails(r"non-closable value"), id="close-non-closable"),
    # pcall/xpcall
    pytest.param('while true do pcall(function() while true do end end) end return "survived"',
                 stops_at("instructions", "wall_time"), id="pcall-loop-around-loop"),
    pytest.param('return "survived", xpcall(function() error("x") end, function(e) while true do end end)',
                 stops_at("instructions", "wall_time"), id="xpcall-handler-loops"),
    pytest.param('return xpcall(function() error("x") end, function(e) error(e, 0) end)',
                 returns([False, "error in error handling"]), id="xpcall-handler-reraises"),
    pytest.param("""
        local function forever() while true do end end
        local ok, err = xpcall(forever, function(e) return "handled" end)
        if not ok then return "survived", err end
     """, stops_at("instructions", "wall_time"), id="xpcall-catches-limit"),
    pytest.param("""
        local n = 0
        repeat n = n + 1 until not select(1, pcall(pcall, pcall, function() while true do end end)) or n > 100
        return "survived"
     """, stops_at("instructions", "wall_time"), id="nested-pcall-catches-limit"),
    pytest.param("local function f() return pcall(f) end local r = {f()} return #r > 10",
                 returns(True), id="pcall-recursion-is-a-clean-stack-overflow"),
    # coroutines
    pytest.param("""
        local co = coroutine.create(function() while true do end end)
        for i = 1, 100 do pcall(coroutine.resume, co) end
        return "survived"
     """, stops_at("instructions", "wall_time"), id="resume-loop-after-limit"),
    pytest.param("""
        local f = coroutine.wrap(function() while true do end end)
        local ok = pcall(f) return "survived"
     """, stops_at("instructions", "wall_time"), id="wrap-inside-pcall"),
    pytest.param("""
        local co = coroutine.wrap(function() while true do coroutine.yield() end end)
        while true do co() end
     """, stops_at("instructions", "wall_time"), id="yield-loop"),
    pytest.param("""
        local co = coroutine.create(function() return coroutine.resume(coroutine.create(function() while true do end end)) end)
        local ok, inner = coroutine.resume(co)
        return "survived", ok, inner
     """, stops_at("instructions", "wall_time"), id="nested-coroutine-limit"),
    pytest.param("return coroutine.resume(coroutine.running())", returns([False, "cannot resume non-suspended coroutine"]),
                 id="resume-self"),
    pytest.param("coroutine.yield(1) return 2", fails(r"attempt to yield from outside a coroutine"),
                 id="yield-out-of-the-script"),
    pytest.param("local co; co = function() return coroutine.wrap(co)() end return co()",
                 fails(r"C stack overflow|stack overflow"), id="coroutine-recursion"),
    pytest.param("return coroutine.running()", fails(r"coroutine, which cannot leave the sandbox"),
                 id="return-a-coroutine"),
    # modifying the host's tables
    pytest.param("app.x = 1", fails(r"app is read-only \(cannot set 'x'\)"), id="app-write"),
    pytest.param("app.integrations = {}", fails(r"app is read-only"), id="app-integrations-replace"),
    pytest.param("app.integrations.test_notes = {}", fails(r"app.integrations is read-only"),
                 id="app-integrations-write"),
    pytest.param("app.integrations.test_notes.list_notes = print", fails(r"test-notes is read-only"),
                 id="namespace-write"),
    pytest.param("app.integrations.test_notes.default.list_notes = print", fails(r"read-only"),
                 id="account-namespace-write"),
    pytest.param("json.encode = print", fails(r"json is read-only \(cannot set 'encode'\)"), id="json-write"),
    pytest.param("setmetatable(app, {})", fails(r"cannot change a protected metatable"), id="setmetatable-app"),
    pytest.param("setmetatable(app.integrations, {})", fails(r"cannot change a protected metatable"),
                 id="setmetatable-integrations"),
    pytest.param("setmetatable(json, {__index = {encode = print}})", fails(r"cannot change a protected metatable"),
                 id="setmetatable-json"),
    # json.null
    pytest.param("json.null.x = 1", fails(r"json.null cannot be modified"), id="json-null-write"),
    pytest.param("setmetatable(json.null, {__index = {x = 1}})", fails(r"cannot change a protected metatable"),
                 id="json-null-setmetatable"),
    pytest.param("json.null = 1", fails(r"json is read-only"), id="json-null-replace"),
    pytest.param("return json.null == json.decode('null'), json.decode('[null]')[1] == json.null, tostring(json.null),"
                 " getmetatable(json.null), next(json.null)", returns([True, True, "null", "locked", None]),
                 id="json-null-is-inert"),
    # attribute access on host values (Python attribute names are just missing keys)
    pytest.param("return app.__class__, json.__class__, json.encode.__globals__", fails(r"attempt to index a function value"),
                 id="python-attribute-on-host-function"),
    pytest.param("return app.__class__, json.__dict__, app.integrations[1], app.integrations[true]",
                 returns([None] * 4), id="python-attribute-on-host-tables"),
    pytest.param("return app.integrations.__class__", fails(r"unknown integration '__class__'", "NotFound"),
                 id="python-attribute-on-integrations"),
    pytest.param("return app.integrations.test_notes.__globals__", fails(r"unknown function or account '__globals__'", "NotFound"),
                 id="python-attribute-on-namespace"),
    pytest.param("return app.integrations.test_notes.default.__init__", fails(r"unknown function '__init__'", "NotFound"),
                 id="python-attribute-on-account-namespace"),
    # os.date and friends (legitimately available)
    pytest.param("""
        local out = {}
        for _, f in ipairs({"%Q", "%", "%Ez", "%5", "%%%", "%E", "%O"}) do
          local ok, v = pcall(os.date, f)
          out[#out + 1] = (not ok) and type(v) == "string" and v:find("invalid conversion specifier") ~= nil
        end
        return out
     """, returns([True] * 7), id="os-date-invalid-formats"),
    pytest.param("""
        local ok1, e1 = pcall(os.date, "%c", 1e300)
        local ok2, e2 = pcall(os.date, "*t", math.maxinteger)
        local ok3, v3 = pcall(os.date, string.rep("%c", 2000))
        local ok4, v4 = pcall(os.date, "!*t", 0)
        return ok1, type(e1), type(e2), ok3, #v3 > 2000, ok4, v4.year
     """, returns_where(lambda r: r[0] is False and r[1] == "string" and r[2] == "string"
                       and r[3:] == [True, True, True, 1970]), id="os-date-odd-times"),
    pytest.param("""
        local t = os.time()
        return math.type(t), os.time({year = 2020, month = 1, day = 1, hour = 12}) > 0, type(os.clock()),
               os.difftime(t + 5, t), os.date("!%Y-%m-%d", 0)
     """, returns(["integer", True, "number", 5.0, "1970-01-01"]), id="os-time-works"),
    # string.rep, patterns, table.move
    pytest.param("""
        local t = os.clock()
        local a, b = string.rep("", 1e18), ("").rep("", math.maxinteger, "")
        return a, b, os.clock() - t < 1
     """, returns(["", "", True]), id="string-rep-empty-huge"),
    pytest.param('return pcall(string.rep, "", 1e18, "x")',
                 returns_where(lambda r: r[0] is False and "resulting string too large" in r[1]),
                 id="string-rep-empty-with-separator"),
    pytest.param('return #string.rep("x", 1e9)', stops_at("memory"), id="string-rep-memory"),
    pytest.param("return table.move({}, 1, 1e12, 1, {})",
                 fails(r"moving 1000000000000 elements would take longer than the run has left", "InvalidArgument"),
                 id="table-move-huge"),
    pytest.param("return table.move({}, -2^62, 2^62, 1, {})", fails(r"too many elements to move"),
                 id="table-move-float-range"),
    pytest.param("return table.move({}, math.mininteger, math.maxinteger, 1, {})", fails(r"too many elements to move"),
                 id="table-move-integer-overflow"),
    pytest.param('return table.move({1, 2, 3}, 1, 3, 2), string.format("%5.1f|%q|%s", 3.14159, "a\\n", {} ~= nil)',
                 returns([[1, 1, 2, 3], '  3.1|"a\\\n"|true']), id="table-move-and-format-work"),
]


@pytest.mark.parametrize("source,check", ESCAPES)
def test_escape_attempt(rt: Runtime, canary: Path, source: str, check: Check) -> None:
    result = attack(rt, source, canary)
    check(result)
    assert "finalizer ran" not in result.output


def test_finalizers_added_later_never_run_on_the_host(rt: Runtime, canary: Path) -> None:
    result = attack(rt, """
        local mt = {}
        for i = 1, 100 do setmetatable({}, mt) end
        mt.__gc = function() print("finalizer ran") while true do end end
        return "done"
    """, canary)
    assert result.ok and result.result == "done"
    del result
    gc.collect()  # closes the finished run's Lua state: no finalizer may run (or hang) here


# -- pattern bombs and long subjects -----------------------------------------------------

PATTERN_BOMBS = [
    ("find", 'string.rep("a", 200)', '".-.-.-.-b$"'),
    ("find", 'string.rep("a", 30)', 'string.rep(".-", 20) .. "b"'),
    ("match", 'string.rep("a", 30)', 'string.rep(".-", 20) .. "b"'),
    ("gmatch", 'string.rep("a", 30)', 'string.rep(".-", 20) .. "b"'),
    ("gsub", 'string.rep("a", 30)', 'string.rep(".-", 20) .. "b"'),
    ("find", 'string.rep("a", 100000)', '".-b"'),
    ("find", 'string.rep("a", 100000)', '"a*b"'),
    ("match", 'string.rep("a", 100000)', '"(.*)(.*)(.*)x"'),
    ("find", 'string.rep("a", 100000)', '"[a]-[a]-[a]-b"'),
    ("gsub", 'string.rep("a", 100000)', '"(a+)+b"'),
    ("find", 'string.rep("a", 100000)', '"%a*%a*b"'),
    ("method", 'string.rep("a", 30)', 'string.rep(".-", 20) .. "b"'),
]


@pytest.mark.parametrize("function,subject,pattern", PATTERN_BOMBS)
def test_pattern_bombs_are_refused_quickly(rt: Runtime, canary: Path, function: str, subject: str, pattern: str) -> None:
    if function == "method":
        call = f"s:find({pattern})"
    elif function == "gmatch":
        call = f"(function() for x in string.gmatch(s, {pattern}) do end end)()"
    else:
        call = f"string.{function}(s, {pattern})"
    started = time.monotonic()
    result = attack(rt, f"local s = {subject} return {call}", canary)
    assert time.monotonic() - started < 2
    fails(r"could backtrack for too long", "InvalidArgument")(result)
    assert "string." in result.error.message and result.error.hint


def test_simple_patterns_still_work(rt: Runtime, canary: Path) -> None:
    result = attack(rt, """
        local s = string.rep("ab", 50000)
        local n = select(2, s:gsub("ab", ""))
        return n, {("key=value"):match("^(%w+)=(%w+)$")}, {s:find("ba", 1, true)}, {("a,b,,c"):gsub(",", ";")}
    """, canary)
    assert result.ok, result.error and result.error.to_dict()
    assert result.result == [50000, ["key", "value"], [2, 3], ["a;b;;c", 3]]


# -- what host values and host errors look like inside Lua ---------------------------------


def test_pairs_over_host_tables_reveals_only_data_and_closures(rt: Runtime, canary: Path) -> None:
    result = attack(rt, KINDS + """
        local out = {}
        local function list(t)
          local r = {}
          for k, v in pairs(t) do r[#r + 1] = tostring(k) .. ":" .. type(v) end
          table.sort(r)
          return r
        end
        out.json = list(json)
        out.app = list(app)
        out.integrations = list(app.integrations)
        out.notes = list(app.integrations.test_notes)
        out.default = list(app.integrations.test_notes.default)
        out.kinds = kinds({json, app, app.integrations, app.integrations.test_notes})
        out.locked = {getmetatable(app), getmetatable(json), getmetatable(app.integrations),
                      getmetatable(app.integrations.test_notes), getmetatable(app.integrations.test_notes.default),
                      getmetatable(json.null)}
        out.array = getmetatable(json.array())
        return out
    """, canary)
    assert result.ok, result.error and result.error.to_dict()
    out = result.result
    assert out["json"] == ["array:function", "decode:function", "encode:function", "null:table"]
    assert out["app"] == ["integrations:table", "parallel:function"]
    assert "test-notes:table" in out["integrations"]
    assert all(item.endswith(":table") for item in out["integrations"])
    assert "list_notes:function" in out["notes"] and "default:table" in out["notes"]
    assert all(item.endswith((":function", ":table")) for item in out["notes"] + out["default"])
    assert not set(out["kinds"]) & {"userdata", "thread"}
    assert out["locked"] == ["locked"] * 6
    assert out["array"] == "json.array"


def test_integration_errors_are_plain_data(rt: Runtime, canary: Path) -> None:
    result = attack(rt, KINDS + """
        local ok, e = pcall(app.integrations.test_notes.list_notes, {})
        local fields = {}
        for k, v in next, e do fields[k] = type(v) end
        return {ok = ok, kind = type(e), text = tostring(e), fields = fields, kinds = kinds(e)}
    """, canary)
    assert result.ok, result.error and result.error.to_dict()
    out = result.result
    assert out["ok"] is False and out["kind"] == "table"
    assert re.fullmatch(r"script\.lua:\d+: no account is configured for test-notes", out["text"])
    assert set(out["fields"].values()) <= {"string", "number", "boolean"}
    assert {"type", "code", "message"} <= set(out["fields"])
    assert not set(out["kinds"]) & {"userdata", "thread", "function"}


def test_error_table_metatable_is_locked(rt: Runtime, canary: Path) -> None:
    result = attack(rt, """
        local ok, e = pcall(json.decode, nil)
        local mt = getmetatable(e)
        return type(mt), pcall(function() mt.__index = {injected = true} end)
    """, canary)
    assert result.ok, result.error and result.error.to_dict()
    assert result.result[0] != "table"


def test_reraising_an_integration_error_keeps_its_type(rt: Runtime, canary: Path) -> None:
    result = attack(rt, "local ok, e = pcall(app.integrations.test_notes.list_notes, {}) error(e)", canary)
    fails(r"no account is configured for test-notes", "AccountError")(result)


@pytest.mark.parametrize("key", ["__dict__", "__class__"])
def test_forged_error_fields_do_not_crash_the_host(rt: Runtime, canary: Path, key: str) -> None:
    result = attack(rt, f"local ok, e = pcall(json.decode, nil) e[{key!r}] = 1 error(e)", canary)
    assert result.ok is False and result.error is not None


HOLE_UTF8 = ("HOLE: a non-UTF-8 string argument fails in lupa's argument conversion, before the host wrapper, so "
             "pcall catches a Python UnicodeDecodeError as userdata with lupa's mutable metatable")

ODD_HOST_CALLS = [
    ("json.decode(nil)", None), ("json.decode(42)", None), ("json.decode({})", None), ('json.decode("[1,")', None),
    ('json.decode(string.rep("9", 5000))', None), ("json.decode(\"\\255\")", HOLE_UTF8),
    ("json.encode(function() end)", None), ("json.encode({f = print})", None), ("json.encode(coroutine.create(print))", None),
    ("json.encode({}, {indent = print})", None), ("json.encode(0/0)", None), ("json.encode({[{}] = 1})", None),
    ('json.encode({["\\255"] = 1})', None), ('json.encode("\\255")', HOLE_UTF8),
    ('print({f = print, co = coroutine.create(print), t = {}})', None), ('print("\\255")', None),
    ("lua_read_doc(nil)", None), ("lua_read_doc({})", None), ('lua_read_doc("../../../../etc/passwd")', None),
    ('lua_read_doc(string.rep("x", 100000))', None), ('lua_read_doc("\\255")', HOLE_UTF8),
    ('lua_search_docs("x", "y")', None), ('lua_search_docs("x", {})', None), ('lua_search_docs("\\255")', HOLE_UTF8),
    ("lua_list_docs(1)", None),
    ('app.integrations.test_notes.list_notes("x")', None), ("app.integrations.test_notes.list_notes({limit = print})", None),
    ('app.integrations.test_notes.list_notes({limit = "\\255"})', None),
    ("app.integrations.test_notes:list_notes({})", None),
    ('app.integrations["\\255"]', HOLE_UTF8), ('app.integrations.test_notes["\\255"]', HOLE_UTF8),
]


@pytest.mark.parametrize("call", [
    pytest.param(call, id=call)
    for call, hole in ODD_HOST_CALLS
])
def test_host_functions_never_hand_python_objects_to_lua(rt: Runtime, canary: Path, call: str) -> None:
    result = attack(rt, KINDS + f"""
        local ok, e = pcall(function() return {call} end)
        return {{ok = ok, kinds = kinds(e), text = type(e) == "table" and tostring(e) or nil}}
    """, canary)
    assert result.ok, result.error and result.error.to_dict()
    out = result.result
    assert not set(out["kinds"]) & {"userdata", "thread", "mt:userdata"}, out
    if out["ok"] is False:
        assert "Traceback" not in json.dumps(out) and "lupa" not in json.dumps(out)


# -- limits cannot be escaped through coroutine.close, load or host callbacks --------------


def test_limit_hit_in_coroutine_close_stops_the_script(rt: Runtime, canary: Path) -> None:
    result = attack(rt, """
        local co = coroutine.create(function()
          local x <close> = setmetatable({}, {__close = function() while true do end end})
          coroutine.yield()
        end)
        coroutine.resume(co)
        local ok, err = coroutine.close(co)
        print("still running after", tostring(err))
        return "survived"
    """, canary, Limits(instructions=2_000_000, wall_time=2.0))
    stops_at("instructions", "wall_time")(result)
    assert "still running" not in result.output


MEMORY_SWALLOWS = {
    "coroutine-close": """
        local co = coroutine.create(function()
          local x <close> = setmetatable({}, {__close = function() local s = string.rep("x", 1e9) end})
          coroutine.yield()
        end)
        coroutine.resume(co)
        local ok, err = coroutine.close(co)
        return "survived", ok, err
    """,
    "load": """
        local f, err = load(string.rep("a=1 ", 1000000))
        return "survived", f == nil, err
    """,
}


@pytest.mark.parametrize("source", list(MEMORY_SWALLOWS.values()), ids=list(MEMORY_SWALLOWS))
def test_memory_limit_cannot_be_swallowed(rt: Runtime, canary: Path, source: str) -> None:
    stops_at("memory")(attack(rt, source, canary, Limits(memory=8 * MiB, wall_time=2.0)))


def test_a_leaked_python_exception_still_denies_attributes(rt: Runtime, canary: Path) -> None:
    """Documents the reach of the UTF-8 hole: the leaked object itself still denies attribute and item access."""
    result = attack(rt, """
        local ok, e = pcall(json.decode, "\\255")
        if type(e) ~= "userdata" then return "fixed" end
        local a = pcall(function() return e.__class__ end)
        local b = pcall(function() return e[1] end)
        local c = pcall(function() return e() end)
        return a, b, c
    """, canary)
    assert result.ok, result.error and result.error.to_dict()
    assert result.result in ("fixed", [False, False, False])


# -- state does not survive a run ----------------------------------------------------------


def test_globals_and_library_changes_do_not_leak_into_the_next_run(rt: Runtime, canary: Path) -> None:
    first = attack(rt, """
        LEAK = "from run 1"
        _G.print2 = print
        string.shout = function(s) return s:upper() .. "!" end
        string.upper = function() return "pwned" end
        math.floor = function() return "pwned" end
        table.insert = nil
        coroutine.create = nil
        os.time = function() return 0 end
        return ("x"):upper(), string.upper("x"), ("x"):shout()
    """, canary)
    assert first.ok and first.result == ["pwned", "pwned", "pwned!"]
    second = attack(rt, """
        return LEAK, print2, string.shout, ("x").shout, string.upper("x"), math.floor(2.5), type(table.insert),
               type(coroutine.create), os.time() > 0
    """, canary)
    assert second.ok, second.error and second.error.to_dict()
    assert second.result == [None, None, None, None, "X", 2, "function", "function", True]


def test_load_and_coroutines_work_normally(rt: Runtime, canary: Path) -> None:
    result = attack(rt, """
        local f = assert(load("local a, b = ... return a + b, x", "calc", "t", {x = "env"}))
        local g = assert(load("return type(print), type(python), _G == _ENV"))
        local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
        local co = coroutine.create(function(a) local b = coroutine.yield(a * 2) return b + 1 end)
        local _, first = coroutine.resume(co, 5)
        local _, second = coroutine.resume(co, 10)
        return {f(1, 2)}, {g()}, {gen(), gen(), gen()}, first, second, coroutine.status(co), coroutine.isyieldable()
    """, canary)
    assert result.ok, result.error and result.error.to_dict()
    assert result.result == [[3, "env"], ["function", "nil", True], [1, 2, 3], 10, 11, "dead", False]


# -- holes that hang the process: run in child processes -----------------------------------

CHILD = r"""
import faulthandler, gc, json, os, sys
from pathlib import Path
from kosmo_runtime import AccountsConfig, Limits, Runtime

job = json.loads(sys.argv[1])
# A C-level watchdog (needs no GIL): a hang ends the child without a report.
watchdog = open(os.devnull, "w")
faulthandler.dump_traceback_later(job["hang_after"], exit=True, file=watchdog)
report = {}
try:
    with Runtime(integration_paths=[Path(job["fixtures"])], store=":memory:", accounts=AccountsConfig.empty()) as rt:
        result = rt.run(job["source"], limits=Limits(**job["limits"]))
        report.update(ok=result.ok, result=result.result, output=result.output,
                      type=result.error and result.error.type, limit=getattr(result.error, "limit", None),
                      message=result.error and result.error.message)
        del result
        gc.collect()  # closes the finished run's Lua state (finalizers run here)
        report["fresh"] = rt.run("return 1 + 1").result
except BaseException as exc:
    report["raised"] = f"{type(exc).__name__}: {exc}"
report["finished"] = True
print(json.dumps(report, default=str), flush=True)
os._exit(0)
"""

PROBE_LIMITS = {"wall_time": 1.0, "instructions": 100_000_000}
HANG_AFTER = 4.0      # seconds after the child's imports: a sandbox that works is done well before
PROBE_TIMEOUT = 25.0  # backstop from the start of the module, should the child's watchdog fail

PROBES: dict[str, tuple[str | None, str]] = {
    # controls: the probe machinery itself works (a child that cannot run would look like a hang)
    "control-loop": (None, "while true do end"),
    "control-pcall-coroutine-loop": (None, """
        local co = coroutine.wrap(function() while true do pcall(function() while true do end end) end end)
        while true do pcall(co) end
        """),
    "error-value-tostring-loops": (
        "HOLE: run() calls tostring() on a non-kosmo error table in the main Lua thread, which has no hook, so a "
        "looping __tostring hangs the process",
        'error(setmetatable({}, {__tostring = function() while true do end end}))'),
    "returned-value-eq-loops": (
        "HOLE: the bootstrap's inspect() compares a returned table's metatable with ==, which runs a script __eq "
        "without a hook after the script ended: hang",
        "return setmetatable({}, setmetatable({}, {__eq = function() while true do end end}))"),
    "error-value-eq-loops": (
        "HOLE: run() compares the error table's metatable with ERROR_MT (~=) in the unhooked main thread: a script "
        "__eq on that metatable hangs",
        "error(setmetatable({}, setmetatable({}, {__eq = function() while true do end end})))"),
    "host-argument-eq-loops": (
        "HOLE: converting a json.encode/print argument calls inspect(), whose == runs a script __eq unhooked: hang",
        "print(setmetatable({}, setmetatable({}, {__eq = function() while true do end end})))"),
    "error-metatable-eq-loops": (
        "HOLE: ERROR_MT is reachable with getmetatable(err) and can be given a metatable whose __eq runs unhooked "
        "when run() compares metatables: hang",
        """
        local ok, e = pcall(json.decode, nil)
        local mt = getmetatable(e)
        if type(mt) == "table" then setmetatable(mt, {__eq = function() while true do end end}) end
        error(setmetatable({}, {}))
        """),
    "error-metatable-gc-finalizer": (
        "HOLE: __gc added to the shared ERROR_MT (reachable with getmetatable) marks every later error table for "
        "finalization; the finalizer runs with hooks off during GC or lua_close: the host hangs after the run",
        """
        local ok, e = pcall(json.decode, nil)
        local mt = getmetatable(e)
        if type(mt) == "table" then mt.__gc = function() while true do end end end
        pcall(json.decode, nil)
        return "done"
        """),
    "python-metatable-call-hijack": (
        "HOLE: the leaked Python exception's metatable is lupa's shared one; replacing its __call intercepts every "
        "host function, including the clock the count hook calls, and a loop there runs with hooks off: hang",
        """
        local ok, e = pcall(json.decode, "\\255")
        local mt = getmetatable(e)
        if type(mt) == "table" then pcall(function() mt.__call = function() while true do end end end) end
        while true do end
        """),
    "string-rep-empty-numeric-string": (
        "HOLE: the string.rep guard checks math.type(n), so n = '1e18' (a numeric string) skips it and Lua's rep "
        "loops 1e18 times copying nothing",
        'return pcall(string.rep, "", "1e18")'),
    "table-move-numeric-string": (
        "HOLE: the table.move guard checks math.type(f/e), so numeric strings skip it: a C loop over 1e12 indices",
        'return pcall(table.move, {}, "1", "1e12", 1, {})'),
    "pattern-balance-quadratic": (
        "HOLE: the pattern guard counts only */+/- quantifiers; %b() (no quantifier) on a long run of '(' is "
        "O(n^2) in C, out of reach of the hook",
        'local s = string.rep("(", 300000) return pcall(string.find, s, "%b()")'),
    "pattern-long-literal": (
        "HOLE: a quantifier-free pattern is never checked, but matching a long literal costs #s * #p in C "
        "(string.match/find without plain=true)",
        'local s = string.rep("a", 5000000) return pcall(string.match, s, string.rep("a", 5000) .. "b")'),
    "pattern-optional-items": (
        "HOLE: the pattern guard did not count `?`: n optional items before a failing tail backtrack 2^n ways in C",
        'return pcall(string.find, ("a"):rep(36), ("a?"):rep(36) .. ("a"):rep(36) .. "b")'),
}


class Probes:
    """All hang probes, started together in niced child processes and collected per test."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        for name, (_, source) in PROBES.items():
            job = json.dumps({"source": textwrap.dedent(source), "limits": PROBE_LIMITS,
                              "fixtures": str(FIXTURES), "hang_after": HANG_AFTER})
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-c", CHILD, job], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, cwd=REPO, preexec_fn=lambda: os.nice(15),
            )

    def result(self, name: str) -> dict[str, Any]:
        if name not in self.results:
            proc = self.procs[name]
            try:
                out, _ = proc.communicate(timeout=max(0.1, self.started + PROBE_TIMEOUT - time.monotonic()))
                self.results[name] = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"hung": True}
                self.results[name]["seconds"] = round(time.monotonic() - self.started, 1)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                self.results[name] = {"hung": True, "killed": True}
        return self.results[name]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module", autouse=True)
def probes():
    """Started when the module starts, so the children run while the in-process tests do."""
    running = Probes()
    yield running
    running.close()


@pytest.mark.parametrize("name", [
    pytest.param(name, id=name)
    for name, (reason, _) in PROBES.items()
])
def test_attack_cannot_hang_or_crash_the_host(probes: Probes, name: str) -> None:
    report = probes.result(name)
    assert not report.get("hung"), f"{name}: the host hung ({report})"
    assert "raised" not in report, report["raised"]
    assert report["finished"] and report["fresh"] == 2
    if report["ok"]:
        assert report["result"] != "survived"
    else:
        assert report["type"] in ("LuaRuntimeError", "LimitExceeded", "InvalidArgument"), report


def test_host_reads_script_tables_raw_so_their_metamethods_never_run() -> None:
    # The host converts argument tables with raw access: a bomb in __index is never triggered.
    with Runtime(store=":memory:") as rt:
        result = rt.run("""
            local opts = setmetatable({}, {__index = function() local s = string.rep("x", 1e9) return 2 end})
            return json.encode({a = 1}, opts)
        """)
    assert result.ok and result.result == '{"a": 1}'


@pytest.mark.parametrize("table", ["json", "app", "app.integrations", "app.integrations.test_notes"])
def test_runtime_tables_cannot_be_modified_through_pairs_or_next(rt: Runtime, canary: Path, table: str) -> None:
    result = attack(rt, f"""
        local t = {table}
        local f, state, first = pairs(t)
        local found = {{}}
        for _, v in ipairs({{state, first, (next(t)), select(2, pcall(f, state, first))}}) do
          if type(v) == "table" then
            found[#found + 1] = pcall(function() v.encode = "pwned"; v.parallel = "pwned"; v.list_notes = "pwned" end)
          end
        end
        return #found, type(json.encode), type(app.parallel), type(app.integrations.test_notes.list_notes)
    """, canary)
    assert result.ok, result.error and result.error.to_dict()
    assert result.result[1:] == ["function", "function", "function"]
