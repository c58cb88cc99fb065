"""The HTTP executor: the one place where requests are sent and failures become kosmo errors.

* one ``Endpoint`` per account, kept for the life of the Runtime: its absolute base URL, its
  default headers (auth from the account's secrets, never from integration code), its timeouts and
  one httpx transport (connection reuse). Requests go straight to the transport: httpx's
  ``Client`` layers (URL merging, auth flows, cookies, redirects, event hooks) cost more per
  request than the rest of the call, and none is needed (no cookies, no redirects followed);
* only the manifest's hosts (or loopback) are reachable, and only over https (loopback: http);
* statuses and httpx exceptions are mapped to the error tree (``map_exception``,
  ``status_error``), with the service's own error code and message;
* reads are retried on connection errors, 429, 502, 503 and 504 with backoff and
  jitter, honouring ``Retry-After``, within the run's wall clock; a write is retried
  only when it certainly did not reach the service (connect failures) or was refused
  with 429; a write that fails after it may have been sent is ``OutcomeUnknown``;
* in a dry run, the first request that changes something is described, not sent.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from ._endpoint_headers import PathHeaders, headers_for, path_headers
from ._errors import (
    AuthFailed,
    BadResponse,
    ConfigError,
    HTTPStatusError,
    LimitExceeded,
    NetworkError,
    OutcomeUnknown,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamNotFound,
)
from ._paginate import Page
from ._ratelimit import RateLimiter
from ._retry import RetryPolicy
from ._state import MemoryState, State

if TYPE_CHECKING:
    from ._accounts import Account
    from ._manifest import Manifest

__all__ = [
    "ClientPool",
    "DryRunIntercept",
    "Endpoint",
    "Http",
    "RetryPolicy",
    "map_exception",
    "redact",
    "status_error",
]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|\[::1\]|::1)$")
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_?key|access_?key|private|credential|authorization)", re.I)
USER_AGENT = "kosmo-runtime/0.1"
#: Default timeouts in seconds; an account's ``timeout`` setting overrides them.
DEFAULT_TIMEOUTS = {"connect": 5.0, "read": 30.0, "write": 10.0, "pool": 5.0}

#: Wraps the transport of one account's endpoint: ``wrap(transport, manifest, account, owned)``; ``owned``: made
#: for this pool (the wrapper closes it), not given to the Runtime.
TransportWrap = Callable[[httpx.BaseTransport, "Manifest", "Account", bool], httpx.BaseTransport]

# httpx exceptions raised before any byte of the request could reach the service.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol, httpx.ProxyError,
    httpx.LocalProtocolError,
)
# httpx exceptions raised after the request may have reached the service.
_MAYBE_SENT: tuple[type[Exception], ...] = (
    httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError,
    httpx.CloseError,
)
# httpx exceptions about what came back.
_BAD_ANSWER: tuple[type[Exception], ...] = (httpx.DecodingError, httpx.TooManyRedirects)


class DryRunIntercept(Exception):
    """Raised (internally) instead of sending a write in a dry run; carries what would be sent."""

    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__("dry run")
        self.request = request


@dataclass(slots=True)
class Trace:
    """What the HTTP layer did for one integration call (for CallRecord and the audit log)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0
    #: Told of each finished attempt ``(request, its entry in requests, attempt number)``: tracing.
    observer: Callable[[httpx.Request, dict[str, Any], int], None] | None = None

    @property
    def status(self) -> int | None:
        return self.requests[-1].get("status") if self.requests else None


