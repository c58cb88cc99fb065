"""io (manual §6.8): ``io.write`` and ``io.stdout:write``/``:flush`` write to the run's output, as print
does but with no separators and no newline; the rest of io is refused by name (tests/conformance/
test_require_gc.py). Plain Lua writes to the process's stdout, so outputs are compared with what Lua's
io.write prints (numbers: integers as ``%d``, floats as ``%.14g``), and errors with plain Lua's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.conformance import LIMITS, refused, same, sandboxed

OUTPUT = [
    ('io.write("a", 1, 2.5, 1.0, -0.0, 1e100, "\\n") io.write("b")', "a12.51-01e+100\nb"),
    ('io.write() io.write("") io.write("x")', "x"),
    ('io.stdout:write("x"):write("y", 2) io.write("z"):write("!")', "xy2z!"),
    ('io.write("a") print("b") io.write("c\\n")', "ab\nc\n"),
    ('io.write("\\xff\\n")', "\\xff\n"),  # bytes that are not UTF-8 escaped, as print escapes them
    ('local w = io.write w("local") io.stdout.write(io.stdout, "+method")', "local+method"),
]

SAME = [
    "return io.write() == io.stdout, io.stdout:write() == io.stdout, io.stdout:flush() == io.stdout",
    "return pcall(io.write, {})",
    "return pcall(io.write, 'a', nil)",
    "return pcall(io.write, true)",
    "return select('#', pcall(io.write))",
    "local w = io.write io.write = function() return 'mine' end local r = io.write() io.write = w return r",
]


@pytest.mark.parametrize(("source", "output"), OUTPUT)
def test_writes_to_the_output(source: str, output: str) -> None:
    got = sandboxed(source)
    assert got.ok and got.output == output, got


@pytest.mark.parametrize("source", SAME)
def test_same_as_lua(source: str) -> None:
    same(source)


def test_the_stdout_handle_is_a_handle() -> None:
    """A deliberate difference: io.stdout is a table standing in for Lua's FILE* userdata (a script cannot
    be given a userdata of the host's); like one, it cannot be changed and its methods are its metatable's."""
    assert sandboxed("return type(io.stdout)").value == "table"
    got = sandboxed("return tostring(io.stdout), getmetatable(io.stdout), pcall(function() io.stdout.write = print end)")
    assert got.value == ["file (stdout)", "locked", False, "script.lua:1: io.stdout is read-only (cannot set 'write')"]
    refused("return io.stdout:lines()", "`io.stdout:lines` is not available in the sandbox", "no file access")
    refused("return io.read()", "`io.read` is not available in the sandbox", "io.write writes to the output")


def test_output_limit_counts_what_io_write_writes() -> None:
    got = sandboxed("for i = 1, 100 do io.write('0123456789') end", replace(LIMITS, output=256))
    assert not got.ok and got.error is not None and "output" in got.error and len(got.output) == 256
