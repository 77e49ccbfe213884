"""Errors the caller sees: always JSON, right status, nothing leaked."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.test_llms import CASES, IDS, Case
from tests.simulators.base import ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway
from tests.support.server import RunningServer

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def gateway(simulators: dict[str, ProviderSimulator]) -> Iterator[RunningServer]:
    """The gateway with short timeouts and a small body limit."""
    env = gateway_env(simulators) | {
        "CLIENT_READ_TIMEOUT": "1s",
        "ROUTING_RETRIES": "0",
        "CLIENT_LIST_TIMEOUT": "2s",
        "MAX_REQUEST_BODY_BYTES": "4096",
    }
    with run_gateway(env) as server:
        yield server


def _generate(gw: RunningServer, case: Case, **kw: object) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/llms/{case.provider}/generate",
        json={"model": case.model, "messages": HELLO},
        timeout=10,
        **kw,
    )  # type: ignore[arg-type]


def _secret_free(r: httpx.Response, sim: ProviderSimulator) -> None:
    assert not sim.api_key or sim.api_key not in r.text
    assert "Traceback" not in r.text


# upstream status → (gateway status, code checked loosely)
MAPPING = [(401, 502), (403, 502), (404, 404), (429, 429), (500, 502), (503, 502)]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize(("upstream", "expected"), MAPPING)
def test_provider_errors_map_to_gateway_errors(
    case: Case,
    upstream: int,
    expected: int,
    gateway: RunningServer,
    simulators: dict[str, ProviderSimulator],
) -> None:
    sim = simulators[case.provider]
    sim.fail_next(upstream, headers={"retry-after": "7"} if upstream == 429 else None)
    r = _generate(gateway, case)
    assert r.status_code == expected, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["provider"] == case.provider
    assert body["upstream_status"] == upstream
    assert body["error"].startswith(f"{case.provider} answered {upstream}")
    if upstream == 429:
        assert r.headers["retry-after"] == "7"
    _secret_free(r, sim)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_list_errors_map_too(
    case: Case, gateway: RunningServer, simulators: dict[str, ProviderSimulator]
) -> None:
    simulators[case.provider].fail_next(401)
    r = httpx.get(f"{gateway.url}/llms/{case.provider}", timeout=10)
    assert r.status_code == 502 and r.json()["upstream_status"] == 401


def test_anthropic_overloaded_529_is_a_502_keeping_the_status(
    gateway: RunningServer, anthropic_sim: ProviderSimulator
) -> None:
    anthropic_sim.fail_next(529)
    r = _generate(gateway, CASES[IDS.index("anthropic")])
    assert r.status_code == 502
    assert r.json()["upstream_status"] == 529
    assert r.json()["code"] == "overloaded_error"


def test_upstream_timeout_is_504(gateway: RunningServer, openai_sim: ProviderSimulator) -> None:
    openai_sim.hang()
    r = _generate(gateway, CASES[IDS.index("openai")])
    assert r.status_code == 504
    assert r.json()["code"] == "upstream_timeout"


def test_unreachable_upstream_is_502(simulators: dict[str, ProviderSimulator]) -> None:
    env = gateway_env(simulators) | {"OPENAI_API_URL": "http://127.0.0.1:9"}
    with run_gateway(env) as gw:
        r = _generate(gw, CASES[IDS.index("openai")])
    assert r.status_code == 502 and r.json()["code"] == "upstream_unavailable"
    assert "127.0.0.1:9" not in r.text


def test_malformed_upstream_json_is_502(
    gateway: RunningServer, openai_sim: ProviderSimulator
) -> None:
    openai_sim.malformed_json()
    r = _generate(gateway, CASES[IDS.index("openai")])
    assert r.status_code == 502 and r.json()["code"] == "invalid_upstream_response"


def test_gemini_key_never_appears_in_errors(
    gateway: RunningServer, google_sim: ProviderSimulator
) -> None:
    google_sim.fail_next(
        400,
        body={
            "error": {
                "code": 400,
                "status": "INVALID_ARGUMENT",
                "message": f"bad key {google_sim.api_key}",
            }
        },
    )
    r = _generate(gateway, CASES[IDS.index("google")])
    assert r.status_code == 400
    assert google_sim.api_key not in r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": HELLO, "temperature": 9}, "temperature"),
        ({"model": "m", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": 5, "messages": HELLO}, "model"),
        ([1, 2], "body"),
    ],
)
def test_invalid_bodies_are_400_naming_the_field(
    body: object, field: str, gateway: RunningServer, openai_sim: ProviderSimulator
) -> None:
    r = httpx.post(f"{gateway.url}/llms/openai/generate", json=body, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert r.json()["code"] == "invalid_request"
    assert openai_sim.requests == []


def test_not_json_is_400(gateway: RunningServer) -> None:
    r = httpx.post(f"{gateway.url}/llms/openai/generate", content=b"{nope", timeout=10)
    assert r.status_code == 400 and r.json()["field"] == "body"


def test_unknown_provider_is_404(gateway: RunningServer) -> None:
    r = httpx.post(f"{gateway.url}/llms/nope/generate", json={"model": "m", "messages": HELLO})
    assert r.status_code == 404 and r.json()["code"] == "unknown_provider"
    r = httpx.get(f"{gateway.url}/llms/nope")
    assert r.status_code == 404


def test_unknown_route_and_method_are_json(gateway: RunningServer) -> None:
    r = httpx.get(f"{gateway.url}/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = httpx.delete(f"{gateway.url}/llms")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


def test_oversized_body_is_413_with_content_length(
    gateway: RunningServer, openai_sim: ProviderSimulator
) -> None:
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 10_000}]}
    r = httpx.post(f"{gateway.url}/llms/openai/generate", json=big, timeout=10)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert openai_sim.requests == []


def test_oversized_chunked_body_is_413(
    gateway: RunningServer, openai_sim: ProviderSimulator
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 1000
        yield b'"}]}'

    r = httpx.post(f"{gateway.url}/llms/openai/generate", content=chunks(), timeout=10)
    assert r.status_code == 413
    assert openai_sim.requests == []


@pytest.mark.parametrize(
    "model",
    ["../../admin", "a/../../b", "x?key=1", "x#frag", "a%2F..%2Fb", "a\r\nHost: evil", "/abs"],
)
def test_model_names_cannot_change_the_upstream_url(
    model: str, gateway: RunningServer, simulators: dict[str, ProviderSimulator]
) -> None:
    for provider in ("google", "cloudflare"):
        sim = simulators[provider]
        sim.reset()
        r = httpx.post(
            f"{gateway.url}/llms/{provider}/generate",
            json={"model": model, "messages": HELLO},
            timeout=10,
        )
        if r.status_code == 400:
            assert r.json()["field"] == "model"
            assert sim.requests == []
            continue
        # Encoded, the name stays inside the path: it never adds query parameters, never
        # replaces the key, and never escapes the provider's base path.
        sent = sim.requests[-1]
        assert set(sent.params) <= {"key"}
        assert sent.params.get("key", sim.api_key) == sim.api_key
        assert "evil" not in json.dumps(sent.headers)
        base = "/v1beta/models/" if provider == "google" else "/ai/run/"
        assert base in sent.path


# What each API's error shape carries for a body that stalled: the native shape and
# OpenAI's keep the gateway's code; Anthropic's has only the message.
TRICKLE_CASES = [
    ("/llms/openai/generate", b'"code":"request_timeout"'),
    ("/v1/chat/completions", b'"code":"request_timeout"'),
    ("/v1/messages", b'{"type":"error","error":{"type":'),
]


@pytest.mark.parametrize(("path", "marker"), TRICKLE_CASES, ids=[p for p, _ in TRICKLE_CASES])
def test_a_client_trickling_its_body_gets_408(simulators: dict[str, ProviderSimulator],
                                              path: str, marker: bytes) -> None:
    import socket
    import time

    env = gateway_env(simulators) | {"SERVER_READ_TIMEOUT": "1s"}
    with run_gateway(env) as gw, socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mo")
        started = time.monotonic()
        sock.settimeout(10)
        reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert marker in reply, reply
        assert b"did not arrive within 1s" in reply, reply
        assert time.monotonic() - started < 8
    assert simulators["openai"].requests == []


def test_errors_before_the_route_use_the_client_apis_shape(gateway: RunningServer) -> None:
    big = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 10_000}]}
    r = httpx.post(f"{gateway.url}/v1/chat/completions", json=big, timeout=10)
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["code"] == "payload_too_large"
    r = httpx.post(f"{gateway.url}/v1/messages", json=big | {"max_tokens": 5}, timeout=10)
    assert r.status_code == 413
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "request_too_large"
    r = httpx.get(f"{gateway.url}/v1/nowhere", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(f"{gateway.url}/v1/chat/completions", timeout=10)
    assert r.status_code == 405 and "error" in r.json() and "message" in r.json()["error"]