def redact(value: Any) -> Any:
    """A copy of ``value`` with fields that look like secrets replaced by ``***``."""
    if isinstance(value, dict):
        return {k: "***" if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _host_allowed(host: str, manifest: Manifest) -> bool:
    return bool(_LOOPBACK.match(host)) or any(fnmatch.fnmatch(host, pattern) for pattern in manifest.allowed_hosts)


def check_base_url(url: str, manifest: Manifest, account: str) -> httpx.URL:
    """The account's base URL, if its host is allowed and its scheme safe; else ConfigError."""
    parsed = httpx.URL(url)
    host = parsed.host
    if not _host_allowed(host, manifest):
        raise ConfigError(
            f"{manifest.id}.{account}: base_url host {host!r} is not one of the integration's hosts",
            hint=f"use one of {', '.join(manifest.allowed_hosts)} (or a loopback address for a simulator)",
        )
    if parsed.scheme != "https" and not (parsed.scheme == "http" and _LOOPBACK.match(host)):
        raise ConfigError(f"{manifest.id}.{account}: base_url must use https (plain http only on loopback)",
                          hint=f"change base_url to https://{host}...")
    return parsed


class Endpoint:
    """Where one account's requests go: absolute base URL, default headers (auth included), the
    account's timeouts and the transport that sends them. ``repr`` never shows the headers.

    A request without a body under the base URL is built here as ``httpx.Request`` would build it
    (``request``): the ``Host`` header and the default headers normalised once per endpoint, and
    each distinct URL and query parsed once (up to ``URLS`` of them are kept): httpx's URL parsing
    and its two passes over the headers were a third of a call's client-side CPU."""

    __slots__ = ("_host", "_urls", "_wire_headers", "base_url", "headers", "path_headers", "query_key", "timeout",
                 "transport")

    URLS = 256  # parsed URLs kept per endpoint (all dropped when full: a loop over many ids churns them)

    def __init__(self, base_url: str, headers: dict[str, str], timeout: dict[str, float | None],
                 transport: httpx.BaseTransport, query_key: tuple[str, str] | None = None,
                 path_headers: PathHeaders = ()) -> None:
        self.base_url = base_url            # no trailing slash
        self.headers = headers              # lower-case names
        self.path_headers = path_headers    # the manifest's endpoint_headers for this account (_endpoint_headers)
        self.timeout = timeout              # httpx's timeout extension: connect, read, write, pool
        self.transport = transport
        self.query_key = query_key          # (parameter, API key) added only to what is handed to the transport
        self._host = httpx.URL(base_url).netloc.decode("ascii")  # httpx's Host header for a URL under the base URL
        self._wire_headers = self._headers(headers)
        self._urls: dict[tuple[str, tuple[tuple[str, Any], ...]], httpx.URL] = {}

    def _headers(self, headers: Mapping[str, str]) -> httpx.Headers:
        """``headers`` as httpx sends them on a request without a body: ``Host`` first."""
        return httpx.Headers([("Host", self._host), *headers.items()])

    def request(self, method: str, url: str, query: dict[str, Any] | None, headers: dict[str, str]) -> httpx.Request:
        """The ``httpx.Request`` of a GET, HEAD, OPTIONS or DELETE without a body to ``url`` (under the
        base URL), the same as ``httpx.Request(method, url, params=query, headers=headers)``."""
        return httpx.Request(method, self._url(url, query), stream=_NO_BODY,
                             headers=self._wire_headers if headers is self.headers else self._headers(headers))

    def _url(self, url: str, query: dict[str, Any] | None) -> httpx.URL:
        """``httpx.URL(url, params=query)``, parsed once while it is kept; a query with a value that is
        not exactly a str or int (a float, a list) is parsed every time (1 and 1.0 differ in a URL)."""
        items = tuple(query.items()) if query else ()
        if not all(type(value) is str or type(value) is int for _, value in items):
            return httpx.URL(url, params=query) if query else httpx.URL(url)
        key = (url, items)
        parsed = self._urls.get(key)
        if parsed is None:
            parsed = httpx.URL(url, params=query) if query else httpx.URL(url)
            if len(self._urls) >= self.URLS:
                self._urls.clear()
            self._urls[key] = parsed
        return parsed

    def __repr__(self) -> str:
        return f"Endpoint({self.base_url!r})"


_NO_BODY = httpx.ByteStream(b"")  # the stream of a request without a body (what httpx gives one)
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})  # httpx adds no Content-Length to these


