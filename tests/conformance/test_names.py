"""Every name of Lua 5.4's standard library (manual §6), as plain lupa defines it: in the sandbox it is
there with the same type, or reading it is refused by name, never a bare nil. The names are read off a
plain ``lupa.lua54.LuaRuntime()`` when the test runs, so a name a later Lua adds is checked too."""

from __future__ import annotations

import pytest
from lupa import lua54

from tests.conformance import sandboxed

LIBRARIES = ("_G", "string", "table", "math", "utf8", "coroutine", "os", "io", "debug", "package")

#: Names whose type differs on purpose; the reasons are in lua_docs/runtime.md's table of differences.
DIFFERENT = {
    "io.stdout": "table",  # a stand-in for the FILE* userdata: a script is given no userdata of the host's
}

#: What plain lupa adds to Lua's own globals (its bridge to Python): absent from the sandbox, by design.
LUPA_ONLY = {"python"}

_LIST_NAMES = """
local out = {}
for _, lib in ipairs{...} do
  local t = lib == "_G" and _G or _G[lib]
  for k, v in pairs(t) do
    if lib ~= "_G" or type(v) ~= "table" or k == "_G" then out[#out + 1] = (lib == "_G" and "" or lib .. ".") .. k .. "=" .. type(v) end
  end
end
table.sort(out)
return table.concat(out, " ")
"""


def _standard_names() -> list[tuple[str, str]]:
    names = lua54.LuaRuntime().execute(_LIST_NAMES, *LIBRARIES).split()
    return [(name, kind) for name, kind in (entry.split("=") for entry in names) if name not in LUPA_ONLY]


NAMES = _standard_names()

# Each name is read in its own protected call; the results come back as one table (one run for all).
_PROBE = "local r = {}\n" + "\n".join(
    f"do local ok, v = pcall(function() return type({name}) end) r[{name!r}] = ok and v or tostring(v) end"
    for name, _ in NAMES) + "\nreturn r"


def test_the_standard_library_has_its_names() -> None:
    """Plain Lua's libraries are all here, each read once (guards against the list going empty)."""
    assert len(NAMES) > 140 and {n for n, _ in NAMES} >= {"string.format", "table.move", "io.write", "debug.getinfo"}


@pytest.fixture(scope="module")
def sandbox_types() -> dict[str, str]:
    got = sandboxed(_PROBE)
    assert got.ok, got
    return got.value  # type: ignore[no-any-return]


@pytest.mark.parametrize(("name", "kind"), NAMES, ids=[n for n, _ in NAMES])
def test_each_name_is_there_or_refused_by_name(name: str, kind: str, sandbox_types: dict[str, str]) -> None:
    seen = sandbox_types[name]
    if seen == DIFFERENT.get(name, kind):
        return
    assert f"`{name}` is not available in the sandbox: " in seen, f"{name}: plain Lua has a {kind}, the sandbox {seen!r}"
    assert "[kosmo]" not in seen
