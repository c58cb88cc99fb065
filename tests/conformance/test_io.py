"""io (manual §6.8): ``io.write`` and ``io.stdout:write`` write to the run's output, as print does but
with no separators and no newline; ``io.flush``, ``io.type``, ``io.output()`` and ``io.stdout:flush``/
``:setvbuf`` work as Lua's (nothing is buffered); the rest of io is refused by name (tests/conformance/
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
    ('io.stdout:setvbuf("no") io.output():write("a") io.flush() io.output(io.stdout):write("b")', "ab"),
    # what precedes a bad argument is written, as Lua's io.write writes each value as it goes
    ("local ok, e = pcall(io.write, 'a', nil) io.write('|', e)", "a|bad argument #2 to 'io.write' (string expected, got nil)"),
]

SAME = [
    "return io.write() == io.stdout, io.stdout:write() == io.stdout, io.stdout:flush() == io.stdout",
    "return pcall(io.write, {})",
    "return pcall(io.write, true)",
    "return select('#', pcall(io.write))",
    "local w = io.write io.write = function() return 'mine' end local r = io.write() io.write = w return r",
    "return io.flush(), select('#', io.flush()), pcall(io.flush, 1, 2)",
    "return io.type(io.stdout), io.type({}), io.type(42), io.type(nil), select('#', io.type(1))",
    "return pcall(io.type)",
    "local ok, e = pcall(function() local t = io.type; t() end) return e",
    "return io.output() == io.stdout, io.output(io.stdout) == io.stdout, io.output(nil) == io.stdout",
    "return io.stdout:flush(), pcall(io.stdout.flush, 42), pcall(io.stdout.flush)",
    "local ok, e = pcall(function() local f = io.stdout.flush; f(2) end) return e",
    "return io.stdout:setvbuf('no'), io.stdout:setvbuf('line', 1024), io.stdout:setvbuf('full', '12')",
    "return pcall(io.stdout.setvbuf, io.stdout, 'x')",
    "return pcall(io.stdout.setvbuf, io.stdout, 1)",
    "return pcall(io.stdout.setvbuf, io.stdout)",
    "return pcall(io.stdout.setvbuf, 1, 'no')",
    "return pcall(io.stdout.setvbuf, io.stdout, 'full', 'x')",
    "return pcall(io.stdout.setvbuf, io.stdout, 'full', 1.5)",
    "return pcall(io.stdout.setvbuf, io.stdout, 'full', 2^63)",
    "local ok, e = pcall(function() io.stdout:setvbuf('x') end) return e",
    "local ok, e = pcall(function() io.stdout:setvbuf() end) return e",
    "local ok, e = pcall(function() io.stdout.setvbuf(1) end) return e",
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
    refused("return pcall(io.output, 'out.txt')", "`io.output(file)` is not available in the sandbox", "no file access")


def test_output_limit_counts_what_io_write_writes() -> None:
    got = sandboxed("for i = 1, 100 do io.write('0123456789') end", replace(LIMITS, output=256))
    assert not got.ok and got.error is not None and "output" in got.error and len(got.output) == 256
