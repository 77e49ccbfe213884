"""The table from dialect name (the spec's `Dialect` enum) to its implementation."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.dialects import anthropic, cloudflare, cohere, gemini, ollama, openai
from gateway.dialects.base import Dialect

DIALECTS: Mapping[str, Dialect] = MappingProxyType({
    module.DIALECT.name: module.DIALECT
    for module in (openai, anthropic, gemini, cohere, ollama, cloudflare)
})
