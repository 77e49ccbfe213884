"""The repository's spec is valid OpenAPI 3.1, checked directly with openapi-spec-validator."""

from __future__ import annotations

from pathlib import Path

import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_yaml_is_valid_openapi_3_1() -> None:
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    assert document["openapi"].startswith("3.1.")
    errors = [e.message for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def test_every_provider_in_the_enum_has_a_config_and_back() -> None:
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    providers = document["components"]["schemas"]["Providers"]
    assert providers["enum"] == list(providers["x-provider-configs"])
    assert set(providers["enum"]) == {"ollama", "groq", "openai", "google", "cloudflare",
                                      "cohere", "anthropic"}
