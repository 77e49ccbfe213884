"""The generated Kubernetes manifests and .env.example agree with the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from generated.settings import SETTINGS
from tests.codegen.conftest import REPO_ROOT

KUBE = REPO_ROOT / "deploy" / "kubernetes"


def _load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((KUBE / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_configmap_holds_plain_defaults_and_secret_holds_empty_secrets() -> None:
    data, secrets = _load("configmap.yaml")["data"], _load("secret.yaml")["stringData"]
    assert data == {s.env: s.default for s in SETTINGS if not s.secret and s.default is not None}
    assert secrets == {s.env: "" for s in SETTINGS if s.secret}


def test_deployment_runs_the_gateway_with_probes_as_non_root() -> None:
    deployment, service = _load("deployment.yaml"), _load("service.yaml")
    configmap, secret = _load("configmap.yaml"), _load("secret.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    port = int(configmap["data"]["SERVER_PORT"])
    assert container["command"] == ["python", "-m", "gateway"]
    assert container["ports"][0]["containerPort"] == port
    assert service["spec"]["ports"][0]["port"] == port
    refs = [next(iter(source.values()))["name"] for source in container["envFrom"]]
    assert refs == [configmap["metadata"]["name"], secret["metadata"]["name"]]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(container["resources"]) == {"requests", "limits"}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_env_example_lists_every_variable_with_secrets_empty() -> None:
    lines = (REPO_ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    assignments = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert list(assignments) == [s.env for s in SETTINGS]
    for spec in SETTINGS:
        if spec.secret or spec.default is None:
            assert assignments[spec.env] == "", spec.env


def test_configuration_doc_has_a_row_per_variable() -> None:
    text = Path(REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [s.env for s in SETTINGS]
    secret_column = {row.split("`")[1]: row.split(" | ")[3] for row in rows}
    assert secret_column == {s.env: "yes" if s.secret else "no" for s in SETTINGS}
