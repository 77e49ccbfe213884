"""What a requested model name resolves to: candidates, their order, and helpful errors."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import NotFound, ProviderNotConfigured
from gateway.providers import resolve_all
from gateway.routing import Catalog, load_routing
from gateway.routing.startup import explicit_locals
from generated.settings import Settings

KEYS = {"OPENAI_API_KEY": "k1", "GROQ_API_KEY": "k2", "ANTHROPIC_API_KEY": "k3",
        "GOOGLE_API_KEY": "k4", "COHERE_API_KEY": "k5", "CLOUDFLARE_API_KEY": "k6",
        "CLOUDFLARE_ACCOUNT_ID": "acct"}


def catalog(env: dict[str, str], user_file: str | None = None,
            discovered: dict[str, tuple[str, ...]] | None = None) -> Catalog:
    settings = Settings.from_env(env)
    config = load_routing(user_file)
    providers = resolve_all(settings)
    return Catalog(config, providers, explicit_locals=explicit_locals(settings, config, providers),
                   discovered=discovered)


def labels(cat: Catalog, name: str) -> list[str]:
    return [c.label for c in cat.resolve(name).candidates]


def test_canonical_name_maps_to_each_providers_own_id() -> None:
    cat = catalog({**KEYS, "OLLAMA_API_URL": "http://127.0.0.1:11434"})
    assert labels(cat, "llama-3.3-70b") == [
        "groq/llama-3.3-70b-versatile", "cloudflare/@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        "ollama/llama3.3"]  # resellers in catalog order, the local server last
    assert labels(cat, "claude-sonnet-4") == ["anthropic/claude-sonnet-4-20250514"]


def test_first_party_comes_before_resellers(routing_file: Any) -> None:
    path = routing_file({"models": {"gpt-oss-120b": {
        "first_party": "cloudflare",
        "providers": {"ollama": "gpt-oss:120b", "groq": "openai/gpt-oss-120b",
                      "cloudflare": "@cf/openai/gpt-oss-120b"}}}})
    cat = catalog({**KEYS, "OLLAMA_API_URL": "http://127.0.0.1:11434"}, path)
    assert [c.provider_id for c in cat.resolve("gpt-oss-120b").candidates] == [
        "cloudflare", "groq", "ollama"]


def test_only_providers_with_keys_are_candidates() -> None:
    cat = catalog({"CLOUDFLARE_API_KEY": "k", "CLOUDFLARE_ACCOUNT_ID": "a"})
    assert labels(cat, "llama-3.3-70b") == [
        "cloudflare/@cf/meta/llama-3.3-70b-instruct-fp8-fast"]
    with pytest.raises(NotFound, match="no configured provider serves 'gpt-4o'; "
                                       "set OPENAI_API_KEY"):
        cat.resolve("gpt-4o")


def test_a_local_server_needs_discovery_or_an_explicit_url() -> None:
    assert "ollama" not in {c.provider_id for c in catalog(KEYS).resolve(
        "llama-3.2-3b").candidates}
    found = catalog(KEYS, discovered={"ollama": ("llama3.2:latest", "qwen3:32b")})
    assert [c.provider_id for c in found.resolve("llama-3.2-3b").candidates] == [
        "cloudflare", "ollama"]
    # Discovered, but without that model pulled: not a candidate.
    assert "ollama" not in {c.provider_id for c in found.resolve("llama-3.3-70b").candidates}


def test_alias_is_an_ordered_fallback_list() -> None:
    cat = catalog({"GROQ_API_KEY": "k", "GOOGLE_API_KEY": "g"})
    assert labels(cat, "fast") == ["groq/llama-3.1-8b-instant", "google/gemini-2.5-flash"]


def test_alias_entries_may_name_provider_models(routing_file: Any) -> None:
    path = routing_file({"aliases": {"mine": ["groq/qwen/qwen3-32b", "gpt-4o", "cohere/x"]}})
    cat = catalog({"GROQ_API_KEY": "k", "OPENAI_API_KEY": "o"}, path)
    assert labels(cat, "mine") == ["groq/qwen/qwen3-32b", "openai/gpt-4o"]


def test_auto_follows_the_priority_list() -> None:
    cat = catalog({"GROQ_API_KEY": "k", "ANTHROPIC_API_KEY": "a"})
    plan = cat.resolve("auto")
    assert plan.candidates[0].label == "anthropic/claude-sonnet-4-20250514"
    assert plan.candidates[1].label == "groq/llama-3.3-70b-versatile"
    assert len({c.label for c in plan.candidates}) == len(plan.candidates)


def test_auto_ends_with_discovered_local_models() -> None:
    cat = catalog({"GROQ_API_KEY": "k"}, discovered={"ollama": ("llama3.2", "phi4")})
    assert labels(cat, "auto")[-2:] == ["ollama/llama3.2", "ollama/phi4"]


def test_override_replaces_the_requested_name(routing_file: Any) -> None:
    path = routing_file({"overrides": {"gpt-4": "gpt-4o-mini", "fastest": "fast"}})
    cat = catalog(KEYS, path)
    plan = cat.resolve("gpt-4")
    assert (plan.requested, plan.name) == ("gpt-4", "gpt-4o-mini")
    assert [c.label for c in plan.candidates] == ["openai/gpt-4o-mini"]
    assert cat.resolve("fastest").candidates == cat.resolve("fast").candidates


def test_provider_model_and_native_ids() -> None:
    cat = catalog(KEYS)
    assert labels(cat, "groq/whatever-new-model") == ["groq/whatever-new-model"]
    assert labels(cat, "cloudflare/@cf/meta/llama-3.1-8b-instruct") == [
        "cloudflare/@cf/meta/llama-3.1-8b-instruct"]
    # A provider's own id that the catalog knows, even with a slash in it.
    assert labels(cat, "qwen/qwen3-32b") == ["groq/qwen/qwen3-32b"]
    assert cat.resolve("llama-3.3-70b-versatile").candidates[0].canonical == "llama-3.3-70b"


def test_unknown_and_unconfigured_names() -> None:
    cat = catalog({"GROQ_API_KEY": "k"})
    with pytest.raises(NotFound) as unknown:
        cat.resolve("gpt-5x")
    assert unknown.value.code == "unknown_model"
    with pytest.raises(ProviderNotConfigured, match="COHERE_API_KEY"):
        cat.resolve("cohere/command-r")
