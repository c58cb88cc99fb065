"""Check httpx requests and responses against an official OpenAPI spec (openapi-core).

``SpecChecker(path, server)`` loads one spec once; ``request_errors(request)`` and
``response_errors(request, response)`` return readable problems (an empty list
when the exchange conforms). ``server`` is the spec's base URL (for example
``https://api.whereby.dev/v1``); a request's path must include the server's
path prefix (``/v1/meetings``), and its own scheme and host (a loopback
simulator's) are replaced by the server's before checking.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.support import SPECS


@dataclass
class _Request:
    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None


@dataclass
class _Response:
    status_code: int
    content_type: str
    headers: Headers
    data: bytes | None


def _adapt_request(request: httpx.Request, server: str) -> _Request:
    base = urlsplit(server)
    return _Request(
        host_url=f"{base.scheme}://{base.netloc}",
        path=request.url.path,
        method=request.method.lower(),
        parameters=RequestParameters(
            query=ImmutableMultiDict(request.url.params.multi_items()),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        ),
        content_type=request.headers.get("content-type", "").lower(),
        body=request.content or None,
    )


def _adapt_response(response: httpx.Response) -> _Response:
    return _Response(
        status_code=response.status_code,
        content_type=response.headers.get("content-type", "").lower(),
        headers=Headers(list(response.headers.items())),
        data=response.content or None,
    )


@functools.cache
def _load(name: str, server: str) -> OpenAPI:
    """Load a spec as published; the official files are not all strictly valid, so skip spec validation."""
    text = (SPECS / name).read_text(encoding="utf-8")
    document = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    document["servers"] = [{"url": server}]
    return OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))


class SpecChecker:
    """Validates exchanges against ``tests/data/specs/<name>`` rooted at ``server``."""

    def __init__(self, name: str, server: str) -> None:
        self.server = server
        self.openapi = _load(name, server)

    def request_errors(self, request: httpx.Request) -> list[str]:
        adapted = _adapt_request(request, self.server)
        return [_describe(err) for err in self.openapi.iter_request_errors(adapted)]

    def response_errors(self, request: httpx.Request, response: httpx.Response) -> list[str]:
        adapted = _adapt_request(request, self.server)
        return [_describe(err) for err in self.openapi.iter_response_errors(adapted, _adapt_response(response))]


def _describe(error: BaseException) -> str:
    """One line per problem: the error type, then each schema violation with its location."""
    lines = [f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"]
    while error is not None:
        for problem in getattr(error, "schema_errors", None) or ():
            where = "/".join(str(p) for p in problem.absolute_path) or "(root)"
            lines.append(f"  at {where}: {problem.message[:200]}")
        error = error.__cause__
    return "\n".join(lines)
