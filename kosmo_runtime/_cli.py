"""The ``kosmo`` command line.

Exit codes: 0 success; 1 the script or call failed (error or limit); 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__, _cli_approvals, _cli_integrations
from ._errors import ConfigError, KosmoError

if TYPE_CHECKING:  # the runtime loads once a command runs (``kosmo --help`` stays cheap)
    from ._limits import Limits
    from ._options import RunOptions
    from ._policy import Approver, WriteRequest
    from ._result import RunResult
    from ._runtime import Runtime

__all__ = ["main"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mi": 1024**2, "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3}


class UsageFailure(Exception):
    """A command-line mistake: exit code 2 with this message."""


def _size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (write e.g. 65536, 64KiB or 64MiB)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


#: The sub-commands and their one-line help. Only the sub-command being run gets its options built (and the
#: modules they need imported), so that ``kosmo --help`` costs little more than Python's own start.
_COMMANDS = {
    "run": "run a Lua script",
    "call": "call one integration function",
    "docs": "list, search and read the Lua docs",
    "stubs": "write Lua Language Server stubs for editors (typed app.integrations)",
    "mcp": "serve the runtime to MCP clients (stdio, or HTTP on loopback)",
    "repl": "an interactive Lua prompt",
    "examples": "list the bundled example scripts, or copy them out",
    "accounts": "list or check the configured accounts",
    "integrations": "list the installed integrations, or write one from an OpenAPI spec",
    "approvals": "list the MCP servers' writes waiting for approval (shared state), approve or deny one",
}


def _parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The command line parser; only the sub-command named in ``argv`` gets its options."""
    parser = argparse.ArgumentParser(
        prog="kosmo",
        description="Run agent Lua scripts against SaaS integrations in a safe Lua 5.4 sandbox.",
        epilog="Examples:\n  kosmo run --demo --example demo\n  kosmo run --demo examples/demo.lua\n  echo 'return 6*7' | kosmo run -\n"
               "  kosmo call whereby.list_rooms --arg limit=5 --demo\n  kosmo docs read integrations.whereby\n"
               "  kosmo repl --demo\n  kosmo mcp --demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kosmo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, summary in _COMMANDS.items():
        if name == chosen:
            _SUBCOMMANDS[name](commands, summary)
        elif chosen not in _COMMANDS:  # (each is a whole parser: not made when another command was named)
            commands.add_parser(name, help=summary)
    return parser


def _execution_options(execution: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of the commands that run scripts or calls, added to ``execution``."""
    from ._limits import Limits

    execution.add_argument("--dry-run", action="store_true", help="run reads; describe writes instead of sending them")
    execution.add_argument("--read-only", action="store_true", help="deny every write")
    execution.add_argument("--audit-log", metavar="PATH", help="append one JSON line per integration call (default: $KOSMO_AUDIT_LOG)")
    execution.add_argument("--otel", action="store_true",
                           help="send OpenTelemetry traces (a span per run, call and HTTP request) over OTLP/HTTP, "
                                "configured by the OTEL_EXPORTER_OTLP_* variables (needs the otel extra)")
    limits = execution.add_argument_group("limits (a script cannot raise them)")
    limits.add_argument("--instructions", type=int, metavar="N", help=f"Lua instructions (default {Limits.instructions:,})")
    limits.add_argument("--memory", type=_size, metavar="SIZE", help="Lua memory, e.g. 64MiB (default 64MiB)")
    limits.add_argument("--wall-time", type=float, metavar="SECONDS", help=f"wall-clock seconds (default {Limits.wall_time:g})")
    limits.add_argument("--output", type=_size, metavar="SIZE", help="printed output (default 256KiB)")
    limits.add_argument("--result", type=_size, metavar="SIZE", help="JSON size of the return value (default 4MiB)")
    limits.add_argument("--depth", type=int, metavar="N", help=f"nesting depth of values (default {Limits.depth})")
    limits.add_argument("--calls", type=int, metavar="N", help=f"integration calls per run (default {Limits.calls:,})")
    return execution


def _after() -> argparse.ArgumentParser:
    """The same options on the actions of `docs` and `accounts`, so they may come before or after the action."""
    return _common_options(argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS))


def _add_run(commands: Any, summary: str) -> None:
    run = _execution_options(_common_options(commands.add_parser(
        "run", help=summary, description="Run a Lua script: prints its output, then its return value.")))
    run.add_argument("path", nargs="?", help="script file, or - for standard input")
    run.add_argument("-e", dest="code", metavar="CODE", help="run CODE instead of a file")
    run.add_argument("--example", metavar="NAME", help="run a bundled example script (see kosmo examples), e.g. demo")
    run.add_argument("--name", help="script name in error messages")
    tape = run.add_mutually_exclusive_group()
    tape.add_argument("--record", metavar="FILE", help="write every upstream exchange of the run to the cassette FILE "
                                                       "(secrets redacted)")
    tape.add_argument("--replay", metavar="FILE", help="answer every upstream request from the cassette FILE, in order; "
                                                       "no network")


def _add_call(commands: Any, summary: str) -> None:
    call = _execution_options(_common_options(commands.add_parser(
        "call", help=summary,
        description="Call one function without writing Lua, e.g. kosmo call whereby.list_rooms --arg limit=5")))
    call.add_argument("function", help="integration.function or integration.account.function")
    call.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE",
                      help="an argument; VALUE is text for string parameters and JSON otherwise (repeatable)")
    call.add_argument("--args-json", metavar="JSON", help="all arguments as one JSON object")
    call.add_argument("--account", help="account name (default: the integration's default)")


def _add_docs(commands: Any, summary: str) -> None:
    docs = _common_options(commands.add_parser("docs", help=summary))
    docs_commands = docs.add_subparsers(dest="docs_command", metavar="ACTION", required=True)
    after = _after()
    docs_commands.add_parser("list", parents=[after], help="list doc pages")
    search = docs_commands.add_parser("search", parents=[after], help="search pages and functions")
    search.add_argument("query", nargs="+")
    read = docs_commands.add_parser("read", parents=[after], help="print a page, e.g. integrations.whereby.list_rooms")
    read.add_argument("path")
    sync = docs_commands.add_parser("sync", parents=[after],
                                    help="regenerate the parameter tables and stubs in lua_docs/ from the manifests")
    sync.add_argument("--check", action="store_true", help="only report pages that are out of date (exit 1)")


def _add_stubs(commands: Any, summary: str) -> None:
    stubs = _common_options(commands.add_parser("stubs", help=summary), json=False)
    stubs.add_argument("--out", default="kosmo-stubs", metavar="DIR", help="where to write them (default ./kosmo-stubs)")


def _add_mcp(commands: Any, summary: str) -> None:
    mcp = _execution_options(_common_options(commands.add_parser(
        "mcp", help=summary,
        description="Serve the runtime as an MCP server: tools lua_list_docs, lua_search_docs, lua_read_doc, "
                    "execute_lua and call_integration, with the same accounts, policies, limits and audit log as "
                    "'kosmo run'. Writes that need approval ('ask') ask the client's user (MCP elicitation); "
                    "they are denied when the client cannot ask or does not answer in time."), json=False))
    mcp.add_argument("--http", type=_port, metavar="PORT",
                     help="serve streamable HTTP on PORT (path /mcp, 127.0.0.1 unless --host; 0: any free port, "
                          "named in the start-up lines) instead of standard input/output; clients send a bearer token")
    mcp.add_argument("--expose-functions", action="store_true",
                     help="also one tool per integration function, its input schema from the manifest (reads only, "
                          "unless --allow-writes)")
    mcp.add_argument("--approval-timeout", type=float, default=60.0, metavar="SECONDS",
                     help="how long an 'ask' write waits for the client's answer before it is denied (default 60; "
                          "never past --wall-time)")
    mcp.add_argument("--allow-writes", action="store_true",
                     help="with --expose-functions: expose write functions too (still subject to account policies)")
    _add_mcp_bounds(mcp.add_argument_group("bounds (both transports)"))
    _add_mcp_http(mcp.add_argument_group("HTTP (with --http)"))


def _add_mcp_bounds(group: Any) -> None:
    group.add_argument("--max-runs", type=_positive, default=8, metavar="N",
                       help="scripts and calls run at once (default 8)")
    group.add_argument("--max-queued", type=_count, default=32, metavar="N",
                       help="more that wait for a free slot (default 32); beyond, a tool call answers ServerBusy with "
                            "retry_after")
    group.add_argument("--workers", type=_worker_count, metavar="N",
                       help="run scripts in N worker processes (a run stuck past its wall time is killed); "
                            "0: in this process. Default: the number of cores with --http, else 0")


def _add_mcp_http(group: Any) -> None:
    group.add_argument("--host", metavar="ADDRESS",
                       help="bind ADDRESS instead of 127.0.0.1, e.g. 0.0.0.0; beyond loopback it needs --token-file or "
                            "KOSMO_MCP_TOKEN, and TLS from a reverse proxy in front")
    group.add_argument("--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
                       help="a Host header value clients may send besides the loopback names and the bound address, "
                            "e.g. kosmo.example.com behind a proxy (repeatable; exact name and port)")
    group.add_argument("--token-file", metavar="PATH",
                       help="the bearer token's file (made, mode 0600, when missing); default: $KOSMO_MCP_TOKEN, else "
                            "mcp-token in the per-user config folder")
    group.add_argument("--no-auth", action="store_true",
                       help="check no token (loopback only): any program on this machine can then run scripts with "
                            "the configured accounts")
    group.add_argument("--max-sessions", type=_positive, default=100, metavar="N",
                       help="open MCP sessions (default 100); at the cap a new one closes the session idle the longest, "
                            "or gets 503 with Retry-After when all are busy")


def _worker_count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of worker processes (0 or more), got {text!r}")
    return int(text)


def _workers(args: argparse.Namespace) -> int | None:
    """``kosmo mcp``'s worker processes: ``--workers``, else one per core for the HTTP server, else none."""
    if args.command != "mcp":
        return None
    if args.workers is not None:
        return args.workers or None
    return (os.cpu_count() or 1) if args.http is not None else None


def _add_repl(commands: Any, summary: str) -> None:
    repl = _execution_options(_common_options(commands.add_parser(
        "repl", help=summary, description="An interactive Lua prompt with the integrations loaded; globals are kept "
                                          "between lines. '=expr' or a bare expression prints its value; .help for more."),
        json=False))
    repl.add_argument("--no-history", action="store_true", help="neither read nor write the history file")


def _add_examples(commands: Any, summary: str) -> None:
    examples = commands.add_parser("examples", help=summary,
                                   description="List the example scripts installed with kosmo-runtime; with --copy, "
                                               "write them (or the NAMEs given) into a folder. Run one with "
                                               "kosmo run --demo --example NAME.")
    examples.add_argument("names", nargs="*", metavar="NAME", help="examples to copy (default: all)")
    examples.add_argument("--copy", metavar="DIR", type=Path, help="copy into DIR (never overwrites)")


def _add_accounts(commands: Any, summary: str) -> None:
    accounts = _common_options(commands.add_parser("accounts", help=summary))
    accounts_commands = accounts.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    after = _after()
    accounts_commands.add_parser("list", parents=[after], help="integration, account, default, write policy (never a secret)")
    check = accounts_commands.add_parser("check", parents=[after], help="validate the accounts file and environment")
    check.add_argument("--live", action="store_true", help="also call each account's current-user function")
    accounts_commands.add_parser("init", parents=[after], help="write an annotated starter accounts file "
                                 "(to --accounts PATH, else $KOSMO_ACCOUNTS, else the per-user file; never overwrites)")


_SUBCOMMANDS: dict[str, Callable[[Any, str], None]] = {
    "run": _add_run, "call": _add_call, "docs": _add_docs, "stubs": _add_stubs, "mcp": _add_mcp, "repl": _add_repl,
    "examples": _add_examples, "accounts": _add_accounts, "integrations": _cli_integrations.add_parser,
    "approvals": _cli_approvals.add_parser,
}


def _common_options(parser: argparse.ArgumentParser, *, json: bool = True) -> argparse.ArgumentParser:
    parser.add_argument("--accounts", metavar="PATH", help="accounts file (default: $KOSMO_ACCOUNTS, then the per-user file)")
    parser.add_argument("--demo", action="store_true", help="answer with the built-in simulators on loopback (no credentials)")
    if json:
        parser.add_argument("--json", action="store_true", help="print one JSON object (the result envelope)")
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r} (1 to 65535, or 0 for any free port)")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number from 1: {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number from 0: {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kosmo`` command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "examples":
            return _cmd_examples(args)
        if args.command == "integrations":
            return _cli_integrations.command(args)
        if args.command == "approvals":
            return _cli_approvals.command(args)
        if args.command == "accounts" and args.accounts_command == "init":
            return _init_accounts(args)
        if args.command == "mcp":
            _check_mcp_options(args)
        # An MCP server asks through its client (elicitation), never at a terminal (stdio is the protocol).
        args.run_options = _run_options(args, interactive=args.command != "mcp")
        with _tracing(args), _runtime(args, args.run_options) as runtime:
            if args.command in ("run", "call", "mcp", "repl"):
                _ = runtime.audit_log  # at start-up: an unwritable audit log is a configuration error (exit 2)
            handler = {"run": _cmd_run, "call": _cmd_call, "docs": _cmd_docs, "accounts": _cmd_accounts,
                       "mcp": _cmd_mcp, "repl": _cmd_repl, "stubs": _cmd_stubs}[args.command]
            return handler(runtime, args)
    except UsageFailure as exc:
        parser.exit(2, f"kosmo: error: {exc}\n")
    except ConfigError as exc:
        _print_error(exc, sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


@contextlib.contextmanager
def _tracing(args: argparse.Namespace) -> Iterator[None]:
    """With ``--otel``: an OTLP-exporting tracer provider for the command, flushed when it ends."""
    if not getattr(args, "otel", False):
        yield
        return
    try:
        from ._tracing import configure_from_environment

        provider = configure_from_environment()
    except ImportError:
        raise UsageFailure("--otel needs the otel extra: pip install 'kosmo-runtime[otel]'") from None
    try:
        yield
    finally:
        provider.shutdown()


@contextlib.contextmanager
def _runtime(args: argparse.Namespace, run: RunOptions) -> Iterator[Runtime]:
    """The command's Runtime, ``run`` its default options (its pooled sandboxes have ``run``'s limits)."""
    if getattr(args, "demo", False):
        from ._demo import Demo

        with Demo() as demo:
            print(f"[demo] simulated {', '.join(demo.servers)} are answering on 127.0.0.1 "
                  f"(simulated date {demo.now():%Y-%m-%d}); "
                  "no real service is called and no credentials are needed", file=sys.stderr)
            with demo.runtime(options=run, audit_log=getattr(args, "audit_log", None),
                              workers=_workers(args)) as runtime:
                yield runtime
        return
    from ._runtime import Runtime

    with Runtime(accounts=args.accounts, options=run, audit_log=getattr(args, "audit_log", None),
                 workers=_workers(args)) as runtime:
        yield runtime


def _run_options(args: argparse.Namespace, *, interactive: bool = True) -> RunOptions:
    """The ``RunOptions`` of the command's flags: limits, ``--dry-run``, ``--read-only``, and the terminal's
    approver (``interactive``), built once; every run, call, REPL chunk or MCP tool call of the command gets them."""
    from ._options import RunOptions

    return RunOptions(limits=_limits(args), dry_run=getattr(args, "dry_run", False),
                      read_only=getattr(args, "read_only", False),
                      approve=_terminal_approver() if interactive else None)


def _limits(args: argparse.Namespace) -> Limits:
    from ._limits import Limits

    names = ("instructions", "memory", "wall_time", "output", "result", "depth", "calls")
    try:
        return Limits().merged(**{name: getattr(args, name, None) for name in names})
    except ValueError as exc:
        raise UsageFailure(str(exc)) from None


def _terminal_approver() -> Approver | None:
    """Ask on the controlling terminal; ``None`` when there is none (then ``ask`` means deny)."""
    try:
        tty = open("/dev/tty", "r+", encoding="utf-8")
    except OSError:
        return None

    def approve(request: WriteRequest) -> bool:
        tty.write(f"kosmo: allow write {request.describe()}? [y/N] ")
        tty.flush()
        return tty.readline().strip().lower() in ("y", "yes")

    return approve


def _source(args: argparse.Namespace) -> tuple[str, str]:
    from ._script_source import decode_source, read_source  # (its Limits: not for `kosmo --help`)

    if sum(given is not None for given in (args.path, args.code, args.example)) > 1:
        raise UsageFailure("give one script: a path, - (standard input), -e CODE or --example NAME")
    if args.code is not None:  # the command line comes decoded with surrogateescape: check it is UTF-8
        return _checked(lambda: decode_source(os.fsencode(args.code), "-e CODE")), args.name or "(command line)"
    if args.example is not None:
        try:
            from ._examples import read_example

            text, filename = read_example(args.example)
        except KosmoError as exc:
            raise UsageFailure(f"{exc.message}; {exc.hint}") from None
        return text, args.name or filename
    if not args.path:
        raise UsageFailure("missing script: kosmo run PATH, kosmo run - (standard input), kosmo run -e CODE "
                           "or kosmo run --example NAME")
    if args.path == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        text = sys.stdin.read() if stdin is None else _checked(lambda: read_source(stdin, "standard input"))
        return text, args.name or "stdin"
    path = Path(args.path)
    try:
        with path.open("rb") as stream:
            return _checked(lambda: read_source(stream, args.path)), args.name or path.name
    except OSError as exc:
        raise UsageFailure(f"cannot read {args.path}: {exc.strerror}") from None


def _checked(read: Callable[[], str]) -> str:
    """The source ``read`` gives, or a usage error saying why it cannot run."""
    from ._script_source import SourceError

    try:
        return read()
    except SourceError as exc:
        raise UsageFailure(str(exc)) from None


def _cmd_examples(args: argparse.Namespace) -> int:
    from ._examples import copy_examples, example_names, example_summary  # importlib.resources: only here

    if args.copy is None:
        if args.names:
            raise UsageFailure("name examples only to copy them: kosmo examples --copy DIR NAME...")
        for name in example_names():
            print(f"{name:<16} {example_summary(name)}")
        print("run one: kosmo run --demo --example demo; copy them out: kosmo examples --copy DIR", file=sys.stderr)
        return 0
    try:
        copied = copy_examples(args.copy, args.names)
    except KosmoError as exc:
        raise UsageFailure(f"{exc.message}; {exc.hint}") from None
    except FileExistsError as exc:
        raise UsageFailure(f"not overwriting {exc}") from None
    except OSError as exc:
        raise UsageFailure(f"cannot write into {args.copy}: {exc.strerror}") from None
    for target in copied:
        print(f"copied {target}")
    return 0


def _cmd_run(runtime: Runtime, args: argparse.Namespace) -> int:
    source, name = _source(args)
    stream = not args.json and sys.stdout.isatty()  # on a terminal, print as it happens; else all at the end
    result = runtime.run(source, name=name, options=args.run_options,
                         on_output=_write_now if stream else None, record=args.record, replay=args.replay)
    return _report(result, args.json, printed=stream)


def _write_now(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _check_mcp_options(args: argparse.Namespace) -> None:
    if args.allow_writes and not args.expose_functions:
        raise UsageFailure("--allow-writes decides whether write functions get their own tools, so it needs "
                           "--expose-functions (execute_lua and call_integration follow the account policies; "
                           "use --read-only to deny every write)")
    if args.allow_writes and args.read_only:
        raise UsageFailure("--allow-writes and --read-only contradict each other")
    http_only = [flag for flag, given in (("--host", args.host is not None), ("--allowed-host", args.allowed_host),
                                          ("--token-file", args.token_file), ("--no-auth", args.no_auth)) if given]
    if args.http is None and http_only:
        raise UsageFailure(f"{http_only[0]} is an HTTP option: add --http PORT")
    if args.no_auth and args.token_file:
        raise UsageFailure("--no-auth and --token-file contradict each other")
    from ._mcp_http import is_loopback, parse_host
    from ._mcp_token import TOKEN_ENV

    host = args.host or "127.0.0.1"
    if not is_loopback(host):
        if args.no_auth:
            raise UsageFailure(f"--no-auth is for a loopback bind only; {host} is reachable from other machines")
        if not args.token_file and not os.environ.get(TOKEN_ENV):
            raise UsageFailure(f"binding {host} (beyond loopback) needs a token you provision: --token-file PATH "
                               f"(made there if missing) or {TOKEN_ENV}")
    for entry in args.allowed_host:
        if parse_host(entry) is None:
            raise UsageFailure(f"--allowed-host {entry!r}: write a host name or address, optionally with :PORT")


def _cmd_mcp(runtime: Runtime, args: argparse.Namespace) -> int:
    from ._mcp import serve
    from ._mcp_gate import RunGate

    _ = runtime.accounts  # a broken accounts file stops the server here (exit 2), not at every tool call
    _ = runtime.worker_pool  # worker processes (--workers) start with the server, not with its first run
    gate = RunGate(args.max_runs, args.max_queued, longest=runtime.limits.wall_time)
    serve(runtime, http=_http_options(args), gate=gate, expose_functions=args.expose_functions,
          allow_writes=args.allow_writes, options=args.run_options,
          approval_timeout=args.approval_timeout)
    return 0


def _http_options(args: argparse.Namespace) -> Any:
    """The ``HttpOptions`` of ``kosmo mcp --http`` (None for stdio); the token is read or made here."""
    if args.http is None:
        return None
    from ._mcp_http import HttpOptions
    from ._mcp_token import load_token

    return HttpOptions(port=args.http, host=args.host or "127.0.0.1", allowed_hosts=tuple(args.allowed_host),
                       token=None if args.no_auth else load_token(args.token_file), max_sessions=args.max_sessions)


def _cmd_repl(runtime: Runtime, args: argparse.Namespace) -> int:
    from ._repl import Repl

    _ = runtime.accounts  # a broken accounts file stops here (exit 2), not at every line
    return Repl(runtime, options=args.run_options, history=not args.no_history).loop()


def _cmd_call(runtime: Runtime, args: argparse.Namespace) -> int:
    arguments = _call_arguments(runtime, args)
    result = runtime.call(args.function, arguments, account=args.account, options=args.run_options)
    return _report(result, args.json)


def _call_arguments(runtime: Runtime, args: argparse.Namespace) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if args.args_json:
        try:
            arguments = json.loads(args.args_json)
        except json.JSONDecodeError as exc:
            raise UsageFailure(f"--args-json is not valid JSON: {exc.msg}") from None
        if not isinstance(arguments, dict):
            raise UsageFailure("--args-json must be a JSON object")
    loaded = runtime.catalog.find(args.function.split(".")[0])
    params = {}
    if loaded is not None:
        short = loaded.manifest.resolve_function(args.function.split(".")[-1])
        params = loaded.manifest.functions[short].params if short else {}
    for item in args.arg:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageFailure(f"--arg {item!r}: write NAME=VALUE")
        param = params.get(name)
        if param is not None and param.type == "string":
            arguments[name] = value
        else:
            try:
                arguments[name] = json.loads(value)
            except json.JSONDecodeError:
                arguments[name] = value
    return arguments


def _report(result: RunResult, as_json: bool, *, printed: bool = False) -> int:
    """Print a run's outcome (its output too, unless ``printed`` already); the exit code."""
    from ._values import render

    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        sys.stdout.write("" if printed else result.output)
        if result.ok and result.result is not None:
            print(result.result if isinstance(result.result, str) else render(result.result))
        if result.error is not None:
            _print_error(result.error, sys.stderr)
    if result.error is not None and isinstance(result.error, ConfigError):
        return 2
    return 0 if result.ok else 1


def _print_error(error: KosmoError, stream: TextIO) -> None:
    stream.write(f"error: {error.headline()}\n")
    if error.hint:
        stream.write(f"hint: {error.hint}\n")
    traceback = getattr(error, "traceback", None)
    if traceback:
        stream.write(traceback.rstrip() + "\n")


def _cmd_docs(runtime: Runtime, args: argparse.Namespace) -> int:
    docs = runtime.docs
    if args.docs_command == "list":
        pages = docs.list()
        if args.json:
            print(json.dumps(pages, indent=2))
        for page in [] if args.json else pages:
            print(f"{page['path']:<34} {page['title']}: {page['summary']}")
        return 0
    if args.docs_command == "search":
        hits = docs.search(" ".join(args.query))
        if args.json:
            print(json.dumps(hits, indent=2))
        for hit in [] if args.json else hits:
            print(f"{hit['path']:<48} {hit['summary']}")
        if not hits and not args.json:
            print("no matching docs; try other words or 'kosmo docs list'", file=sys.stderr)
        return 0 if hits else 1
    if args.docs_command == "sync":
        return _sync_docs(runtime, check=args.check)
    try:
        print(docs.read(args.path), end="")
    except KosmoError as exc:
        _print_error(exc, sys.stderr)
        return 1
    return 0


def _sync_docs(runtime: Runtime, *, check: bool) -> int:
    from ._docs import sync_parameter_tables
    from ._stubs import documented_stubs, sync_stubs

    folder = Path(str(runtime.docs.root))  # the docs as files, to rewrite (the clone's lua_docs/)
    stale = []
    for ident in runtime.catalog.names():
        path = folder / "integrations" / f"{ident}.md"
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        synced = sync_parameter_tables(text, runtime.catalog.find(ident).manifest)  # type: ignore[union-attr]
        if synced != text:
            stale.append(str(path))
            if not check:
                path.write_text(synced, encoding="utf-8")
    stale += map(str, sync_stubs(folder / "stubs", documented_stubs(runtime.docs), check=check))
    verb = "out of date" if check else "updated"
    for item in stale:
        print(f"{verb}: {item}")
    return 1 if check and stale else 0


def _cmd_stubs(runtime: Runtime, args: argparse.Namespace) -> int:
    from ._stubs import coverage, runtime_stubs, sync_stubs

    out = Path(args.out)
    files = runtime_stubs(runtime)
    try:
        changed = sync_stubs(out, files)
    except OSError as exc:
        raise UsageFailure(f"cannot write the stubs to {out}: {exc.strerror or exc}") from None
    manifests = [runtime.catalog.find(ident).manifest for ident in runtime.catalog.names()]  # type: ignore[union-attr]
    print(f"{out}: {len(files)} stub files ({len(changed)} changed) for {len(manifests)} integrations; "
          f"{coverage(manifests).describe()}")
    print(f'point your editor at it: .luarc.json {{"workspace.library": ["{out}"], "runtime.version": "Lua 5.4"}}')
    return 0


def _accounts_path(args: argparse.Namespace) -> Path:
    from ._accounts import default_accounts_path  # dataclasses and friends: not for `kosmo --help`

    return Path(getattr(args, "accounts", None) or os.environ.get("KOSMO_ACCOUNTS") or default_accounts_path()).expanduser()


def _no_accounts_file() -> str:
    from ._accounts import default_accounts_path

    return (f"no accounts file: none given with --accounts, KOSMO_ACCOUNTS is not set, and {default_accounts_path()} "
            "does not exist; write an annotated starter file with: kosmo accounts init")


def _init_accounts(args: argparse.Namespace) -> int:
    path = _accounts_path(args)
    if path.exists():
        raise UsageFailure(f"{path} already exists; not overwriting it (check it with: kosmo accounts check)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        from ._examples import read_example

        path.write_text(read_example("accounts.yaml")[0], encoding="utf-8")
    except OSError as exc:
        raise UsageFailure(f"cannot write {path}: {exc.strerror}") from None
    print(f"wrote {path}: an example account per integration; edit it, export the variables it names, "
          "then run: kosmo accounts check")
    return 0


def _cmd_accounts(runtime: Runtime, args: argparse.Namespace) -> int:
    accounts = runtime.accounts
    if args.accounts_command == "list":
        rows = accounts.describe()
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print(f"no accounts configured in {accounts.source}" if accounts.source else _no_accounts_file())
        for row in [] if args.json else rows:
            marker = "*" if row["default"] else " "
            label = f"  ({row['label']})" if row.get("label") else ""
            print(f"{marker} {row['integration']:<16} {row['account']:<16} writes: {row['writes']}{label}")
        return 0
    if not accounts.source and not args.json:
        print(_no_accounts_file())
        return 0
    problems = accounts.check()
    configuration = bool(problems)
    report: list[dict[str, Any]] = [{"error": p.to_dict()} for p in problems]
    for problem in problems:
        if not args.json:
            _print_error(problem, sys.stdout)
    if args.live:
        for integration in accounts.integrations():
            manifest = runtime.catalog.find(integration).manifest  # type: ignore[union-attr]
            broken = {(p.integration, p.account) for p in problems}
            for name in accounts.account_names(integration):
                if (integration, name) in broken:
                    continue
                result = runtime.call(f"{integration}.{manifest.check}", {}, account=name)
                report.append({"integration": integration, "account": name, "ok": result.ok,
                               "error": result.error.to_dict() if result.error else None})
                if not args.json:
                    status = "ok" if result.ok else f"FAILED: {result.error.message if result.error else ''}"
                    print(f"{integration}.{name}: {status}")
                if not result.ok:
                    problems.append(result.error)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps({"ok": not problems, "source": accounts.source, "checks": report}, indent=2))
    elif not problems:
        print(f"ok: {len(accounts.describe())} account(s) in {accounts.source}")
    return 2 if configuration else 1 if problems else 0
