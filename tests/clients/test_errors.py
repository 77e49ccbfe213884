"""Errors on the client APIs come in each API's own shape, so the SDKs raise the right class."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.clients.expected import body, gateway_model
from tests.simulators import ProviderSimulator
from tests.support.server import RunningServer

HELLO: Any = [{"role": "user", "content": "Say hello"}]

@pytest.fixture
def gateway(fresh_gateway: RunningServer) -> RunningServer:
    """Failures injected here cool providers down: each test gets a gateway of its own."""
    return fresh_gateway



def _contract_message(provider: str, name: str) -> str:
    """The message of a contract error example (each provider nests it differently)."""
    error = body(provider, name)["error"]
    return str(error["message"] if isinstance(error, dict) else error)


def _openai_shape(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of an OpenAI-shaped error body, checked for its four keys."""
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def _anthropic_shape(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of an Anthropic-shaped error body."""
    payload = response.json()
    assert payload["type"] == "error" and set(payload["error"]) == {"type", "message"}
    error: dict[str, Any] = payload["error"]
    return error


# --- routing ---------------------------------------------------------------------------------


def test_unknown_provider_prefix(openai_client: openai.OpenAI,
                                 anthropic_client: anthropic.Anthropic,
                                 simulators: dict[str, ProviderSimulator]) -> None:
    with pytest.raises(openai.NotFoundError) as oa:
        openai_client.chat.completions.create(model="nosuch/gpt-4o-mini", messages=HELLO)
    error = _openai_shape(oa.value.response)
    assert error["code"] == "unknown_model" and "nosuch" in error["message"]
    with pytest.raises(anthropic.NotFoundError) as an:
        anthropic_client.messages.create(model="nosuch/claude", max_tokens=8, messages=HELLO)
    assert _anthropic_shape(an.value.response)["type"] == "not_found_error"
    assert all(not sim.requests for sim in simulators.values())


@pytest.mark.parametrize("model", ["/gpt-4o-mini", "openai/", "openai//x"])
def test_missing_provider_or_model_is_a_bad_request(model: str, openai_client: openai.OpenAI,
                                                    anthropic_client: anthropic.Anthropic,
                                                    openai_sim: ProviderSimulator) -> None:
    with pytest.raises(openai.BadRequestError) as oa:
        openai_client.chat.completions.create(model=model, messages=HELLO)
    assert _openai_shape(oa.value.response)["param"] == "model"
    with pytest.raises(anthropic.BadRequestError) as an:
        anthropic_client.messages.create(model=model, max_tokens=8, messages=HELLO)
    assert _anthropic_shape(an.value.response)["type"] == "invalid_request_error"
    assert "provider/model" in str(an.value)
    assert openai_sim.requests == []


def test_cloudflare_model_ids_keep_their_slashes(openai_client: openai.OpenAI,
                                                 cloudflare_sim: ProviderSimulator) -> None:
    openai_client.chat.completions.create(model=gateway_model("cloudflare"), messages=HELLO)
    assert cloudflare_sim.last_request.path.endswith("/ai/run/@cf/meta/llama-3.1-8b-instruct")


# --- upstream failures -----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("provider", "retry_after"), [("openai", "1"), ("google", None)])
def test_upstream_429_is_an_openai_rate_limit_error(provider: str, retry_after: str | None,
                                                     stream: bool, openai_client: openai.OpenAI,
                                                     simulators: dict[str, ProviderSimulator]
                                                     ) -> None:
    simulators[provider].fail_next(429)
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client.chat.completions.create(model=gateway_model(provider), messages=HELLO,
                                              stream=stream)
    error = _openai_shape(raised.value.response)
    assert error["type"] == "rate_limit_error"
    if retry_after is not None:  # Gemini gives its hint in the body, not as a header
        assert raised.value.response.headers["retry-after"] == retry_after
    assert raised.value.response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_upstream_429_is_an_anthropic_rate_limit_error(stream: bool,
                                                        anthropic_client: anthropic.Anthropic,
                                                        anthropic_sim: ProviderSimulator) -> None:
    anthropic_sim.fail_next(429)
    with pytest.raises(anthropic.RateLimitError) as raised:
        anthropic_client.messages.create(model=gateway_model("anthropic"), max_tokens=8,
                                         messages=HELLO, stream=stream)
    assert _anthropic_shape(raised.value.response)["type"] == "rate_limit_error"
    assert raised.value.response.headers["retry-after"] == "17"
    assert _contract_message("anthropic", "error_429_rate_limit") in str(raised.value)


def test_upstream_400_is_a_bad_request(openai_client: openai.OpenAI,
                                       anthropic_client: anthropic.Anthropic,
                                       simulators: dict[str, ProviderSimulator]) -> None:
    simulators["anthropic"].fail_next(400)
    with pytest.raises(openai.BadRequestError) as oa:
        openai_client.chat.completions.create(model=gateway_model("anthropic"), messages=HELLO)
    assert _contract_message("anthropic", "error_400_invalid_request") in oa.value.message
    simulators["openai"].fail_next(400)
    with pytest.raises(anthropic.BadRequestError) as an:
        anthropic_client.messages.create(model=gateway_model("openai"), max_tokens=8,
                                         messages=HELLO)
    assert _contract_message("openai", "error_400_bad_param") in str(an.value)


def test_upstream_500_before_the_stream_is_a_server_error(openai_client: openai.OpenAI,
                                                          ollama_sim: ProviderSimulator) -> None:
    ollama_sim.fail_next(500, times=5)  # more than the retries routing makes
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client.chat.completions.create(model=gateway_model("ollama"), messages=HELLO,
                                              stream=True)
    assert raised.value.status_code == 502
    assert _openai_shape(raised.value.response)["type"] == "server_error"


# --- invalid requests ------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "param"), [
    ({"temperature": 7}, "temperature"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
])
def test_invalid_openai_request_names_the_field(extra: dict[str, Any], param: str,
                                                openai_client: openai.OpenAI,
                                                openai_sim: ProviderSimulator) -> None:
    request = {"model": gateway_model("openai"), "messages": HELLO, **extra}
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.chat.completions.create(**request)
    error = _openai_shape(raised.value.response)
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert openai_sim.requests == []


def test_invalid_anthropic_request_names_the_field(anthropic_client: anthropic.Anthropic,
                                                   anthropic_sim: ProviderSimulator) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        anthropic_client.messages.create(model=gateway_model("anthropic"), max_tokens=0,
                                         messages=HELLO)
    assert "max_tokens" in _anthropic_shape(raised.value.response)["message"]
    assert anthropic_sim.requests == []


@pytest.mark.parametrize(("path", "shape"), [
    ("/v1/chat/completions", _openai_shape), ("/v1/messages", _anthropic_shape)])
def test_a_body_that_is_not_json_is_answered_in_the_clients_shape(
        path: str, shape: Any, gateway: RunningServer) -> None:
    response = httpx.post(gateway.url + path, content=b"{not json", timeout=10,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in shape(response)["message"]


def test_anthropic_headers_are_accepted_but_not_forwarded(gateway: RunningServer,
                                                          cohere_sim: ProviderSimulator) -> None:
    response = httpx.post(f"{gateway.url}/v1/messages", timeout=10, headers={
        "x-api-key": "client-key", "anthropic-version": "2023-06-01"}, json={
        "model": gateway_model("cohere"), "max_tokens": 8, "messages": HELLO})
    assert response.status_code == 200, response.text
    sent = cohere_sim.last_request.headers
    assert "client-key" not in str(sent) and "anthropic-version" not in sent
    assert sent["authorization"] == f"Bearer {cohere_sim.api_key}"
