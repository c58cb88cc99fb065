"""``kosmo repl`` driven through a pseudo-terminal, the way a person uses it (readline included)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROMPT = "lua> "
CONTINUE = "...> "
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def _controlling_terminal() -> None:  # in the child, after setsid(): the pty becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A ``kosmo repl`` process on the slave side of a pty; the test types on the master side."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.master, slave = os.openpty()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "dumb", "INPUTRC": os.devnull,
               "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
               "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state")}
        self.process = subprocess.Popen([sys.executable, "-m", "kosmo_runtime", "repl", *args], cwd=REPO, env=env,
                                        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                        preexec_fn=_controlling_terminal)
        os.close(slave)
        self.pending = ""

    def read_until(self, token: str, timeout: float = 20) -> str:
        """Everything up to and including ``token`` (escape sequences and carriage returns removed)."""
        deadline = time.monotonic() + timeout
        while token not in self.pending:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"waited for {token!r}; the terminal shows:\n{self.pending}")
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the process ended
                data = b""
            if not data:
                raise AssertionError(f"the REPL ended before {token!r}; the terminal shows:\n{self.pending}")
            self.pending = _ESCAPES.sub("", self.pending + data.decode("utf-8", "replace"))
        index = self.pending.index(token) + len(token)
        seen, self.pending = self.pending[:index], self.pending[index:]
        return seen

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def enter(self, line: str, until: str = PROMPT) -> str:
        """Type a line and return what the terminal shows after it, up to the next prompt."""
        self.type(line + "\r")
        shown = self.read_until(until)
        echoed = shown.find(line)
        assert echoed >= 0, shown
        return shown[echoed + len(line):-len(until)].strip("\n")

    def wait(self) -> int:
        """The exit code, once the REPL has quit by itself."""
        return self.process.wait(20)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path, "--demo", "--instructions", "100000")
    yield term
    term.close()


def test_state_values_docs_and_errors(terminal: Terminal) -> None:
    banner = terminal.read_until(PROMPT)
    assert "simulated" in banner and "Lua 5.4 prompt" in banner and ".exit" in banner

    # globals persist from line to line; bare expressions and =expr print their values
    assert terminal.enter("x = 41") == ""
    assert terminal.enter("x + 1") == "42"
    assert terminal.enter("=x, 'text'") == "41\ttext"

    # an unfinished statement continues on the next line
    assert terminal.enter("function double(a)", until=CONTINUE) == ""
    assert terminal.enter("  return a * 2", until=CONTINUE) == ""
    assert terminal.enter("end") == ""
    assert terminal.enter("double(x)") == "82"

    # tables print readably, output of print comes through
    assert terminal.enter("t = {1, 2, name = 'n', nested = {ok = true}}") == ""
    assert terminal.enter("t") == '{1, 2, name = "n", nested = {ok = true}}'
    assert terminal.enter("print('a', nil, #t)") == "a\tnil\t2"
    assert terminal.enter("print").startswith("function: ")

    # the integrations and the docs are at hand
    room = terminal.enter("app.integrations.whereby.list_rooms{limit = 1}.data[1].roomName")
    assert room.startswith("onboarding-")
    doc = terminal.enter("lua_read_doc('integrations.whereby.list_rooms')")
    assert "app.integrations.whereby.list_rooms({limit?: integer" in doc
    assert "app.integrations.whereby.get_room({room_name: string})" in terminal.enter(".doc integrations.whereby.get_room")

    # errors: one line and a hint; the session goes on
    assert terminal.enter("nope()") == "error: LuaRuntimeError: stdin:1: attempt to call a nil value (global 'nope')"
    shown = terminal.enter("app.integrations.whereby.list_rooms{limit = 'x'}")
    assert shown.splitlines() == ["error: InvalidArgument: stdin:1: whereby.list_rooms: parameter 'limit' must be an "
                                  "integer, got string 'x'", "hint: write limit = 1"]
    assert terminal.enter("x") == "41"

    # a limit hit ends the Lua state, and the prompt says so
    shown = terminal.enter("while true do end")
    assert shown.startswith("error: LimitExceeded: run stopped: instruction limit of 100,000 instructions exceeded")
    assert "the Lua state was discarded" in shown
    assert terminal.enter("x") == "nil"
    assert terminal.enter("y = 1") == "" and terminal.enter("y") == "1"

    terminal.type(".exit\r")
    assert terminal.wait() == 0


def test_history_ctrl_c_and_ctrl_d(tmp_path: Path) -> None:
    first = Terminal(tmp_path)
    try:
        first.read_until(PROMPT)
        assert first.enter("6 * 7") == "42"
        assert first.enter("function f(", until=CONTINUE) == ""
        time.sleep(0.3)  # readline is waiting for input (a signal just before its select() waits for a key)
        first.type("\x03")                        # Ctrl-C drops the unfinished statement
        assert "(cancelled)" in first.read_until(PROMPT)
        assert first.enter("f") == "nil"
        first.type("\x04")                        # Ctrl-D on an empty line quits
        assert first.wait() == 0
    finally:
        first.close()
    history = tmp_path / "state" / "kosmo" / "repl_history"
    assert history.read_text(encoding="utf-8").splitlines() == ["6 * 7", "f"]   # not the cancelled line

    second = Terminal(tmp_path)
    try:
        second.read_until(PROMPT)
        second.type("\x1b[A\x1b[A\r")             # up twice: "6 * 7" from the last session
        assert "42" in second.read_until(PROMPT)
        second.type(".exit\r")
        assert second.wait() == 0
    finally:
        second.close()


def test_ctrl_c_while_a_line_runs(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "--instructions", "20000000000", "--wall-time", "3")
    try:
        term.read_until(PROMPT)
        started = time.monotonic()
        term.type("while true do end\r")
        time.sleep(0.5)
        term.type("\x03")
        shown = term.read_until(PROMPT, timeout=15)
        # the line stops (at the latest at its wall-clock limit) and the prompt survives, whatever the sandbox offers
        assert "error: LimitExceeded" in shown or "interrupted" in shown, shown
        assert time.monotonic() - started < 10
        assert term.enter("1 + 1") == "2"
        term.type(".exit\r")
        assert term.wait() == 0
    finally:
        term.close()


def test_piped_input_runs_without_prompts(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-m", "kosmo_runtime", "repl"], input="x = 2\nx * 21\nfunction g()\nreturn x\nend\ng()\n",
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (0, "42\n2\n", "")
