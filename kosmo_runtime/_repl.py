"""``kosmo repl``: an interactive Lua prompt with the integrations loaded.

The prompt keeps one ``Runtime.session``: one Lua state whose globals persist from line to line
(``local`` variables end with their chunk, as in the standard ``lua`` prompt). Limits apply to each
chunk; a chunk that hits one ends the state, and the prompt says so. Like ``lua``, a line is first
tried as an expression and its values printed as ``print`` shows them; ``=expr`` does the same; an
incomplete statement (a syntax error at ``<eof>``) continues on the next line. Line editing,
completion and history come from ``readline`` when the platform has it; the history file is
``repl_history`` in the user's state directory.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from lupa import lua54

from . import __version__
from ._errors import KosmoError, LimitExceeded
from ._options import RunOptions
from ._result import RunResult
from ._runtime import Runtime
from ._values import render

try:
    import readline
except ImportError:  # pragma: no cover - Windows without pyreadline
    readline = None  # type: ignore[assignment]

__all__ = ["Repl", "history_path"]

PROMPT = "lua> "
CONTINUE = "...> "
CHUNK = "stdin"
HISTORY_LENGTH = 1000
_SHOW = '(function(...) if select("#", ...) > 0 then print(...) end end)'
_KEYWORDS = ("and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
             "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while")
_GLOBALS = ("app", "app.integrations", "app.parallel", "json", "json.encode", "json.decode", "json.null",
            "json.array", "print", "lua_list_docs", "lua_search_docs", "lua_read_doc", "pairs", "ipairs", "tostring",
            "tonumber", "type", "pcall", "error", "assert", "select", "string", "table", "math", "utf8", "os.time",
            "os.date")
HELP = """\
Type Lua and press Enter. A bare expression (or =expr) prints its value; globals stay defined
from line to line (locals end with their line, as in the standard lua prompt); an unfinished
statement continues on the next line (Ctrl-C cancels it).

  app.integrations.whereby.list_rooms{limit = 2}   call an integration (names from the docs)
  lua_read_doc("integrations.whereby")             read the reference (also lua_list_docs(),
                                                   lua_search_docs("create room"))
  .doc [PATH]      print a doc page (no PATH: list the pages)
  .search WORDS    search the docs
  .reset           start a fresh Lua state (all globals forgotten)
  .help            this text
  .exit            quit (or Ctrl-D)
