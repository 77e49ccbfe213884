"""OpenAI simulator: GET /v1/models and POST /v1/chat/completions with Bearer auth."""

from __future__ import annotations

from typing import ClassVar

from tests.simulators.openai_compat import OpenAICompatSimulator, default_scenarios


class OpenAISimulator(OpenAICompatSimulator):
    """api.openai.com as recorded in tests/contracts/openai."""

    provider_id = "openai"
    contract_dir = "openai"
    default_api_key = "sk-test-0000000000000000"
    prefix = "/v1"
    scenarios = default_scenarios(length_body="chat_length_cutoff")
    transcripts: ClassVar[dict[str, tuple[str, str | None]]] = {
        "text": ("stream.txt", "stream-recorded-no-usage.txt"),
        "tools": ("stream-tool-calls.txt", None),
    }
    # chat_length_cutoff used 3 completion tokens: a smaller budget cannot fit the answer.
    length_limit = 3
