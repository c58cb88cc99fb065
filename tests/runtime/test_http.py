"""The HTTP executor's own rules: URLs, headers, auth, timeouts, cookies, proxies (``_http.py``).

Requests go straight to the account's transport, not through ``httpx.Client``; these tests pin
down that what is sent is what httpx's client would have sent, and what the client layers would
have added that the runtime deliberately leaves out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kosmo_runtime import AccountsConfig, ConfigError, NetworkError, Runtime
from kosmo_runtime._http import ClientPool, Endpoint, Http, _Connections, _ProxiedTransport
from kosmo_runtime._simulate import LoopbackServer
from tests.fixtures.integrations.test_notes.simulator import KEY, NotesSimulator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "integrations"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def accounts(base_url: str, **extra: Any) -> tuple[Any, Any]:
    """The test-notes manifest and its ``main`` account at ``base_url``."""
    probe = Runtime(integration_paths=[FIXTURES], store=":memory:", accounts=AccountsConfig.empty())
    fields = "".join(f"\n        {k}: {v}" for k, v in extra.items())
    text = f"""\
integrations:
  test-notes:
    default: main
    accounts:
      main:
        api_key: {KEY}
        base_url: "{base_url}"{fields}
"""
    config = AccountsConfig.parse(text, "accounts.yaml", probe._manifest_for, probe.catalog.names)
    manifest = probe._manifest_for("test-notes")
    probe.close()
    return manifest, config.account("test-notes", "main")


class Recorder(httpx.BaseTransport):
    """Answers every request with ``response`` (JSON ``{}`` by default) and keeps the requests."""

    def __init__(self, response: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.response = response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.response is not None:
            return httpx.Response(self.response.status_code, headers=self.response.headers,
                                  content=self.response.content)
        return httpx.Response(200, json={})


def http_for(base_url: str, transport: httpx.BaseTransport | None = None, remaining: float = 60.0,
             **extra: Any) -> tuple[Http, ClientPool]:
    manifest, account = accounts(base_url, **extra)
    pool = ClientPool(transport=transport)
    endpoint = pool.client(manifest, account)
    return Http(endpoint, manifest, function="get_note", account="main", remaining=lambda: remaining), pool


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.mark.parametrize("base_url", ["https://api.notes.example", "https://api.notes.example/",
                                      "https://api.notes.example/api/v2", "http://127.0.0.1:8080/root/"])
@pytest.mark.parametrize("path", ["/v1/notes", "v1/notes", "/v1/notes?x=1&y=a%20b", "/a%20b/c d", "/v1//x", "/"])
def test_a_path_goes_under_the_base_url_exactly_as_httpx_merges_it(recorder: Recorder, base_url: str,
                                                                   path: str) -> None:
    http, pool = http_for(base_url, recorder)
    http.get(path)
    expected = httpx.Client(base_url=base_url.rstrip("/")).build_request("GET", path).url
    assert str(recorder.requests[-1].url) == str(expected)
    pool.close()


def test_a_path_starting_with_two_slashes_stays_a_path_under_the_base_url(recorder: Recorder) -> None:
    """(httpx's own merge would read ``//elsewhere/x`` as host ``elsewhere`` and drop it: ``/x``.)"""
    http, _ = http_for("https://api.notes.example/api", recorder)
    http.get("//elsewhere/x")
    assert str(recorder.requests[-1].url) == "https://api.notes.example/api/elsewhere/x"


def test_query_parameters_are_encoded_as_before(recorder: Recorder) -> None:
    http, _ = http_for("https://api.notes.example", recorder)
    http.get("/v1/notes", params={"when": "2026-01-01T10:00:00Z", "flag": True, "off": False, "none": None,
                                  "n": 3, "tag": "a b&c"})
    assert recorder.requests[-1].url.params.multi_items() == [
        ("when", "2026-01-01T10:00:00Z"), ("flag", "true"), ("off", "false"), ("n", "3"), ("tag", "a b&c")]


@pytest.mark.parametrize("method", ["GET", "DELETE", "HEAD", "OPTIONS"])
@pytest.mark.parametrize("params", [None, {}, {"n": 3, "tag": "a b&c"}, {"limit": 1.0}, {"ids": [1, 2]}])
@pytest.mark.parametrize("headers", [None, {"Accept": "text/csv", "X-Extra": "1"}])
def test_a_request_without_a_body_is_the_one_httpx_builds(recorder: Recorder, method: str,
                                                          params: dict[str, Any] | None,
                                                          headers: dict[str, str] | None) -> None:
    """The endpoint builds these itself (headers normalised once, URLs parsed once): what is sent
    must be what ``httpx.Request`` makes of the same URL, query and headers, also on a second call."""
    http, pool = http_for("https://api.notes.example/api", recorder)
    endpoint = http._endpoint
    for _ in range(2):
        http.request(method, "/v1/notes/a b", params=params, headers=headers)
    sent = {k.lower(): v for k, v in (headers or {}).items()}
    expected = httpx.Request(method, "https://api.notes.example/api/v1/notes/a b", params=params or None,
                             headers={**endpoint.headers, **sent})
    for request in recorder.requests:
        assert (request.method, str(request.url), request.headers.raw, request.content) == (
            method, str(expected.url), expected.headers.raw, expected.content)
    pool.close()


def test_a_kept_url_is_never_another_querys(recorder: Recorder) -> None:
    """1 and 1.0 are equal keys in Python but different queries; a full cache starts again."""
    http, _ = http_for("https://api.notes.example", recorder)
    for value in (1, 1.0, "1", 1, 1.0):
        http.get("/v1/notes", params={"limit": value})
    assert [r.url.query for r in recorder.requests] == [b"limit=1", b"limit=1.0", b"limit=1", b"limit=1", b"limit=1.0"]
    for n in range(Endpoint.URLS + 5):
        http.get(f"/v1/notes/{n}")
    assert str(recorder.requests[-1].url) == f"https://api.notes.example/v1/notes/{Endpoint.URLS + 4}"
    assert len(http._endpoint._urls) <= Endpoint.URLS


def test_an_absolute_url_is_checked_against_the_manifest_hosts(recorder: Recorder) -> None:
    http, _ = http_for("https://api.notes.example", recorder)
    http.get("https://eu.notes.example/v1/me")
    assert recorder.requests[-1].url.host == "eu.notes.example"
    with pytest.raises(ConfigError, match=r"refusing to call host 'evil\.example'"):
        http.get("https://evil.example/v1/me")
    assert len(recorder.requests) == 1


def test_default_headers_carry_auth_and_a_call_may_override_them_case_insensitively(recorder: Recorder) -> None:
    http, _ = http_for("https://api.notes.example", recorder)
    http.get("/v1/me")
    http.get("/v1/me", headers={"Accept": "text/csv", "X-Extra": "1"})
    first, second = recorder.requests
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.headers["user-agent"].startswith("kosmo-runtime/")
    assert first.headers["accept"] == "application/json"
    assert first.headers["host"] == "api.notes.example"
    assert second.headers.get_list("accept") == ["text/csv"]
    assert second.headers["x-extra"] == "1" and second.headers["authorization"] == f"Bearer {KEY}"


def test_a_json_body_is_sent_with_its_content_type(recorder: Recorder) -> None:
    http, _ = http_for("https://api.notes.example", recorder)
    http.post("/v1/notes", json={"text": "hi"})
    sent = recorder.requests[-1]
    assert sent.method == "POST" and sent.headers["content-type"] == "application/json"
    assert sent.content == b'{"text":"hi"}'


def test_the_credential_never_shows_in_a_repr(recorder: Recorder) -> None:
    http, pool = http_for("https://api.notes.example", recorder)
    assert KEY not in repr(http._endpoint) and KEY not in repr(pool._clients)


@pytest.mark.parametrize(("remaining", "expected"), [
    (60.0, {"connect": 5.0, "read": 30.0, "write": 10.0, "pool": 5.0}),
    (7.0, {"connect": 5.0, "read": 7.0, "write": 7.0, "pool": 5.0}),
    (2.0, {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}),
])
def test_timeouts_are_the_accounts_capped_by_what_is_left_of_the_run(recorder: Recorder, remaining: float,
                                                                     expected: dict[str, float]) -> None:
    http, _ = http_for("https://api.notes.example", recorder, remaining=remaining)
    http.get("/v1/me")
    assert recorder.requests[-1].extensions["timeout"] == expected


def test_an_accounts_timeout_setting_is_used(recorder: Recorder) -> None:
    http, _ = http_for("https://api.notes.example", recorder, timeout="{connect: 1, read: 3, write: 2, pool: 1}")
    http.get("/v1/me")
    assert recorder.requests[-1].extensions["timeout"] == {"connect": 1.0, "read": 3.0, "write": 2.0, "pool": 1.0}


def test_cookies_are_never_kept_or_sent() -> None:
    transport = Recorder(httpx.Response(200, json={}, headers={"set-cookie": "session=abc; Path=/"}))
    http, _ = http_for("https://api.notes.example", transport)
    http.get("/v1/me")
    http.get("/v1/me")
    assert all("cookie" not in request.headers for request in transport.requests)


def test_a_redirect_is_not_followed() -> None:
    transport = Recorder(httpx.Response(302, headers={"location": "https://api.notes.example/elsewhere"}))
    http, _ = http_for("https://api.notes.example", transport)
    with pytest.raises(Exception) as raised:
        http.get("/v1/me")
    assert "302" in str(raised.value) and len(transport.requests) == 1


# -- transports: the network, or the environment's proxies as httpx applies them ------------------------


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(NotesSimulator([KEY])) as started:
        yield started


def test_without_proxies_requests_go_to_the_accounts_connections(server: LoopbackServer) -> None:
    http, pool = http_for(server.url)
    assert type(http._endpoint.transport) is _Connections
    assert http.get("/v1/me", params={"team": "core"}) == {"data": {"name": "Tess", "team": "core"}}
    pool.close()


def get(transport: httpx.BaseTransport, url: str, pool: float = 5.0) -> httpx.Response:
    request = httpx.Request("GET", f"{url}/v1/me", headers={"authorization": f"Bearer {KEY}"},
                            extensions={"timeout": {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": pool}})
    return transport.handle_request(request)


def test_sequential_requests_keep_one_connection(server: LoopbackServer) -> None:
    connections = _Connections(httpx.create_ssl_context())
    for _ in range(5):
        response = get(connections, server.url)
        assert response.read() and response.status_code == 200
        response.close()
    assert len(connections._idle) == 1
    connections.close()
    assert connections._idle == []


def test_requests_in_flight_each_have_a_connection_and_idle_ones_are_bounded(
        server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Connections, "MAX_IDLE", 3)
    connections = _Connections(httpx.create_ssl_context())
    open_responses = [get(connections, server.url) for _ in range(5)]  # none closed: five at once
    assert connections._idle == []
    for response in open_responses:
        response.read()
        response.close()
    assert len(connections._idle) == 3
    connections.close()


def test_no_free_connection_within_the_pool_timeout_is_a_pool_timeout(
        server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Connections, "MAX_CONNECTIONS", 1)
    connections = _Connections(httpx.create_ssl_context())
    held = get(connections, server.url)
    with pytest.raises(httpx.PoolTimeout):
        get(connections, server.url, pool=0.01)
    held.read()
    held.close()
    response = get(connections, server.url, pool=0.01)  # the slot came back with the close
    assert response.read() and response.status_code == 200
    response.close()
    connections.close()


def test_a_failed_request_gives_its_connection_slot_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Connections, "MAX_CONNECTIONS", 1)
    with LoopbackServer(NotesSimulator([])) as unused:
        dead = unused.url
    connections = _Connections(httpx.create_ssl_context())
    for _ in range(3):
        with pytest.raises(httpx.ConnectError):
            get(connections, dead, pool=0.01)
    connections.close()


def test_an_environment_proxy_is_used(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(NotesSimulator([])) as unused:  # a port nothing listens on once it is closed
        dead = unused.url
    monkeypatch.setenv("http_proxy", dead)
    http, pool = http_for(server.url)
    assert isinstance(http._endpoint.transport, _ProxiedTransport)
    with pytest.raises(NetworkError):
        http.get("/v1/me")
    pool.close()


def test_no_proxy_sends_directly_even_with_a_proxy_set(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    http, pool = http_for(server.url)
    assert http.get("/v1/me", params={"team": "core"}) == {"data": {"name": "Tess", "team": "core"}}
    pool.close()


def test_a_given_transport_is_used_as_is_whatever_the_environment(recorder: Recorder,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    http, _ = http_for("https://api.notes.example", recorder)
    assert http._endpoint.transport is recorder
    assert isinstance(http._endpoint, Endpoint)