"""


def history_path() -> Path:
    """Where the prompt's history is kept (``repl_history`` in the user's state directory)."""
    from ._dirs import user_dir

    return user_dir("state") / "repl_history"


class _Exit(Exception):
    """Raised by ``.exit``."""


class _Unfinished(Exception):
    """Raised when the input ends inside a chunk that still needs lines (the chunk's text)."""


class Repl:
    """The read-eval-print loop over one ``Runtime.session``."""

    def __init__(self, runtime: Runtime, *, options: RunOptions | None = None, history: bool = True,
                 stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.runtime = runtime
        self.options = options  # every chunk's (kosmo repl --dry-run, --read-only, limits)
        self.stdin = stdin or sys.stdin
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self.interactive = self.stdin.isatty()
        self.history = history and readline is not None and self.interactive
        # Compiles (never runs) input to tell a complete chunk from an unfinished one.
        self._checker = lua54.LuaRuntime(register_eval=False, register_builtins=False)
        self.session = runtime.session(options=options)

    # -- the loop --------------------------------------------------------------------------

    def loop(self) -> int:
        """Read, run and print until ``.exit`` or end of input; returns the exit code (0; 1 when the
        input ends inside an unfinished chunk)."""
        self._setup_readline()
        if self.interactive:
            self._banner()
        try:
            while True:
                try:
                    chunk = self._read_chunk()
                except EOFError:
                    if self.interactive:
                        self.out.write("\n")
                    return 0
                except KeyboardInterrupt:
                    self.out.write("\n(cancelled)\n")
                    continue
                except _Exit:
                    return 0
                except _Unfinished as unfinished:
                    first = str(unfinished).splitlines()[0]
                    self.err.write(f"error: LuaSyntaxError: the input ended inside an unfinished chunk, which was not "
                                   f"run (it starts: {first[:60]!r})\n"
                                   "hint: complete it: a missing 'end', closing bracket or quote\n")
                    return 1
                if chunk is not None:
                    source, typed = chunk
                    self._remember(typed)
                    self.execute(source)
        finally:
            self.session.close()
            self._save_history()

    def _input(self, prompt: str) -> str:
        self.out.flush()
        if self.stdin is sys.stdin:
            return input(prompt if self.interactive else "")
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def _read_chunk(self) -> tuple[str, str] | None:
        """One complete chunk of Lua and the text typed (``None`` after a blank line or a command)."""
        line = self._input(PROMPT)
        stripped = line.strip()
        if not stripped:
            return None
        if stripped.startswith(".") and not stripped.startswith(".."):
            self.command(stripped)
            return None
        expression = line[1:] if line.startswith("=") else line
        if self.check("return " + expression) == "ok":
            return self.show(expression), line
        lines = [line]
        while self.check("\n".join(lines)) == "incomplete":
            try:
                lines.append(self._input(CONTINUE))
            except EOFError:
                raise _Unfinished("\n".join(lines)) from None
        return "\n".join(lines), "\n".join(lines)

    def show(self, expression: str) -> str:
        """A chunk printing the expression's values the way ``print`` shows them (tables readably).

        The values go through ``print`` rather than the run's result, so that anything prints (a
        function, a table with mixed keys) and a string shows as text. Kept on the typed line, so
        that error messages name line 1.
        """
        wrapped = f"{_SHOW}({expression}\n)"
        return wrapped if self.check(wrapped) == "ok" else "return " + expression

    def check(self, source: str) -> str:
        """``ok``, ``incomplete`` (a syntax error at the end of the input) or ``error``."""
        try:
            self._checker.compile(source, name="=" + CHUNK, mode="t")
        except lua54.LuaSyntaxError as exc:
            message = str(exc).rstrip()
            return "incomplete" if message.endswith(("<eof>", "'<eof>'")) else "error"
        return "ok"

    def execute(self, source: str) -> RunResult:
        """Run one chunk in the session and print what it printed, returned or raised."""
        result = self._run(source)
        if result.output:
            self.out.write(result.output if result.output.endswith("\n") else result.output + "\n")
        if result.ok and result.result is not None:
            value = result.result
            self.out.write((value if isinstance(value, str) else render(value)) + "\n")
        if result.error is not None:
            self._print_error(result.error)
            if isinstance(result.error, LimitExceeded):
                self.err.write("note: the Lua state was discarded; the next line starts a fresh one "
                               "(globals defined so far are gone)\n")
        self.out.flush()
        self.err.flush()
        return result

    def _run(self, source: str) -> RunResult:
        """``session.run`` on a worker thread, so that Ctrl-C reaches the prompt while Lua runs.

        A pure Lua loop never returns to Python, so a signal could not be handled until the chunk
        ends. Ctrl-C calls the session's ``interrupt()`` when it has one; otherwise the chunk ends
        at its limits (wall clock), and the prompt says so.
        """
        outcome: dict[str, Any] = {}
        done = threading.Event()  # (an interrupted Thread.join() can leave is_alive() wrong; an Event cannot)

        def work() -> None:
            try:
                outcome["result"] = self.session.run(source, CHUNK)
            except BaseException as exc:  # re-raised on the prompt's thread
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name="kosmo-repl-chunk", daemon=True).start()
        told = False
        while not done.is_set():
            try:
                done.wait()
            except KeyboardInterrupt:
                interrupt = getattr(self.session, "interrupt", None)
                if interrupt is not None:
                    interrupt()
                elif not told:
                    told = True
                    self.err.write(f"\n(a running line cannot be stopped: it ends at its limits, at most "
                                   f"{self.runtime.limits.wall_time:g} s of wall-clock time)\n")
                    self.err.flush()
        if "error" in outcome:
            raise outcome["error"]
        result: RunResult = outcome["result"]
        return result

    def _print_error(self, error: KosmoError) -> None:
        self.out.flush()
        self.err.write(f"error: {error.headline()}\n")
        if error.hint:
            self.err.write(f"hint: {error.hint}\n")

    # -- commands ------------------------------------------------------------------------------

    def command(self, text: str) -> None:
        name, _, rest = text.partition(" ")
        rest = rest.strip()
        if name in (".exit", ".quit"):
            raise _Exit
        if name == ".help":
            self.out.write(HELP)
        elif name == ".reset":
            self.session.close()
            self.session = self.runtime.session(options=self.options)
            self.out.write("fresh Lua state: all globals forgotten\n")
        elif name == ".doc":
            if not rest:
                for page in self.runtime.docs.list():
                    self.out.write(f"{page['path']:<34} {page['title']}\n")
                return
            try:
                self.out.write(self.runtime.docs.read(rest))
            except KosmoError as exc:
                self._print_error(exc)
        elif name == ".search":
            hits = self.runtime.docs.search(rest) if rest else []
            for hit in hits:
                self.out.write(f"{hit['path']:<48} {hit['summary']}\n")
            if not hits:
                self.err.write("no matching docs; try other words or .doc\n")
        else:
            self.err.write(f"unknown command {name}; .help lists the commands\n")

    # -- terminal ------------------------------------------------------------------------------

    def _banner(self) -> None:
        names = ", ".join(self.runtime.catalog.names()) or "none"
        self.out.write(f"kosmo {__version__}, Lua 5.4 prompt. Integrations: {names}.\n"
                       'Try lua_read_doc("runtime") or .help; .exit or Ctrl-D quits.\n')

    def _setup_readline(self) -> None:
        if readline is None or not self.interactive:
            return
        readline.set_auto_history(False)  # a multi-line chunk is one history entry
        readline.set_completer(self._complete)
        readline.set_completer_delims(" \t\n()[]{},=+-*/%^#<>~;:'\"")
        readline.parse_and_bind("tab: complete")
        if self.history:
            try:
                readline.read_history_file(history_path())
            except OSError:
                pass
            readline.set_history_length(HISTORY_LENGTH)

    def _remember(self, typed: str) -> None:
        if readline is not None and self.interactive:
            readline.add_history(typed)

    def _save_history(self) -> None:
        if not self.history:
            return
        path = history_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)
            path.chmod(0o600)  # typed lines may hold ids or data worth keeping private, as shell history
        except OSError:
            pass

    def _words(self) -> list[str]:
        words = [*_GLOBALS, *_KEYWORDS, ".doc", ".search", ".reset", ".help", ".exit"]
        for ident in self.runtime.catalog.names():
            loaded = self.runtime.catalog.find(ident)
            key = ident.replace("-", "_")
            words.append(f"app.integrations.{key}")
            words += [f"app.integrations.{key}.{name}" for name in (loaded.manifest.functions if loaded else ())]
        return words

    def _complete(self, text: str, state: int) -> Any:
        if state == 0:
            self._matches = [word for word in self._words() if word.startswith(text)]
        return self._matches[state] if state < len(self._matches) else None
