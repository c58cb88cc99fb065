"""``kosmo mcp --http``: the MCP server over streamable HTTP, fit to expose.

In front of the SDK's streamable HTTP app, every request passes, in order:

1. the Host check (DNS rebinding): the header is parsed into name and port and must equal one of the
   allowed pairs exactly (the loopback names at the bound port, the bound address, ``--allowed-host``);
   an ``Origin``, when sent, must name an allowed host too. Else 421 / 403.
2. the bearer token (``Authorization: Bearer <token>``, compared in constant time). Else 401 with
   ``WWW-Authenticate: Bearer realm="kosmo", resource_metadata="…"`` as the MCP authorization spec asks;
   the metadata document (RFC 9728) names the resource and that the token goes in the header.
3. the session cap: a request opening a session while ``max_sessions`` are open (counting those
   being opened) first closes the session idle the longest (no request in flight, no open stream);
   when every session is busy the answer is 503 with ``Retry-After``. One server has one token, so
   the cap is per token.

Request bodies stay capped at 4 MiB (the SDK's limit, 413 beyond). Runs in flight are bounded by the
tools' :class:`~kosmo_runtime._mcp_gate.RunGate`.

The port is bound (and listening) before the start-up lines are written, so the URL they name is this
server's: port 0 asks the system for a free one, and a port in use stops the server with a
``ConfigError`` (exit 2) instead of after the announcement.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import math
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TextIO

from ._errors import ConfigError
from ._mcp_token import TOKEN_ENV, Token

__all__ = ["MAX_BODY_BYTES", "HttpOptions", "bind", "is_loopback", "parse_host", "serve_http"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 4 * 1024 * 1024
PATH = "/mcp"
METADATA_PATHS = ("/.well-known/oauth-protected-resource" + PATH, "/.well-known/oauth-protected-resource")
KEEP_ALIVE_SECONDS = 15
BACKLOG = 2048  # uvicorn's default
SESSION_RETRY_AFTER = 5  # seconds: sessions end as their clients leave or go idle
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class HttpOptions:
    """Where and how ``kosmo mcp --http`` listens. ``token`` None means ``--no-auth`` (loopback only)."""

    port: int
    host: str = "127.0.0.1"
    token: Token | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_sessions: int = 100
    session_idle_timeout: float = 600.0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_host(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header value (``name[:port]``, IPv6 in brackets); None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]") + 1
        name, rest = (value[:end], value[end:]) if end else (value, "")
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if not _NAME.fullmatch(name) or (name.startswith("[") and not _is_ip(name[1:-1])):
        return None
    if not rest:
        return name, None
    if rest[0] != ":" or not _PORT.fullmatch(rest[1:]) or not 0 < int(rest[1:]) < 65536:
        return None
    return name, int(rest[1:])


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def allowed_hosts(options: HttpOptions) -> set[tuple[str, int | None]]:
    """The ``(name, port)`` pairs a Host header may carry for this server."""
    allowed: set[tuple[str, int | None]] = {(name, options.port) for name in ("127.0.0.1", "localhost", "[::1]")}
    if options.host not in ("0.0.0.0", "::", ""):
        bound = f"[{options.host}]" if ":" in options.host else options.host
        allowed.add((bound.lower(), options.port))
    for entry in options.allowed_hosts:
        parsed = parse_host(entry)
        if parsed is None:
            raise ValueError(f"not a host name, or name:port: {entry!r}")
        allowed.add(parsed)
    return allowed


class Guard:
    """The checks every HTTP request passes before the MCP app sees it (see the module's docstring)."""

    def __init__(self, app: App, options: HttpOptions, session_manager: Any) -> None:
        self.app = app
        self.token = options.token.value.encode() if options.token is not None else None
        self.allowed = allowed_hosts(options)
        self.sessions = _SessionCap(session_manager, options.max_sessions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # starts and stops the session manager
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # a WebSocket: MCP has none here, and it would skip the checks below
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        host = parse_host(headers.get("host", ""))
        if host is None or host not in self.allowed:
            await _plain(send, 421, "Invalid Host header: this server answers only the host names it is configured "
                                    "for (kosmo mcp --allowed-host)")
            return
        if "origin" in headers and not self._origin_allowed(headers["origin"]):
            await _plain(send, 403, "Invalid Origin header")
            return
        base = f"{scope.get('scheme', 'http')}://{headers['host']}"
        if scope["path"] in METADATA_PATHS:
            await _json(send, 200, {"resource": base + PATH, "resource_name": "kosmo",
                                    "bearer_methods_supported": ["header"]})
            return
        if self.token is not None and not await self._authorized(headers, base, send):
            return
        if scope["method"] == "POST" and "mcp-session-id" not in headers and "mcp-protocol-version" not in headers:
            # A 2025 initialize (2026-07-28 requests carry the version, and open no session).
            async with self.sessions.opening(send) as answering:
                await self.app(scope, receive, _retry_after_on_503(answering))
            return
        await self.app(scope, receive, _retry_after_on_503(send))

    def _origin_allowed(self, origin: str) -> bool:
        scheme, sep, rest = origin.partition("://")
        return bool(sep) and scheme.lower() in ("http", "https") and parse_host(rest) in self.allowed

    async def _authorized(self, headers: dict[str, str], base: str, send: Send) -> bool:
        assert self.token is not None
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token):
            return True
        challenge = f'Bearer realm="kosmo", resource_metadata="{base}{METADATA_PATHS[0]}"'
        if not credentials:  # RFC 6750: no error code when no credentials were sent
            body = {"error": "unauthorized", "error_description": "this server needs Authorization: Bearer <token>"}
        else:
            description = "the bearer token is not this server's"
            challenge += f', error="invalid_token", error_description="{description}"'
            body = {"error": "invalid_token", "error_description": description}
        await _json(send, 401, body, [(b"www-authenticate", challenge.encode())])
        return False


class _SessionCap:
    """Makes room for a new session at the cap by closing the one idle the longest.

    The SDK's session manager enforces ``max_sessions`` itself (503 at the cap); this reads its
    session table (private to the SDK: a test covers it) to pick a session with no request in flight.
    """

    def __init__(self, manager: Any, limit: int) -> None:
        self.manager = manager
        self.limit = limit
        self._opening = 0  # requests that may open a session, made room for, not answered yet

    @contextlib.asynccontextmanager
    async def opening(self, send: Send) -> AsyncIterator[Send]:
        """Around a request that may open a session: room for it (and for the others opening) first.

        It counts as opening until its answer starts (by then its session, if any, is in the table and
        busy answering it); the ``send`` to answer through is yielded. A session that has not yet
        answered its opening request (its idle deadline still infinite) is never the one closed: the
        SDK registers a session before the request that opens it is counted in flight.
        """
        sessions: dict[str, Any] = self.manager._server_instances
        while len(sessions) + self._opening >= self.limit:
            idle = [(transport.idle_scope.deadline, session_id, transport) for session_id, transport in sessions.items()
                    if transport.idle_scope is not None and transport._requests_in_flight == 0
                    and transport.idle_scope.deadline != math.inf]
            if not idle:
                break  # all busy: the SDK answers 503 (with Retry-After)
            _, session_id, transport = min(idle)
            await self.manager._discard_session(session_id, transport)  # forgets it before its first await
        self._opening += 1
        counted = True

        async def answering(message: Message) -> None:
            nonlocal counted
            if counted and message["type"] == "http.response.start":
                counted = False
                self._opening -= 1
            await send(message)

        try:
            yield answering
        finally:
            if counted:
                self._opening -= 1


def _retry_after_on_503(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 503:
            message["headers"] = [*message.get("headers", []), (b"retry-after", str(SESSION_RETRY_AFTER).encode())]
        await send(message)
    return sending


async def _json(send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await _respond(send, status, json.dumps(body).encode(), b"application/json", list(headers))


async def _plain(send: Send, status: int, text: str) -> None:
    await _respond(send, status, text.encode(), b"text/plain; charset=utf-8", [])


async def _respond(send: Send, status: int, body: bytes, kind: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


# -- serving --------------------------------------------------------------------------------------


def announce(options: HttpOptions, out: TextIO) -> None:
    """The start-up lines: where, which token (shown only the once it was made), what is at risk."""
    out.write(f"kosmo mcp: streamable HTTP at {options.url}\n")
    token = options.token
    if token is None:
        out.write(f"kosmo mcp: --no-auth: no token is checked; any program on this machine that can connect to "
                  f"{options.host}:{options.port} runs scripts with the configured accounts' credentials\n")
    elif token.created:
        snippet = {"mcpServers": {"kosmo": {"type": "http", "url": options.url,
                                            "headers": {"Authorization": f"Bearer {token.value}"}}}}
        out.write(f"kosmo mcp: made a token and stored it in {token.source} (mode 0600); it is shown this once.\n"
                  f"kosmo mcp: client configuration:\n{json.dumps(snippet, indent=2)}\n")
    elif token.source == TOKEN_ENV:
        out.write(f"kosmo mcp: clients send the token in ${TOKEN_ENV} (Authorization: Bearer ...)\n")
    else:
        out.write(f"kosmo mcp: clients send the token stored in {token.source} (Authorization: Bearer ...; "
                  "not shown again)\n")
    if not is_loopback(options.host):
        out.write(f"kosmo mcp: warning: serving plain HTTP on {options.host}: the token and the results cross the "
                  "network unencrypted; put a TLS-terminating reverse proxy in front (README: Deployment)\n")
    out.flush()


def bind(options: HttpOptions) -> tuple[socket.socket, HttpOptions]:
    """A socket listening where ``options`` say, and the options with its port (the system's choice for 0)."""
    host = options.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, options.port), family=family, backlog=BACKLOG)
    except OSError as exc:
        raise ConfigError(f"kosmo mcp --http {options.port}: cannot listen on {options.host} port {options.port}: "
                          f"{exc.strerror or exc}", hint="choose a free port (--http 0: any free port, printed at "
                          "start), or stop the program holding it") from None
    return listener, replace(options, port=int(listener.getsockname()[1]))


def serve_http(server: Any, options: HttpOptions, out: TextIO = sys.stderr) -> None:
    """Serve ``server`` (an ``MCPServer``) with ``options`` until the process is interrupted.

    The port is listening before the start-up lines name it (see :func:`bind`)."""
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    listener, options = bind(options)
    app = server.streamable_http_app(
        streamable_http_path=PATH, max_request_body_size=MAX_BODY_BYTES, max_sessions=options.max_sessions,
        session_idle_timeout=options.session_idle_timeout,
        # The Host and Origin checks are the Guard's (exact host and port); the SDK's would accept
        # "127.0.0.1:1.evil.com" for "127.0.0.1:*".
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False), host=options.host)
    guarded = Guard(app, options, server.session_manager)
    announce(options, out)
    # Keep-alive outlasts the clients' own idle expiry (httpx: 5 s), so a client never reuses a
    # connection at the moment the server closes it (a failed request, not an answer).
    config = uvicorn.Config(guarded, host=options.host, port=options.port, log_level="warning",
                            timeout_keep_alive=KEEP_ALIVE_SECONDS, backlog=BACKLOG)
    with listener:
        uvicorn.Server(config).run(sockets=[listener])
