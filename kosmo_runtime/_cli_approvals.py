"""``kosmo approvals``: list the ``ask`` writes waiting for a decision in the shared state, approve or deny one.

The MCP servers (``kosmo mcp``, every replica sharing the state) list each write they ask their
client about; an operator on any machine that reaches the same state decides it here, and the run
waiting for it goes on (or is refused) in whichever replica it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

__all__ = ["add_parser", "command"]


def add_parser(commands: Any, summary: str) -> None:
    """The ``approvals`` sub-command and its actions."""
    parser = commands.add_parser("approvals", help=summary, description=(
        "The MCP servers (every replica sharing the state) list each write they ask their client about; decide one "
        "here and the run waiting for it sends it (or is refused it) in whichever replica it runs."))
    actions = parser.add_subparsers(dest="approvals_command", metavar="ACTION", required=True)
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--state", metavar="URL",
                       help="the servers' state (default: $KOSMO_STATE_URL, then the accounts file's settings: state)")
    after.add_argument("--accounts", metavar="PATH", help="accounts file whose settings: state to use")
    listing = actions.add_parser("list", parents=[after], help="the writes waiting for a decision, oldest first")
    listing.add_argument("--json", action="store_true", help="print them as one JSON array")
    for action, verb in (("approve", "send"), ("deny", "refuse")):
        decide = actions.add_parser(action, parents=[after], help=f"{action} one pending write (its run will {verb} it)")
        decide.add_argument("id", help="the approval's id, from kosmo approvals list")


def command(args: argparse.Namespace) -> int:
    """Run ``kosmo approvals ACTION``; ConfigError propagates (exit 2 with the message and fix)."""
    from . import _pending
    from ._errors import ConfigError, KosmoError
    from ._runtime import Runtime

    with Runtime(accounts=args.accounts, state=args.state) as runtime:
        state = runtime.state
        if state.url == "memory":
            raise ConfigError("kosmo approvals needs the state the MCP servers share; with the in-process state each "
                              "server keeps its approvals to itself",
                              hint="give --state (or set KOSMO_STATE_URL) as the servers have it: sqlite:///path or "
                                   "redis://host:6379/0")
        try:
            pending = [approval for approval in state.pending_approvals() if approval.get("expires", 0) > time.time()]
            if args.approvals_command == "list":
                _print_list(pending, as_json=args.json)
                return 0
            approval = next((a for a in pending if a.get("id") == args.id), None)
            approved = args.approvals_command == "approve"
            if approval is None or not _pending.decide(state, args.id, approved, _pending.BY_OPERATOR):
                print(f"kosmo: no pending approval {args.id!r} (unknown, decided already, or expired; "
                      "see kosmo approvals list)", file=sys.stderr)
                return 1
        except KosmoError as exc:
            print(f"error: {exc.headline()}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
            return 1
    print(f"{'approved' if approved else 'denied'}: {_label(approval)} ({args.id}); "
          f"the run {'sends it' if approved else 'is refused it'} now")
    return 0


def _label(approval: dict[str, Any]) -> str:
    return f"{approval.get('integration')}.{approval.get('function')} on account '{approval.get('account')}'"


def _print_list(pending: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(pending, ensure_ascii=False, indent=2))
        return
    if not pending:
        print("no writes are waiting for approval")
        return
    now = time.time()
    for approval in pending:
        print(f"{approval['id']}  {_label(approval)}  asked {now - approval.get('asked', now):.0f} s ago by "
              f"{approval.get('replica', '?')}, expires in {approval.get('expires', now) - now:.0f} s")
        print(f"    arguments: {json.dumps(approval.get('arguments'), ensure_ascii=False, default=str)}")
    print("decide one with: kosmo approvals approve ID (or deny ID)")
