"""kosmo-runtime: a sandboxed Lua 5.4 runtime in which AI agents call SaaS integrations."""

from ._simulate import ConnectionDropped, Fault, LoopbackServer, Simulator, route

__version__ = "0.1.0"

__all__ = [
    "ConnectionDropped",
    "Fault",
    "LoopbackServer",
    "Simulator",
    "route",
]
