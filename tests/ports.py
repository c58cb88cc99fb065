"""Free loopback ports for the servers tests start (redis-server, nginx, kosmo mcp --http).

A port is chosen below the kernel's ephemeral range (``net.ipv4.ip_local_port_range``): a port
the kernel handed out for ``bind(0)`` is also one it hands out as the source port of outgoing
connections, so between the probe and the server's own bind another connection could take it
(nginx then failed with "Address already in use"). Below the range only an explicit bind takes
it; the choice is random, so tests started at once rarely try the same one, and each is checked free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port"]

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000
_taken: set[int] = set()  # handed out by this process already


def _ephemeral_start() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A loopback TCP port nothing listens on now, outside the ephemeral range, not given out before here."""
    start = _ephemeral_start()
    below = range(_LOWEST, max(start, _LOWEST))
    for port in random.sample(below, k=min(200, len(below))):
        if port in _taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    with socket.socket() as probe:  # no room below the ephemeral range: let the kernel choose
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
