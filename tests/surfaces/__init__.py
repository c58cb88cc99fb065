"""The surfaces over the runtime: the JSON envelope, the MCP server and the REPL."""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema

from kosmo_runtime._result import envelope_schema


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = envelope_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def check_envelope(data: Any) -> dict[str, Any]:
    """Fail with every schema violation of ``data``; return it for further checks."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return data
