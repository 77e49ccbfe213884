"""The spec's native API over real HTTP, against each provider's simulator."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.simulators.base import ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway
from tests.support.server import RunningServer

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"


def contract_body(folder: str, name: str) -> Any:
    """A response body from a provider's responses.json, by example name."""
    examples = json.loads((CONTRACTS / folder / "responses.json").read_text())["examples"]
    return next(e["body"] for e in examples if e["name"] == name)


@dataclass(frozen=True)
class Case:
    """What the gateway must send to one provider, and what it must read back."""

    provider: str
    model: str
    path: str
    text: str
    input_tokens: int
    output_tokens: int


def _cases() -> list[Case]:
    oa = contract_body("openai", "chat_basic")
    gq = contract_body("groq", "chat_basic")
    an = contract_body("anthropic", "messages_basic")
    ge = contract_body("gemini", "generate_basic")
    co = contract_body("cohere", "chat_basic")
    cf = contract_body("cloudflare", "run_messages")
    ol = contract_body("ollama", "chat_no_stream")
    return [
        Case(
            "openai",
            "gpt-4o-mini",
            "/v1/chat/completions",
            oa["choices"][0]["message"]["content"],
            oa["usage"]["prompt_tokens"],
            oa["usage"]["completion_tokens"],
        ),
        Case(
            "groq",
            "llama-3.3-70b-versatile",
            "/openai/v1/chat/completions",
            gq["choices"][0]["message"]["content"],
            gq["usage"]["prompt_tokens"],
            gq["usage"]["completion_tokens"],
        ),
        Case(
            "anthropic",
            "claude-sonnet-4-20250514",
            "/v1/messages",
            an["content"][0]["text"],
            an["usage"]["input_tokens"],
            an["usage"]["output_tokens"],
        ),
        Case(
            "google",
            "gemini-2.5-flash",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "".join(p["text"] for p in ge["candidates"][0]["content"]["parts"]),
            ge["usageMetadata"]["promptTokenCount"],
            # thinking tokens are billed as output
            ge["usageMetadata"]["candidatesTokenCount"]
            + ge["usageMetadata"].get("thoughtsTokenCount", 0),
        ),
        Case(
            "cohere",
            "command-a-03-2025",
            "/v2/chat",
            "".join(c["text"] for c in co["message"]["content"] if c["type"] == "text"),
            co["usage"]["tokens"]["input_tokens"],
            co["usage"]["tokens"]["output_tokens"],
        ),
        Case(
            "cloudflare",
            "@cf/meta/llama-3.1-8b-instruct",
            "/ai/run/@cf/meta/llama-3.1-8b-instruct",
            cf["result"]["response"],
            cf["result"]["usage"]["prompt_tokens"],
            cf["result"]["usage"]["completion_tokens"],
        ),
        Case(
            "ollama",
            "llama3.2",
            "/api/chat",
            ol["message"]["content"],
            ol["prompt_eval_count"],
            ol["eval_count"],
        ),
    ]


CASES = _cases()
IDS = [c.provider for c in CASES]


@pytest.fixture
def gateway(simulators: dict[str, ProviderSimulator]) -> Iterator[RunningServer]:
    """The gateway pointed at all seven simulators."""
    env = gateway_env(simulators) | {"CLIENT_LIST_TIMEOUT": "2s"}
    with run_gateway(env) as server:
        yield server


