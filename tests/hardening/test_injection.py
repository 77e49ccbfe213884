"""Names are never trusted in an upstream URL, and caller headers never reach a provider.

Model names are checked with generated input (every text hypothesis finds) against the exact
URL the gateway sends; provider names through raw request targets; headers both at the
`Upstream` boundary and end to end for every provider.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.app import http_client
from gateway.client import Target
from gateway.errors import InvalidRequest, UpstreamError
from gateway.providers import Provider, resolve_all
from gateway.upstream import FORWARDED_HEADERS, Upstream, endpoint_url
from generated.settings import Settings
from tests.gateway.test_llms import CASES
from tests.simulators import SIMULATORS
from tests.simulators.base import ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway
from tests.support.server import RunningServer, serve

MODELS = {case.provider: case.model for case in CASES}
BASE = "https://upstream.example:8443/base/path"
ENV = {
    **{f"{pid.upper()}_API_URL": BASE for pid in MODELS},
    **{f"{pid.upper()}_API_KEY": f"configured-{pid}-key" for pid in MODELS},
    "CLOUDFLARE_API_URL": BASE + "/accounts/{account_id}",
    "CLOUDFLARE_ACCOUNT_ID": "acct",
}
SETTINGS = Settings.from_env(ENV)
PROVIDERS = resolve_all(SETTINGS)
# Providers whose endpoints put the model into the path.
PATH_MODELS = [p for p in PROVIDERS.values() if "{model" in p.config.generate.path]

HOSTILE_MODELS = ["@evil.example", "//evil.example/x", "http://evil.example/", "../../admin",
                  "a/../../b", "..", ".", "%2e%2e", "%2F..%2F", "x?key=stolen", "x#frag",
                  "a\r\nHost: evil.example", "a\\..\\..\\b", "\u2025", "a/./b", "\uff0e\uff0e",
                  ":@evil.example", "a b", "a%00b", "~user", "x;y=z", "%", "?", "#", "@"]


@pytest.mark.parametrize("provider", PATH_MODELS, ids=[p.id for p in PATH_MODELS])
@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(model=st.text(min_size=1, max_size=40))
def test_any_model_name_stays_inside_its_path_segment(provider: Provider, model: str) -> None:
    _check_url(provider, model)


@pytest.mark.parametrize("provider", PATH_MODELS, ids=[p.id for p in PATH_MODELS])
@pytest.mark.parametrize("model", HOSTILE_MODELS)
def test_hostile_model_names_stay_inside_their_path_segment(provider: Provider,
                                                             model: str) -> None:
    _check_url(provider, model)


def _check_url(provider: Provider, model: str) -> None:
    endpoint = provider.config.generate
    try:
        built = endpoint_url(provider, endpoint, model)
    except InvalidRequest as exc:
        assert exc.field == "model"
        return
    url = httpx.URL(built)
    base = httpx.URL(provider.base_url)
    assert (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
    assert url.query == b"" and url.fragment == ""
    # Decoded, the path is exactly the configured one with the name in its placeholder: no
    # dot segment was resolved and nothing was split off into a query or fragment.
    placeholder = "{model+}" if "{model+}" in endpoint.path else "{model}"
    expected = base.path + endpoint.path.replace(placeholder, provider.dialect.path_model(model))
    assert unquote(url.raw_path.decode("ascii")) == expected
    assert "/./" not in url.path and "/../" not in url.path
    # The client sends the path exactly as built: nothing re-encoded or normalised.
    assert Target.of(built).path == url.raw_path.decode("ascii")


@pytest.mark.parametrize("target", [
    "/llms/..", "/llms/%2E%2E", "/llms/open%2Fai", "/llms/openai%2F..%2Fgroq",
    "/llms/..%2F..%2Fadmin", "/llms/openai%00", "/llms/openai%0D%0AX-Injected:%201",
    "/llms/../llms/openai/../groq", "/llms/%2e%2e/generate", "/llms/openai%2Fgenerate",
    "/llms/openai%3Fkey=1", "/llms/openai%23frag", "/llms/OPENAI", "/llms/openai%20",
])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_provider_name_is_only_ever_a_lookup_key(
        target: str, method: str, injection_gateway: RunningServer,
        simulators: dict[str, ProviderSimulator]) -> None:
    path = target if method == "GET" else target + "/generate"
    body = json.dumps({"model": MODELS["openai"], "messages": [{"role": "user",
                                                                "content": "hi"}]})
    connection = http.client.HTTPConnection("127.0.0.1", injection_gateway.port, timeout=10)
    try:
        connection.request(method, path, body=body if method == "POST" else None,
                           headers={"content-type": "application/json"})
        response = connection.getresponse()
        status, payload = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status in (400, 404, 405), (status, payload)
    assert payload["code"] in ("not_found", "unknown_provider", "method_not_allowed",
                               "invalid_request")
    assert all(sim.requests == [] for sim in simulators.values())


def test_a_known_provider_name_does_reach_its_upstream(
        injection_gateway: RunningServer, simulators: dict[str, ProviderSimulator]) -> None:
    """The control for the test above: the same request with a clean name is served."""
    r = httpx.get(f"{injection_gateway.url}/llms/openai")
    assert r.status_code == 200 and simulators["openai"].requests


@pytest.fixture(scope="module")
def injection_gateway(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """The gateway in front of all seven simulators (each test resets them)."""
    sims = {pid: request.getfixturevalue(f"{pid}_sim_server") for pid in SIMULATORS}
    with run_gateway(gateway_env(sims)) as server:
        yield server


# --- headers -----------------------------------------------------------------------------

CALLER_SECRET = "caller-secret-7f3a"
HOSTILE_HEADERS = {
    "authorization": f"Bearer {CALLER_SECRET}",
    "proxy-authorization": f"Basic {CALLER_SECRET}",
    "cookie": f"session={CALLER_SECRET}",
    "x-api-key": CALLER_SECRET,
    "x-goog-api-key": CALLER_SECRET,
    "anthropic-version": "1999-01-01",
    "connection": "keep-alive, x-hop",
    "keep-alive": "timeout=999",
    "te": "trailers",
    "upgrade": "h2c",
    "x-hop": CALLER_SECRET,
    "forwarded": "for=6.6.6.6;host=evil.example",
    "x-forwarded-for": "6.6.6.6",
    "x-forwarded-host": "evil.example",
    "host": "evil.example",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
}


@dataclass(frozen=True)
class Received:
    """One request as it arrived at the recording upstream."""

    target: str
    headers: list[tuple[str, str]]


@pytest.fixture(scope="module")
def recording_upstream() -> Iterator[tuple[list[Received], RunningServer]]:
    """A real HTTP upstream on 127.0.0.1 that records every request and answers `{}`."""
    received: list[Received] = []

    async def record(request: Request) -> Response:
        target = request.scope["raw_path"].decode()
        if request.scope["query_string"]:
            target += "?" + request.scope["query_string"].decode()
        received.append(Received(target, [(k.decode("latin-1"), v.decode("latin-1"))
                                          for k, v in request.scope["headers"]]))
        return Response(b"{}", media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST"])])
    with serve(app) as server:
        yield received, server


@pytest.mark.parametrize("pid", sorted(PROVIDERS))
@pytest.mark.anyio
async def test_only_allow_listed_headers_pass_the_upstream_boundary(
        pid: str, recording_upstream: tuple[list[Received], RunningServer]) -> None:
    """Whatever a layer above hands to `Upstream`, only trace context goes along."""
    received, server = recording_upstream
    local = Settings.from_env({name: value.replace(BASE, server.url + "/base/path")
                               for name, value in ENV.items()})
    provider = resolve_all(local)[pid]
    received.clear()
    async with http_client(local) as session:
        upstream = Upstream(session)
        for given in (None, HOSTILE_HEADERS):
            await upstream.call_json(provider, provider.config.generate, model=MODELS[pid],
                                     body={"x": 1}, headers=given)
    plain, hostile = received
    assert hostile.target == plain.target and hostile.target.startswith("/base/path/")
    assert CALLER_SECRET not in repr(hostile.headers)
    # The hostile headers changed nothing but the trace context.
    assert [(k, v) for k, v in hostile.headers if k not in FORWARDED_HEADERS] == plain.headers
    assert dict(hostile.headers)["traceparent"] == HOSTILE_HEADERS["traceparent"]
    assert dict(hostile.headers)["host"] == f"127.0.0.1:{server.port}"


@pytest.mark.anyio
async def test_a_key_with_a_line_break_is_never_sent(
        recording_upstream: tuple[list[Received], RunningServer]) -> None:
    """A configured key that would add a header line fails the call as the gateway's error
    (502, the key not quoted) and nothing reaches the provider."""
    received, server = recording_upstream
    local = Settings.from_env({**{name: value.replace(BASE, server.url)
                                  for name, value in ENV.items()},
                               "OPENAI_API_KEY": "sk-abc\r\nx-injected: 1"})
    provider = resolve_all(local)["openai"]
    received.clear()
    async with http_client(local) as session:
        with pytest.raises(UpstreamError) as failure:
            await Upstream(session).call_json(provider, provider.config.generate,
                                              model=MODELS["openai"], body={"x": 1})
    assert failure.value.status == 502 and failure.value.code == "invalid_provider_header"
    assert "sk-abc" not in failure.value.message
    assert received == []


@pytest.mark.parametrize("pid", sorted(MODELS))
def test_caller_headers_never_reach_a_provider(
        pid: str, injection_gateway: RunningServer,
        simulators: dict[str, ProviderSimulator]) -> None:
    sim = simulators[pid]
    caller = {k: v for k, v in HOSTILE_HEADERS.items() if k != "host"}
    messages = [{"role": "user", "content": "hi"}]
    url = injection_gateway.url
    calls = [
        ("GET", f"{url}/llms/{pid}", None),
        ("POST", f"{url}/llms/{pid}/generate", {"model": MODELS[pid], "messages": messages}),
        ("POST", f"{url}/v1/chat/completions", {"model": f"{pid}/{MODELS[pid]}",
                                                "messages": messages}),
        ("POST", f"{url}/v1/messages", {"model": f"{pid}/{MODELS[pid]}", "max_tokens": 10,
                                        "messages": messages}),
    ]
    for method, target, body in calls:
        r = httpx.request(method, target, json=body, headers=caller, timeout=20)
        assert r.status_code == 200, (target, r.text)
    assert len(sim.requests) >= len(calls)
    for recorded in sim.requests:
        seen = recorded.headers
        assert CALLER_SECRET not in json.dumps(seen) + recorded.query
        for name in ("cookie", "proxy-authorization", "forwarded", "x-forwarded-for",
                     "x-forwarded-host", "te", "upgrade", "keep-alive", "x-hop"):
            assert name not in seen, name
        assert "evil.example" not in seen.get("host", "")
        if "anthropic-version" in seen:
            assert seen["anthropic-version"] != "1999-01-01"
