"""The routing file: the built-in catalog, the user's file merged over it, and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.library import Gateway
from gateway.routing import RoutingConfigError, load_routing, routing_config
from gateway.routing.config import AUTO, BUILTIN_ROUTING_FILE, merge
from generated.providers import PROVIDERS
from generated.settings import Settings

ISSUE_MODELS = ("llama-3.3-70b", "llama-3.1-8b", "gpt-4o", "gpt-4o-mini", "claude-sonnet-4",
                "gemini-2.5-flash", "command-r", "qwen3-32b", "mistral-small")


def problems(path: str) -> list[str]:
    with pytest.raises(RoutingConfigError) as caught:
        load_routing(path)
    return list(caught.value.problems)


def test_builtin_catalog_is_valid_and_complete() -> None:
    config = load_routing()
    assert set(ISSUE_MODELS) <= set(config.models)
    assert {"fast", "smart"} <= set(config.aliases)
    assert config.auto and all(name in config.models for name in config.auto)
    known = set(PROVIDERS) | set(config.local_servers)
    assert all(set(m.providers) <= known for m in config.models.values())
    # First-party models name their maker; resellers' models have none.
    assert config.models["gpt-4o"].first_party == "openai"
    assert config.models["llama-3.3-70b"].first_party is None
    assert config.budgets == {}  # free-tier caps are presets, applied only by choice
    assert {"lmstudio", "llamacpp", "vllm", "ollama"} == set(config.local_servers)


def test_merge_is_key_by_key_and_null_deletes() -> None:
    base = {"a": {"x": 1, "y": 2}, "l": [1, 2], "k": 1}
    assert merge(base, {"a": {"y": None, "z": 3}, "l": [9], "k": None}) == {
        "a": {"x": 1, "z": 3}, "l": [9]}


def test_user_file_extends_and_overrides(routing_file: Any) -> None:
    path = routing_file({
        "models": {"my-model": {"providers": {"ollama": "my-finetune:latest"}},
                   "llama-3.3-70b": {"providers": {"cloudflare": None}}},
        "aliases": {"fast": ["llama-3.1-8b", "groq/llama-3.1-8b-instant"], "mine": ["my-model"]},
        "overrides": {"gpt-4": "gpt-4o-mini"},
        "budgets": {"groq": {"preset": "groq-free", "rpm": 5}},
    })
    config = load_routing(path)
    assert config.models["my-model"].providers == {"ollama": "my-finetune:latest"}
    assert list(config.models["llama-3.3-70b"].providers) == ["groq", "ollama"]
    assert config.models["gpt-4o"].providers == {"openai": "gpt-4o"}  # untouched
    assert config.aliases["fast"] == ("llama-3.1-8b", "groq/llama-3.1-8b-instant")
    assert config.aliases["smart"]  # kept from the built-in file
    assert config.overrides == {"gpt-4": "gpt-4o-mini"}
    budget = config.budgets["groq"]
    assert (budget.rpm, budget.rpd, budget.tpm, budget.tpd) == (5, 1000, 12000, 100000)


@pytest.mark.parametrize(("data", "expected"), [
    ({"aliases": {"fast": ["llama-3.1-8b", "gpt-4o-mini", "gpt-5x"]}},
     "aliases.fast[2]: unknown model 'gpt-5x'"),
    ({"aliases": {"fast": ["nowhere/model"]}},
     "aliases.fast[0]: unknown provider 'nowhere' in 'nowhere/model'"),
    ({"models": {"m": {"providers": {"acme": "x"}}}},
     "models.m.providers.acme: unknown provider 'acme'"),
    ({"models": {"m": {"providers": {"openai": 5}}}},
     "models.m.providers.openai: 5 is not of type 'string'"),
    ({"models": {"m": {"first_party": "groq", "providers": {"openai": "x"}}}},
     "models.m.first_party: 'groq' is not one of the model's providers"),
    ({"models": {"bad/name": {"providers": {"openai": "x"}}}},
     "models: 'bad/name' does not match"),
    ({"auto": ["gpt-4o", "gpt-9"]}, "auto[1]: unknown model 'gpt-9'"),
    ({"overrides": {"gpt-4": "gpt-4-turbo-x"}}, "overrides.gpt-4: unknown model 'gpt-4-turbo-x'"),
    ({"budgets": {"groq": {"rpm": 0}}}, "budgets.groq.rpm: 0 is less than the minimum of 1"),
    ({"budgets": {"groq": {"preset": "groq-paid"}}},
     "budgets.groq.preset: unknown budget preset 'groq-paid'"),
    ({"budgets": {"acme": {"rpm": 1}}}, "budgets.acme: unknown provider 'acme'"),
    ({"aliases": {"gpt-4o": ["gpt-4o-mini"]}},
     "aliases.gpt-4o: alias 'gpt-4o' hides the model of that name"),
    ({"local_servers": {"lmstudio": {"url": "http://10.0.0.5:1234"}}},
     "local_servers.lmstudio.url: 'http://10.0.0.5:1234' is not a loopback address"),
    ({"local_servers": {"tgi": {"probe": "/v1/models", "url": "http://127.0.0.1:3000",
                                "generate": "/v1/chat/completions", "dialect": "tgi"}}},
     "local_servers.tgi.dialect: unknown dialect 'tgi'"),
    ({"local_servers": {"ollama": {"url": "http://127.0.0.1:1"}}},
     "local_servers.ollama.url: 'ollama' is a spec provider"),
    ({"version": 2}, "version: 1 was expected"),
    ({"colour": "blue"}, "(top level): Additional properties are not allowed ('colour'"),
])
def test_errors_name_the_file_and_the_entry(routing_file: Any, data: dict[str, Any],
                                            expected: str) -> None:
    path = routing_file(data)
    found = problems(path)
    assert any(p.startswith(f"{path}: {expected}") for p in found), found


def test_error_in_a_builtin_entry_names_the_builtin_file(routing_file: Any) -> None:
    # The user removes a model that a built-in alias still names.
    path = routing_file({"models": {"gpt-4o-mini": None}})
    found = problems(path)
    assert f"{BUILTIN_ROUTING_FILE.name}: aliases.fast[2]: unknown model 'gpt-4o-mini'" in found
    assert all("gpt-4o-mini" in p for p in found)


def test_every_problem_is_reported_at_once(routing_file: Any) -> None:
    path = routing_file({"aliases": {"a": ["x1"], "b": ["x2"]}, "auto": ["x3"]})
    assert len(problems(path)) == 3


def test_unreadable_files(tmp_path: Any) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [unclosed\n")
    assert problems(str(broken)) == [f"{broken}: not valid YAML at line 2"]
    missing = tmp_path / "missing.yaml"
    assert problems(str(missing))[0].startswith(f"{missing}: cannot be read")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    assert problems(str(scalar)) == [f"{scalar}: expected a mapping at the top level"]


def test_start_up_fails_on_an_invalid_routing_file(routing_file: Any) -> None:
    path = routing_file({"aliases": {"fast": ["gpt-5x"]}})
    settings = Settings.from_env({"ROUTING_FILE": path})
    with pytest.raises(RoutingConfigError, match=r"aliases\.fast\[0\]: unknown model 'gpt-5x'"):
        routing_config(settings)


@pytest.mark.anyio
async def test_library_start_up_validates_too(routing_file: Any) -> None:
    path = routing_file({"auto": ["nope"]})
    with pytest.raises(RoutingConfigError, match=r"auto\[0\]"):
        async with Gateway.from_env({"ROUTING_FILE": path}):
            pass


def test_auto_is_not_a_model_name() -> None:
    assert AUTO not in load_routing().models
