"""deploy/kubernetes/: ConfigMap, Secret, Deployment and Service manifests from the settings."""

from __future__ import annotations

import json
from pathlib import Path
from string import Template

from codegen.document import Document
from codegen.setting_values import SettingSpec, parse_duration, parse_int

TEMPLATES = Path(__file__).with_name("templates")
APP = "llm-gateway"
PORT_ENV = "SERVER_PORT"  # the container port is this setting's default
FALLBACK_PORT = 8080
# Kubernetes must wait for the drain delay plus the grace period before it kills the pod.
SHUTDOWN_ENVS = ("SHUTDOWN_DRAIN_DELAY", "SHUTDOWN_GRACE_PERIOD")
FALLBACK_TERMINATION_GRACE = 30
TERMINATION_MARGIN = 5


def _substitute(name: str, **values: str) -> str:
    text = Template((TEMPLATES / f"{name}.yaml.tmpl").read_text(encoding="utf-8"))
    return text.substitute(app=APP, **values)


def _entry(spec: SettingSpec, value: str | None) -> list[str]:
    # JSON strings are valid YAML double-quoted scalars, and ConfigMap values must be strings.
    line = f"  {spec.env}: {json.dumps(value if value is not None else '', ensure_ascii=False)}"
    return [f"  # {spec.description}", line if value is not None else f"  # {line.strip()}"]


def _port(document: Document) -> int:
    for spec in document.settings:
        if spec.env == PORT_ENV and spec.default is not None:
            return parse_int(spec.default)
    return FALLBACK_PORT


def _termination_grace(document: Document) -> int:
    shutdown = [parse_duration(spec.default) for spec in document.settings
                if spec.env in SHUTDOWN_ENVS and spec.default is not None]
    if not shutdown:
        return FALLBACK_TERMINATION_GRACE
    return max(FALLBACK_TERMINATION_GRACE, round(sum(shutdown)) + TERMINATION_MARGIN)


def render_manifests(document: Document, notice: str) -> dict[str, str]:
    """The manifests by file name."""
    plain: list[str] = []
    secret: list[str] = []
    for spec in document.settings:
        if spec.secret:
            secret += _entry(spec, "")
        else:
            plain += _entry(spec, spec.default)
    port = str(_port(document))
    plain, secret = plain or ["  {}"], secret or ["  {}"]
    return {
        "configmap.yaml": _substitute("configmap", notice=notice, entries="\n".join(plain)),
        "secret.yaml": _substitute("secret", notice=notice, entries="\n".join(secret)),
        "deployment.yaml": _substitute(
            "deployment", notice=notice, port=port, version=document.version,
            termination_grace=str(_termination_grace(document)),
        ),
        "service.yaml": _substitute("service", notice=notice, port=port),
    }
