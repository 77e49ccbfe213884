"""Groq simulator: OpenAI-compatible endpoints under /openai/v1 with Groq's extra fields."""

from __future__ import annotations

from typing import ClassVar

from tests.simulators.openai_compat import OpenAICompatSimulator, default_scenarios


class GroqSimulator(OpenAICompatSimulator):
    """api.groq.com as recorded in tests/contracts/groq."""

    provider_id = "groq"
    contract_dir = "groq"
    default_api_key = "gsk_test000000000000000000000000"
    prefix = "/openai/v1"
    scenarios = default_scenarios()
    transcripts: ClassVar[dict[str, tuple[str, str | None]]] = {
        "text": ("stream-include-usage.txt", "stream.txt"),
        "tools": ("stream-tool-calls.txt", "stream-tool-calls.txt"),
    }
    # Groq rejects OpenAI parameters it does not implement (see error_400_unsupported_property).
    unsupported_params = ("logit_bias",)
    extension_schema = ("extensions.schema.json", "#/$defs/RequestAdditions")
