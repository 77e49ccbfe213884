"""Every requests.json example, sent verbatim, gets the contract's answer for it.

JSON answers must equal the responses.json body (and status); streamed answers must equal the
transcript byte for byte. Examples without an answer of their own get the text scenario's body.
"""

from __future__ import annotations

import pytest

from tests.simulators import ProviderSimulator
from tests.simulators_selftest.loopback import send_example

# request example -> responses.json example, or transcript file for streamed answers.
EXPECTED: dict[str, dict[str, str]] = {
    "openai": {
        "list_models": "list_models",
        "retrieve_model": "retrieve_model",
        "chat_basic": "chat_basic",
        "chat_developer_role_and_parts": "chat_basic",
        "chat_stream_with_usage": "stream.txt",
        "chat_tools": "chat_tools",
        "chat_tools_stream": "stream-tool-calls.txt",
        "chat_tool_result_followup": "chat_basic",
        "chat_json_schema": "chat_basic",
    },
    "groq": {
        "list_models": "list_models",
        "chat_basic": "chat_basic",
        "chat_stream": "stream.txt",
        "chat_stream_include_usage": "stream-include-usage.txt",
        "chat_tools": "chat_tools",
        "chat_groq_specific_params": "chat_basic",
    },
    "anthropic": {
        "list_models": "list_models_page1",
        "list_models_next_page": "list_models_page2",
        "messages_basic": "messages_basic",
        "messages_system_blocks_multiturn": "messages_basic",
        "messages_stream": "stream.txt",
        "messages_tools": "messages_tools",
        "messages_tool_result_followup": "messages_basic",
        "messages_extended_thinking": "messages_extended_thinking",
    },
    "google": {
        "list_models": "list_models_page1",
        "list_models_next_page_key_in_query": "list_models_last_page",
        "generate_basic": "generate_basic",
        "generate_multiturn_safety": "generate_max_tokens",
        "stream_generate_sse": "stream.txt",
        "generate_tools": "generate_function_call",
        "generate_function_response_followup": "generate_basic",
    },
    "cohere": {
        "list_models": "list_models",
        "get_model": "get_model",
        "chat_basic": "chat_basic",
        "chat_stream": "stream.txt",
        "chat_tools": "chat_tools",
        "chat_tools_stream": "stream-tool-calls.txt",
        "chat_tool_result_followup": "chat_basic",
    },
    "cloudflare": {
        "models_search": "models_search",
        "run_messages": "run_messages",
        "run_prompt": "run_messages",
        "run_stream": "stream.txt",
        "run_tools": "run_tools",
        "run_reject_if_busy": "run_messages",
        "openai_compat_chat": "openai_compat_chat",
        "openai_compat_chat_stream": "stream-openai-compat.txt",
    },
    "ollama": {
        "tags": "tags",
        "version": "version",
        "chat_stream_default": "stream-chat.ndjson.txt",
        "chat_no_stream": "chat_no_stream",
        "chat_tools": "chat_tools",
        "generate_stream_default": "stream-generate.ndjson.txt",
        "generate_no_stream": "generate_no_stream",
        "openai_compat_models": "openai_compat_models",
        "openai_compat_chat": "openai_compat_chat",
        "openai_compat_chat_stream": "stream-openai-compat.txt",
    },
}

CASES = [(provider, name) for provider, table in EXPECTED.items() for name in table]


def test_every_request_example_is_covered(simulators: dict[str, ProviderSimulator]) -> None:
    """The table above names every example in every requests.json."""
    for provider, sim in simulators.items():
        assert set(sim.contract.requests) == set(EXPECTED[provider]), provider


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_replay(simulators: dict[str, ProviderSimulator], provider: str, name: str) -> None:
    """The example's answer comes back exactly."""
    sim = simulators[provider]
    example = sim.contract.request(name)
    expected = EXPECTED[provider][name]
    if "response_stream" in example.raw:
        assert example.raw["response_stream"] == expected
    response = send_example(sim, example)
    if expected.endswith(".txt"):
        assert response.status_code == 200, response.text
        assert response.content == sim.contract.transcript(expected)
        return
    answer = sim.contract.response(expected)
    assert response.status_code == answer.status, response.text
    assert response.json() == answer.body
    assert response.headers["content-type"] == answer.headers["content-type"]