def _credentials(manifest: Manifest, account: Account) -> tuple[dict[str, str], tuple[str, str] | None]:
    """The auth headers an account's requests carry, and the (name, key) of an API key sent in the query."""
    auth = manifest.auth
    if auth.kind == "bearer":
        return {"authorization": f"Bearer {account.credential(auth.token or '')}"}, None
    if auth.kind == "api_key":
        key = account.credential(auth.key or "")
        return ({auth.header.lower(): key}, None) if auth.header else ({}, (auth.query or "", key))
    pair = f"{account.credential(auth.username or '')}:{account.credential(auth.password or '')}"
    return {"authorization": f"Basic {base64.b64encode(pair.encode()).decode()}"}, None


class _Connections(httpx.BaseTransport):
    """The network transport of one account: one-connection ``httpx.HTTPTransport``s, one checked
    out per request in flight and back when its response is closed, the last returned first (so
    sequential calls keep one warm connection). httpcore's own pool does work quadratic in its
    connections for every request (``_assign_requests_to_connections``): with 16 calls in flight
    that was ~40 % of a call's CPU. At most ``MAX_CONNECTIONS`` at once, the ``pool`` timeout for
    a free one (httpx's PoolTimeout); at most ``MAX_IDLE`` idle ones are kept. One lock guards the
    count and the idle list; a request waits on it only when every connection is in use."""

    MAX_CONNECTIONS = 100
    MAX_IDLE = 20
    _ONE = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl_context = ssl_context
        self._idle: list[httpx.HTTPTransport] = []
        self._busy = 0  # connections checked out
        self._waiting = 0  # requests waiting for one
        self._free = threading.Condition(threading.Lock())
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._checkout(request)
        try:
            response = transport.handle_request(request)
        except BaseException:
            self._give_back(transport)
            raise
        response.stream = _Releasing(response.stream, self._give_back, transport)
        return response

    def _checkout(self, request: httpx.Request) -> httpx.HTTPTransport:
        """The most recently returned idle transport, else a new one; counted as in use from here."""
        with self._free:
            if self._busy >= self.MAX_CONNECTIONS:
                pool_timeout = request.extensions.get("timeout", {}).get("pool")
                self._waiting += 1
                try:
                    if not self._free.wait_for(lambda: self._busy < self.MAX_CONNECTIONS, pool_timeout):
                        raise httpx.PoolTimeout(f"no free connection within {pool_timeout} s", request=request)
                finally:
                    self._waiting -= 1
            self._busy += 1
            if self._idle:
                return self._idle.pop()
        try:
            return httpx.HTTPTransport(verify=self._ssl_context, limits=self._ONE)
        except BaseException:
            self._give_back(None)
            raise

    def _give_back(self, transport: httpx.HTTPTransport | None) -> None:
        """A request is done with ``transport`` (``None``: none could be made): kept idle or closed."""
        with self._free:
            self._busy -= 1
            keep = transport is not None and not self._closed and len(self._idle) < self.MAX_IDLE
            if transport is not None and keep:
                self._idle.append(transport)
            if self._waiting:
                self._free.notify()
        if transport is not None and not keep:
            transport.close()

    def close(self) -> None:
        with self._free:
            self._closed = True
            idle, self._idle = self._idle, []
        for transport in idle:
            transport.close()


class _Releasing(httpx.SyncByteStream):
    """A response stream that calls ``release(item)`` once when it is closed."""

    def __init__(self, stream: Any, release: Callable[[Any], None], item: Any) -> None:
        self._stream = stream
        self._release: Callable[[Any], None] | None = release
        self._item = item

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release(self._item)


