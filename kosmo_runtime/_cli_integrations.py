"""``kosmo integrations``: list what is installed, or write a new integration from an OpenAPI spec."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "command"]


def add_parser(commands: Any, summary: str) -> None:
    """The ``integrations`` sub-command and its actions."""
    parser = commands.add_parser("integrations", help=summary)
    actions = parser.add_subparsers(dest="integrations_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="the installed integrations and where each comes from")
    new = actions.add_parser(
        "new", help="write a manifest-only integration from an OpenAPI 3 spec",
        description="Write NAME/manifest.yaml and NAME/docs.md: one declarative function per chosen operation "
                    "(no Python). The folder is searched at once: kosmo docs read integrations.NAME.")
    new.add_argument("name", help="integration id, e.g. my-service (lowercase letters, digits, '-')")
    new.add_argument("--from-openapi", dest="spec", required=True, metavar="SPEC", type=Path,
                     help="an OpenAPI 3.x document (JSON or YAML)")
    new.add_argument("--operations", metavar="OP1,OP2", help="operationIds or generated names (default: all)")
    new.add_argument("--base-url", metavar="URL", help="the service's https URL, when the spec's servers do not say")
    new.add_argument("--auth", metavar="KIND", help="bearer, basic, header:NAME or query:NAME, when securitySchemes do not say")
    new.add_argument("--out", metavar="DIR", type=Path,
                     help="where to write (default: the per-user integrations folder, always searched)")
    new.add_argument("--force", action="store_true", help="replace an existing integration of that name")
    new.add_argument("--list", action="store_true", help="only list the spec's operations and their function names")


def command(args: argparse.Namespace) -> int:
    """Run ``kosmo integrations ACTION``; ConfigError propagates (exit 2 with the message and fix)."""
    from ._discovery import Catalog, user_integrations_dir

    if args.integrations_command == "list":
        catalog = Catalog()
        for ident in catalog.names():
            loaded = catalog.find(ident)
            if loaded is not None:
                print(f"{ident:<20} {len(loaded.manifest.functions):>3} functions  {loaded.folder}")
        return 0
    from ._openapi import generate, load_spec, write_integration

    spec = load_spec(args.spec)
    operations = [op.strip() for op in args.operations.split(",") if op.strip()] if args.operations else None
    generated = generate(spec, args.name, operations=operations, base_url=args.base_url, auth=args.auth,
                         source=args.spec.name)
    functions = generated.manifest["functions"]
    if args.list:
        for name, function in functions.items():
            print(f"{name:<40} {function['operation']:<5} {function['upstream']}")
        for label, why in generated.refused.items():
            print(f"{'(left out)':<40} {label}: {why}")
        return 0
    root = args.out or user_integrations_dir()
    folder = write_integration(generated, root, force=args.force)
    print(f"wrote {folder}/manifest.yaml ({len(functions)} functions) and docs.md"
          + (f"; {len(generated.refused)} operations left out, listed in docs.md" if generated.refused else ""))
    if args.out is not None:
        print(f"make it visible: export KOSMO_INTEGRATIONS_PATH={root}", file=sys.stderr)
    credentials = "\n".join(f"          {field}: ${{{args.name.upper().replace('-', '_')}_{field.upper()}}}"
                            for field in generated.manifest["credentials"])
    print(f"read it: kosmo docs read integrations.{args.name}\n"
          f"add an account to your accounts file (kosmo accounts init makes one):\n"
          f"  integrations:\n    {args.name}:\n      accounts:\n        default:\n{credentials}")
    return 0
