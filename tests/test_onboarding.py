"""Spec-only onboarding: an OpenAI-compatible provider added by editing the spec, no Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from tests.gateway.test_server import gateway_process
from tests.simulators.base import ProviderSimulator

ROOT = Path(__file__).resolve().parents[1]

MISTRAL = {
    "id": "mistral",
    "name": "Mistral",
    "url": "https://api.mistral.ai",
    "auth_type": "bearer",
    "dialect": "openai",
    "endpoints": {
        "list": {"method": "GET", "endpoint": "/v1/models"},
        "generate": {"method": "POST", "endpoint": "/v1/chat/completions"},
    },
}


def test_a_provider_added_to_the_spec_works_after_regenerating(
        tmp_path: Path, openai_sim: ProviderSimulator) -> None:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    providers = spec["components"]["schemas"]["Providers"]
    providers["enum"].append("mistral")
    providers["x-provider-configs"]["mistral"] = MISTRAL
    spec_path = tmp_path / "openapi.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))

    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "codegen", "--spec", str(spec_path),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "MISTRAL_API_KEY" in (out / "docs" / "configuration.md").read_text()
    assert "MISTRAL_API_KEY" in (out / ".env.example").read_text()
    assert "MISTRAL_API_URL" in (out / "deploy" / "kubernetes" / "configmap.yaml").read_text()

    # The regenerated package shadows the checked-in one; the gateway code is unchanged.
    env = {"MISTRAL_API_URL": openai_sim.url, "MISTRAL_API_KEY": openai_sim.api_key or ""}
    with gateway_process(env, pythonpath=f"{out}:{ROOT}", cwd=out) as url:
        listed = httpx.get(f"{url}/llms/mistral", timeout=10)
        assert listed.status_code == 200, listed.text
        assert listed.json()["provider"] == "mistral" and listed.json()["models"]
        r = httpx.post(f"{url}/llms/mistral/generate", timeout=10, json={
            "model": "mistral-small-latest", "messages": [{"role": "user", "content": "Hi"}]})
        assert r.status_code == 200, r.text
        assert r.json()["provider"] == "mistral"
        assert r.json()["response"]["content"]
        assert {e["provider"] for e in httpx.get(f"{url}/llms", timeout=15).json()} >= {"mistral"}
    sent = next(q for q in openai_sim.requests if q.method == "POST")
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {openai_sim.api_key}"
    assert sent.json["model"] == "mistral-small-latest"