class _ProxiedTransport(httpx.BaseTransport):
    """Sends through an ``httpx.Client`` so that the environment's proxies (``HTTPS_PROXY``,
    ``NO_PROXY``, ...) apply as httpx applies them; used only when the environment names a proxy."""

    def __init__(self) -> None:
        self._client = httpx.Client(follow_redirects=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._client.send(request, stream=True)

    def close(self) -> None:
        self._client.close()


class ClientPool:
    """One ``Endpoint`` and one rate limiter per (integration, account), reused across calls
    and runs; thread-safe. ``sleep`` is what the rate limiters wait with; their buckets live in
    ``state`` (default: this process), keyed ``bucket:<integration>:<account>``. ``transport``
    (every endpoint) or ``mounts`` (per base-URL prefix) replace the network, for tests and simulators."""

    def __init__(self, transport: httpx.BaseTransport | None = None,
                 mounts: Mapping[str, httpx.BaseTransport] | None = None,
                 sleep: Callable[[float], None] = time.sleep, state: State | None = None,
                 wrap: TransportWrap | None = None) -> None:
        self._transport = transport
        self._mounts = dict(mounts or {})
        self._sleep = sleep
        self._state = state if state is not None else MemoryState(":memory:")
        self._wrap = wrap
        self._clients: dict[tuple[str, str, str], Endpoint] = {}
        self._ssl: ssl.SSLContext | None = None
        self._limiters: dict[tuple[str, str], RateLimiter | None] = {}
        self._lock = threading.Lock()

    def client(self, manifest: Manifest, account: Account) -> Endpoint:
        base_url = str(account.settings["base_url"]).rstrip("/")
        key = (manifest.id, account.name, base_url)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._new_endpoint(manifest, account, base_url)
            return client

    def wrapped(self, wrap: TransportWrap) -> ClientPool:
        """A pool of new clients, each transport wrapped by ``wrap`` (record/replay), sharing this pool's rate limiters."""
        pool = ClientPool(self._transport, self._mounts, self._sleep, self._state, wrap)
        pool._limiters, pool._lock = self._limiters, self._lock
        return pool

    def limiter(self, manifest: Manifest, account: Account) -> RateLimiter | None:
        """The account's rate limiter: its own ``rate_limit`` setting, else the manifest's documented rate."""
        key = (manifest.id, account.name)
        with self._lock:
            if key not in self._limiters:
                setting = account.rate_limit
                rate: tuple[float, float] | None = None
                if isinstance(setting, Mapping):
                    rate = (setting["requests"], setting["per_seconds"])
                elif setting is None and manifest.rate_limit is not None:
                    rate = (manifest.rate_limit.requests, manifest.rate_limit.per_seconds)
                self._limiters[key] = None if rate is None else RateLimiter(
                    *rate, sleep=self._sleep, state=self._state, key=f"bucket:{manifest.id}:{account.name}")
            return self._limiters[key]

    def _new_endpoint(self, manifest: Manifest, account: Account, base_url: str) -> Endpoint:
        check_base_url(base_url, manifest, account.name)
        auth_headers, query_key = _credentials(manifest, account)
        headers = {"user-agent": USER_AGENT, "accept": "application/json", "accept-encoding": "gzip, deflate",
                   "connection": "keep-alive", **{k.lower(): v for k, v in manifest.headers.items()}, **auth_headers}
        timeout = httpx.Timeout(**{**DEFAULT_TIMEOUTS, **account.timeouts}).as_dict()
        transport = self._transport_for(base_url)
        if self._wrap is not None:  # record/replay: the run's own transport around it (owned: not the Runtime's)
            transport = self._wrap(transport, manifest, account,
                                   transport is not self._transport and transport not in self._mounts.values())
        return Endpoint(base_url, headers, timeout, transport, query_key,
                        path_headers(manifest.endpoint_headers, account.settings))

    def _transport_for(self, base_url: str) -> httpx.BaseTransport:
        transport = self._transport
        for prefix, mounted in self._mounts.items():
            if base_url.startswith(prefix.rstrip("/")):
                transport = mounted
        if transport is not None:
            return transport  # as httpx does, a transport given explicitly is used without the environment's proxies
        proxies = urllib.request.getproxies()
        if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
            return _ProxiedTransport()
        if self._ssl is None:  # made with the first endpoint, as httpx makes one per client: never mid-call
            self._ssl = httpx.create_ssl_context()
        return _Connections(self._ssl)

    def close(self) -> None:
        with self._lock:
            closed: set[int] = set()
            for endpoint in self._clients.values():
                if id(endpoint.transport) not in closed:
                    closed.add(id(endpoint.transport))
                    endpoint.transport.close()
            self._clients.clear()


class Http:
    """The HTTP access one integration call gets: bound to its account, errors mapped."""

    def __init__(self, endpoint: Endpoint, manifest: Manifest, *, function: str, account: str,
                 remaining: Callable[[], float], dry_run: bool = False, retry: RetryPolicy | None = None,
                 trace: Trace | None = None, limiter: RateLimiter | None = None) -> None:
        self._endpoint = endpoint
        self._manifest = manifest
        self._function = function
        self._account = account
        self._remaining = remaining
        self._dry_run = dry_run
        self._retry = retry or RetryPolicy()
        self.trace = trace or Trace()
        self._limiter = limiter

    def for_call(self, trace: Trace) -> Http:
        """This Http with its own ``trace``, for one call (a copy: cheaper than making one anew)."""
        http = object.__new__(Http)
        attributes = http.__dict__
        attributes.update(self.__dict__)
        attributes["trace"] = trace
        return http

    def get(self, path: str, *, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params, headers=headers)

    def post(self, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None) -> Any:
        return self.request("POST", path, json=json, params=params, headers=headers)

    def delete(self, path: str, *, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Any:
        return self.request("DELETE", path, params=params, headers=headers)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                headers: Mapping[str, str] | None = None) -> Any:
        """Send one request and return its JSON body (``None`` when empty); raises UpstreamError."""
        return self._parse(self._exchange(method, path, params, json, headers))

    def page(self, target: str, *, params: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None) -> Page:
        """GET one page of a list: ``target`` is a path under the base URL, or the absolute URL the
        service gave for its next page, followed only to the account's base URL (then sent as a path
        under it: endpoint headers apply) or to one of the manifest's hosts over https; any other is
        a BadResponse, never requested. The page keeps the URL it came from and its ``Link`` header."""
        if _ABSOLUTE.match(target):
            target = self._followable(target)
        response = self._exchange("GET", target, params, None, headers)
        return Page(self._parse(response), str(response.request.url), response.headers.get("link"))

    def _followable(self, url: str) -> str:
        """A next page's absolute ``url`` as ``page`` sends it (see there), or a BadResponse."""
        base = self._endpoint.base_url
        origin = httpx.URL(base)
        parsed: httpx.URL | None
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            parsed = None
        if parsed is not None and not parsed.userinfo:
            if (parsed.scheme, parsed.host, parsed.port) == (origin.scheme, origin.host, origin.port):
                return url[len(base):] if url.startswith(base + "/") else url
            if parsed.scheme == "https" and any(fnmatch.fnmatch(parsed.host, p) for p in self._manifest.allowed_hosts):
                return url
        if parsed is None or not parsed.host:
            where = "a URL that cannot be read"
        else:
            where = f"{parsed.scheme}://{parsed.host}" + (" (with user info)" if parsed.userinfo else "")
        raise BadResponse(f"{self._manifest.name}'s next page is at {where}, which is neither the account's base URL "
                          "nor one of the manifest's allowed_hosts over https: not followed", **self._context(),
                          hint="if that host is the service's own, add it to allowed_hosts in the manifest")

    def _exchange(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any,
                  headers: Mapping[str, str] | None) -> httpx.Response:
        """Send one request (retried as the policy allows) and return its successful response."""
        endpoint = self._endpoint
        query = {k: _query_value(v) for k, v in params.items() if v is not None} if params else None
        sent_headers = endpoint.headers
        if endpoint.path_headers and (family := headers_for(endpoint.path_headers, path)):
            sent_headers = {**sent_headers, **family}
        if headers:
            sent_headers = {**sent_headers, **{k.lower(): v for k, v in headers.items()}}
        # a path goes under the base URL as httpx merges one with ``base_url``; the base URL's host was
        # checked when the endpoint was made, an absolute URL from integration code is checked here
        absolute = _ABSOLUTE.match(path) is not None
        url = path if absolute else f"{endpoint.base_url}/{path.lstrip('/')}"
        if json is None and not absolute and method in _BODYLESS:
            request = endpoint.request(method, url, query, sent_headers)
            request.read()  # (the body, empty: what httpx's Request reads at once)
        else:
            request = httpx.Request(method, url, params=query or None, json=json, headers=sent_headers)
        if absolute and not _host_allowed(request.url.host, self._manifest):
            raise ConfigError(f"{self._manifest.id}: refusing to call host {request.url.host!r}, which the manifest does not allow")
        is_write = method not in _SAFE_METHODS
        if is_write and self._dry_run:
            raise DryRunIntercept(self._describe(request, json))
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            entry: dict[str, Any] = {"method": method, "path": request.url.path}
            self.trace.requests.append(entry)
            try:
                response = self._send(request)
            except httpx.HTTPError as exc:
                entry["error"] = type(exc).__name__
                entry["duration"] = time.monotonic() - started
                if self.trace.observer is not None:
                    self.trace.observer(request, entry, attempt)
                if isinstance(exc, httpx.TimeoutException) and self._remaining() <= 0.05:
                    # the request was cut short by the run's wall clock, not by the service
                    raise LimitExceeded("run stopped: wall-clock limit reached while waiting for the service",
                                        limit="wall_time") from None
                error = map_exception(exc, self._context(), write=is_write, sent=self._describe(request, json))
                if error.retryable and self._may_retry(attempt, is_write, not_sent=isinstance(exc, _NOT_SENT), retry_after=None):
                    continue
                raise error from None
            entry["status"] = response.status_code
            entry["duration"] = time.monotonic() - started
            if self.trace.observer is not None:
                self.trace.observer(request, entry, attempt)
            if response.status_code < 400:
                return response
            error = status_error(response, self._manifest, self._context())
            retry_after = getattr(error, "retry_after", None)
            if response.status_code in self._retry.retry_statuses and self._may_retry(
                    attempt, is_write, not_sent=response.status_code == 429, retry_after=retry_after):
                continue
            raise error

    def _send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` once, its timeouts capped by what is left of the run; the body is read."""
        remaining = self._remaining()
        if remaining <= 0:
            raise LimitExceeded("run stopped: wall-clock limit reached before the request was sent", limit="wall_time")
        if self._limiter is not None:
            cost = (self._manifest.rate_limit.costs.get(request.method, 1.0) if self._manifest.rate_limit else 1.0)
            if self._limiter.acquire(cost, remaining) > 0:
                remaining = self._remaining()
        request.extensions["timeout"] = _capped(self._endpoint.timeout, remaining)
        wire = request
        if self._endpoint.query_key is not None:  # the key never enters the request that errors describe
            wire = httpx.Request(request.method, request.url.copy_merge_params(dict([self._endpoint.query_key])),
                                 headers=request.headers, content=request.content, extensions=request.extensions)
        response = self._endpoint.transport.handle_request(wire)
        try:
            response.read()
        finally:
            response.close()
        response.request = request
        return response

    def _may_retry(self, attempt: int, is_write: bool, *, not_sent: bool, retry_after: float | None) -> bool:
        if attempt >= self._retry.attempts or (is_write and not not_sent):
            return False
        delay = self._retry.delay(attempt, retry_after)
        if delay >= self._remaining():
            return False
        self.trace.retries += 1
        self._retry.sleep(delay)
        return True

    def _parse(self, response: httpx.Response) -> Any:
        content = response.content
        if not content.strip():
            if response.status_code == 204 or response.request.method in ("DELETE", "HEAD"):
                return None
            raise BadResponse(
                f"{self._manifest.name} answered {response.status_code} with an empty body where it documents JSON",
                status=response.status_code, **self._context(),
                hint="the service may be having problems; retry later",
            )
        try:
            return json.loads(content)
        except (ValueError, UnicodeDecodeError):
            content_type = response.headers.get("content-type", "")
            raise BadResponse(
                f"{self._manifest.name} answered {response.status_code} with a body that is not JSON "
                f"(content type {content_type or 'none'}, starts {content[:80]!r})",
                status=response.status_code, **self._context(),
                hint="the service may be having problems or a proxy answered; retry later or check base_url",
            ) from None

    def _describe(self, request: httpx.Request, body: Any) -> dict[str, Any]:
        described = {"method": request.method, "url": str(request.url.copy_with(query=None)),
                     "query": dict(request.url.params)}
        if body is not None:
            described["body"] = redact(body)
        return described

    def _context(self) -> dict[str, Any]:
        return {"integration": self._manifest.id, "function": self._function, "account": self._account}


def _capped(timeout: Mapping[str, float | None], remaining: float) -> dict[str, float | None]:
    """The account's timeouts, none past the ``remaining`` seconds of the run (httpx's timeout extension)."""
    read = min(remaining, timeout["read"] or remaining)
    return {"connect": min(timeout["connect"] or read, read), "read": read,
            "write": min(timeout["write"] or read, read), "pool": min(timeout["pool"] or read, read)}


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def status_error(response: httpx.Response, manifest: Manifest, context: Mapping[str, Any]) -> HTTPStatusError:
    """The kosmo error for a 4xx/5xx response, with the service's own code and message (the call's label is
    put in front of the message where the call ends: ``Invoker.call``)."""
    status = response.status_code
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    service_code = next((str(v) for p in manifest.errors.code if (v := _dig(body, p)) not in (None, "")), None)
    service_message = next((v for p in manifest.errors.message if isinstance(v := _dig(body, p), str) and v), None)
    if service_message is None and body is None and response.content:
        service_message = response.text[:200].strip()
    retry_after = _retry_after(response.headers.get("retry-after"))
    cls: type[HTTPStatusError]
    if status in (401, 403):
        cls, hint = AuthFailed, "check the account's credentials and permissions ('kosmo accounts check --live')"
    elif status == 404:
        cls, hint = UpstreamNotFound, "check the id; list the objects first to find valid ids"
    elif status == 429:
        cls, hint = RateLimited, f"slow down; the service asks to wait {retry_after:g} s" if retry_after else "slow down and retry later"
    elif status >= 500:
        cls, hint = ServiceUnavailable, "the service failed; retry later"
    else:
        cls, hint = HTTPStatusError, "the service rejected the request; check the arguments against the function's docs"
    detail = f": {service_message}" if service_message else ""
    error = cls(
        f"{manifest.name} answered HTTP {status} {response.reason_phrase}{detail}",
        hint=hint, status=status, service_code=service_code, retry_after=retry_after, **context,
    )
    error.retryable = status in (429, 502, 503, 504)
    return error


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def map_exception(exc: httpx.HTTPError, context: Mapping[str, Any], *, write: bool, sent: Any) -> UpstreamError:
    """The kosmo error for an httpx exception (the most specific match wins; labelled as ``status_error``'s)."""
    name = type(exc).__name__
    if isinstance(exc, _NOT_SENT):
        return NetworkError(f"could not reach the service ({name}: {exc})",
                            hint="check the network and base_url; the request was not sent, so retrying is safe", **context)
    if isinstance(exc, _MAYBE_SENT):
        if write:
            return OutcomeUnknown(
                f"the connection failed after the request was sent ({name}); the write may or may not have happened",
                hint="check with a read (list or get) whether it took effect before trying again",
                sent=redact(sent), **context,
            )
        return NetworkError(f"the service did not answer ({name}: {exc})",
                            hint="retry later; the service may be slow or unreachable", **context)
    if isinstance(exc, _BAD_ANSWER):
        return BadResponse(f"unusable answer ({name}: {exc})", **context)
    return NetworkError(f"HTTP failure ({name}: {exc})", **context)
