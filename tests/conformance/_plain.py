"""Run one Lua snippet in plain Lua 5.4 (lupa) and in the sandbox, for side-by-side comparison.

Both get the same prelude and the chunk name ``script.lua``, so results and error messages
(positions included) compare as text. ``show(...)`` renders values as one string: tables and
functions by their type only, since addresses differ between states.
"""

from __future__ import annotations

from lupa import lua54

from kosmo_runtime import Runtime

PRELUDE = """local function show(...)
  local t, out = table.pack(...), {}
  for i = 1, t.n do
    local v = t[i]
    out[i] = (type(v) == "table" or type(v) == "function") and "<" .. type(v) .. ">" or tostring(v)
  end
  return table.concat(out, "|")
end
"""
NAME = "script.lua"


def plain(snippet: str) -> object:
    """What plain Lua 5.4 returns for ``snippet`` (its first value), or ``("error", message)``."""
    lua = lua54.LuaRuntime()
    run = lua.eval("""function(src, name)
      local fn, err = load(src, name)
      if not fn then return false, err end
      return pcall(fn)
    end""")
    ok, *values = run(PRELUDE + snippet, "=" + NAME)
    if not ok:
        return ("error", values[0])
    return values[0] if len(values) == 1 else list(values)


def sandboxed(runtime: Runtime, snippet: str) -> object:
    """What the sandbox returns for ``snippet``, or ``("error", message)``."""
    result = runtime.run(PRELUDE + snippet, name=NAME)
    if result.ok:
        return result.result
    assert result.error is not None
    return ("error", result.error.message)
