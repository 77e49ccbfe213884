"""Provider simulators: one Starlette app per upstream LLM API, built from tests/contracts.

Start them with the fixtures in `tests.simulators.fixtures` (register that module as a pytest
plugin) and point the gateway at `sim.url`; `gateway_env` builds the matching environment.
"""

from __future__ import annotations

from tests.simulators.anthropic import AnthropicSimulator
from tests.simulators.base import ProviderSimulator, RecordedRequest, Scenario
from tests.simulators.cloudflare import CloudflareSimulator
from tests.simulators.cohere import CohereSimulator
from tests.simulators.gemini import GoogleSimulator
from tests.simulators.groq import GroqSimulator
from tests.simulators.ollama import OllamaSimulator
from tests.simulators.openai import OpenAISimulator

# Keyed by the gateway's provider id (x-provider-configs in openapi.yaml).
SIMULATORS: dict[str, type[ProviderSimulator]] = {
    "ollama": OllamaSimulator,
    "groq": GroqSimulator,
    "openai": OpenAISimulator,
    "google": GoogleSimulator,
    "cloudflare": CloudflareSimulator,
    "cohere": CohereSimulator,
    "anthropic": AnthropicSimulator,
}

__all__ = [
    "SIMULATORS",
    "AnthropicSimulator",
    "CloudflareSimulator",
    "CohereSimulator",
    "GoogleSimulator",
    "GroqSimulator",
    "OllamaSimulator",
    "OpenAISimulator",
    "ProviderSimulator",
    "RecordedRequest",
    "Scenario",
]
