"""A provider added to the spec gets its variables, registry entry, docs and manifests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import yaml

from codegen.__main__ import main
from tests.codegen.conftest import SPEC

NEW_PROVIDER = """\
        mistral:
          id: mistral
          name: Mistral
          url: https://api.mistral.test/{region}
          auth_type: bearer
          dialect: openai
          url_params:
            region:
              env: MISTRAL_REGION
              description: The region to call.
          endpoints:
            list:
              method: GET
              endpoint: /v1/models
            generate:
              method: POST
              endpoint: /v1/chat/completions
"""


def _spec_with_new_provider(path: Path) -> None:
    text = SPEC.read_text(encoding="utf-8")
    enum = "enum: [ollama, groq, openai, google, cloudflare, cohere, anthropic]"
    anchor = "x-config:\n"
    assert text.count(enum) == 1 and text.count(anchor) == 1
    text = text.replace(enum, enum[:-1] + ", mistral]").replace(anchor, NEW_PROVIDER + anchor)
    path.write_text(text, encoding="utf-8")


def test_new_provider_is_derived_everywhere(
    tmp_path: Path, load_generated: Callable[[Path], ModuleType]
) -> None:
    spec, out = tmp_path / "openapi.yaml", tmp_path / "out"
    _spec_with_new_provider(spec)
    assert main(["--spec", str(spec), "--out", str(out)]) == 0

    settings = load_generated(out / "generated" / "settings.py")
    specs = {s.env: s for s in settings.SETTINGS}
    assert specs["MISTRAL_API_URL"].default == "https://api.mistral.test/{region}"
    assert specs["MISTRAL_API_KEY"].secret and specs["MISTRAL_API_KEY"].default is None
    assert specs["MISTRAL_REGION"].type == "string" and not specs["MISTRAL_REGION"].secret
    configured = settings.Settings.from_env({"MISTRAL_API_KEY": "k", "MISTRAL_REGION": "eu"})
    assert configured.provider_key("mistral") == "k"
    assert configured.provider_url("mistral") == "https://api.mistral.test/eu"

    providers = load_generated(out / "generated" / "providers.py")
    entry = providers.PROVIDERS["mistral"]
    assert list(providers.PROVIDERS)[-1] == "mistral"
    assert (entry.api_url_env, entry.api_key_env, entry.auth_name) == (
        "MISTRAL_API_URL", "MISTRAL_API_KEY", "Authorization")
    assert [(p.name, p.env) for p in entry.url_params] == [("region", "MISTRAL_REGION")]

    secret = yaml.safe_load((out / "deploy/kubernetes/secret.yaml").read_text(encoding="utf-8"))
    config = yaml.safe_load((out / "deploy/kubernetes/configmap.yaml").read_text(encoding="utf-8"))
    assert secret["stringData"]["MISTRAL_API_KEY"] == ""
    assert config["data"]["MISTRAL_API_URL"] == "https://api.mistral.test/{region}"
    for name in ("docs/configuration.md", ".env.example"):
        text = (out / name).read_text(encoding="utf-8")
        assert all(env in text for env in ("MISTRAL_API_URL", "MISTRAL_API_KEY", "MISTRAL_REGION"))