def _auth_placement(
    case: Case, sim: ProviderSimulator, headers: dict[str, str], params: dict[str, str]
) -> None:
    """The key travels exactly where the provider expects it, and nowhere else."""
    lower = {k.lower(): v for k, v in headers.items()}
    if case.provider in ("openai", "groq", "cohere", "cloudflare"):
        assert lower["authorization"] == f"Bearer {sim.api_key}"
    elif case.provider == "anthropic":
        assert lower["x-api-key"] == sim.api_key
        assert lower["anthropic-version"] == "2023-06-01"
        assert "authorization" not in lower
    elif case.provider == "google":
        assert params["key"] == sim.api_key
        assert "authorization" not in lower
    else:
        assert "authorization" not in lower
        assert "x-api-key" not in lower


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_generate_sends_the_providers_request_and_reads_its_answer(
    case: Case, gateway: RunningServer, simulators: dict[str, ProviderSimulator]
) -> None:
    sim = simulators[case.provider]
    body = {
        "model": case.model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
    }
    caller_headers = {"Authorization": "Bearer caller-token-must-not-leak", "Cookie": "a=b"}
    r = httpx.post(
        f"{gateway.url}/llms/{case.provider}/generate",
        json=body,
        headers=caller_headers,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["provider"] == case.provider
    assert answer["response"]["role"] == "assistant"
    assert answer["response"]["content"] == case.text
    assert answer["response"]["model"]
    assert answer["usage"]["prompt_tokens"] == case.input_tokens
    assert answer["usage"]["completion_tokens"] == case.output_tokens
    assert answer["finish_reason"] == "stop"

    assert len(sim.requests) == 1
    sent = sim.requests[0]
    assert sent.method == "POST"
    assert sent.path.endswith(case.path)
    assert sent.headers.get("content-type") == "application/json"
    assert "caller-token-must-not-leak" not in json.dumps(sent.headers)
    assert "cookie" not in {k.lower() for k in sent.headers}
    _auth_placement(case, sim, sent.headers, sent.params)
    text = json.dumps(sent.body)
    assert "Be brief." in text and "Say hello" in text


def test_generate_request_bodies_are_each_providers_own_shape(
    gateway: RunningServer, simulators: dict[str, ProviderSimulator]
) -> None:
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    for case in CASES:
        r = httpx.post(
            f"{gateway.url}/llms/{case.provider}/generate",
            json={"model": case.model, "messages": msgs, "max_tokens": 7, "temperature": 0.5},
            timeout=10,
        )
        assert r.status_code == 200, (case.provider, r.text)
    bodies = {pid: sim.requests[-1].json for pid, sim in simulators.items()}
    assert bodies["openai"]["messages"][0] == {"role": "system", "content": "S"}
    assert 7 in (bodies["openai"].get("max_tokens"), bodies["openai"].get("max_completion_tokens"))
    assert bodies["anthropic"]["system"] == "S"
    assert bodies["anthropic"]["messages"] == [{"role": "user", "content": "U"}]
    assert bodies["anthropic"]["max_tokens"] == 7
    assert bodies["google"]["systemInstruction"]["parts"] == [{"text": "S"}]
    assert bodies["google"]["contents"] == [{"role": "user", "parts": [{"text": "U"}]}]
    assert bodies["google"]["generationConfig"]["maxOutputTokens"] == 7
    assert bodies["cohere"]["messages"][0]["role"] == "system"
    assert bodies["cohere"]["max_tokens"] == 7
    assert bodies["cloudflare"]["messages"][1] == {"role": "user", "content": "U"}
    assert bodies["cloudflare"]["max_tokens"] == 7
    assert bodies["ollama"]["stream"] is False
    assert bodies["ollama"]["options"]["num_predict"] == 7
    assert bodies["ollama"]["options"]["temperature"] == 0.5


def test_anthropic_gets_a_default_max_tokens(
    gateway: RunningServer, anthropic_sim: ProviderSimulator
) -> None:
    r = httpx.post(
        f"{gateway.url}/llms/anthropic/generate",
        json={"model": "claude-sonnet-4-20250514", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert anthropic_sim.requests[-1].json["max_tokens"] > 0


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_list_models_follows_every_page(
    case: Case, gateway: RunningServer, simulators: dict[str, ProviderSimulator]
) -> None:
    sim = simulators[case.provider]
    r = httpx.get(f"{gateway.url}/llms/{case.provider}", timeout=10)
    assert r.status_code == 200, r.text
    listing = r.json()
    assert listing["provider"] == case.provider
    ids = [m["id"] for m in listing["models"]]
    assert ids and len(ids) == len(set(ids))
    for model in listing["models"]:
        assert isinstance(model["id"], str) and model["object"] == "model" and model["owned_by"]
    lists = [q for q in sim.requests if q.method == "GET"]
    assert all(q.method == "GET" for q in lists)
    if case.provider in ("anthropic", "google", "cohere", "cloudflare"):
        assert len(lists) >= 2, "the simulator pages; the gateway must follow"
    _auth_placement(case, sim, lists[0].headers, lists[0].params)


def test_list_shapes_from_the_contracts(gateway: RunningServer) -> None:
    anthropic = httpx.get(f"{gateway.url}/llms/anthropic", timeout=10).json()["models"]
    assert {"id": "claude-sonnet-4-20250514", "name": "Claude Sonnet 4"}.items() <= {
        k: v for k, v in next(m for m in anthropic if m["id"] == "claude-sonnet-4-20250514").items()
    }.items()
    google = httpx.get(f"{gateway.url}/llms/google", timeout=10).json()["models"]
    assert "gemini-2.5-flash" in [m["id"] for m in google]
    assert not any(m["id"].startswith("models/") for m in google)
    cf = httpx.get(f"{gateway.url}/llms/cloudflare", timeout=10).json()["models"]
    assert "@cf/meta/llama-3.3-70b-instruct-fp8-fast" in [m["id"] for m in cf]


def test_list_all_reports_each_provider_and_survives_failures(
    gateway: RunningServer, simulators: dict[str, ProviderSimulator]
) -> None:
    simulators["cohere"].fail_next(500, times=10)
    simulators["groq"].hang()
    started = time.monotonic()
    r = httpx.get(f"{gateway.url}/llms", timeout=30)
    elapsed = time.monotonic() - started
    assert r.status_code == 200
    entries = {e["provider"]: e for e in r.json()}
    assert set(entries) == set(simulators)
    assert entries["cohere"]["models"] == []
    assert entries["cohere"]["error"]["upstream_status"] == 500
    assert (
        entries["groq"]["models"] == [] and entries["groq"]["error"]["code"] == "upstream_timeout"
    )
    for pid in ("openai", "anthropic", "google", "cloudflare", "ollama"):
        assert entries[pid]["models"] and "error" not in entries[pid], entries[pid]
    assert elapsed < 15, "a hung provider must not stall the list past its timeout"


def test_unconfigured_providers_are_left_out_and_named(
    simulators: dict[str, ProviderSimulator],
) -> None:
    env = gateway_env(simulators)
    del env["OPENAI_API_KEY"]
    del env["CLOUDFLARE_ACCOUNT_ID"]
    del env["CLOUDFLARE_API_URL"]  # the simulator's URL already names an account
    with run_gateway(env) as gw:
        listed = {e["provider"] for e in httpx.get(f"{gw.url}/llms", timeout=10).json()}
        assert "openai" not in listed and "cloudflare" not in listed and "anthropic" in listed
        r = httpx.post(
            f"{gw.url}/llms/openai/generate",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 404
        assert r.json()["code"] == "provider_not_configured"
        assert "OPENAI_API_KEY" in r.json()["error"]
        r = httpx.get(f"{gw.url}/llms/cloudflare")
        assert r.status_code == 404 and "CLOUDFLARE_ACCOUNT_ID" in r.json()["error"]
    assert simulators["openai"].requests == []


def test_health_needs_no_upstream(simulators: dict[str, ProviderSimulator]) -> None:
    with run_gateway({}) as gw:
        r = httpx.get(f"{gw.url}/health")
        assert r.status_code == 200 and r.json() == {"message": "OK"}
        assert r.headers["content-type"] == "application/json"
    assert all(not s.requests for s in simulators.values())
