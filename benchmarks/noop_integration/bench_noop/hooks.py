"""The bench-noop handler: does nothing, so only the bridge is measured."""

from typing import Any


def ping(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": args["id"]}
