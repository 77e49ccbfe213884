"""A malformed spec exits 2 with `<file>: <json path>: <problem>` lines and no traceback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from codegen.__main__ import main
from tests.codegen.conftest import SPEC, run_cli

CONFIGS = "components.schemas.Providers.x-provider-configs"


def replace_once(old: str, new: str) -> Callable[[str], str]:
    """An edit of the spec text that must apply exactly once, so a stale case fails loudly."""

    def edit(text: str) -> str:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        return text.replace(old, new)

    return edit


@dataclass(frozen=True)
class Case:
    """One broken spec and the message lines it must produce."""

    id: str
    edit: Callable[[str], str]
    expected: tuple[str, ...]


CASES = [
    Case("bad auth_type",
         replace_once("auth_type: xheader", "auth_type: token"),
         (f"{CONFIGS}.anthropic.auth_type: 'token' is not one of "
          "['bearer', 'xheader', 'query', 'none']",)),
    Case("missing url",
         replace_once("          url: https://api.groq.com\n", ""),
         (f"{CONFIGS}.groq: 'url' is a required property",)),
    Case("enum/config mismatch",
         replace_once("cloudflare, cohere, anthropic]", "cloudflare, cohere, mistral]"),
         ("components.schemas.Providers.enum: 'mistral' has no entry in x-provider-configs",
          f"{CONFIGS}.anthropic: 'anthropic' is not in the Providers enum")),
    Case("config id differs from its key",
         replace_once("id: cohere", "id: kohere"),
         (f"{CONFIGS}.cohere.id: 'kohere' does not match its key 'cohere'",)),
    Case("unknown dialect",
         replace_once("dialect: cohere\n", "dialect: coherent\n"),
         (f"{CONFIGS}.cohere.dialect: 'coherent' is not one of ['openai', 'anthropic', "
          "'gemini', 'cohere', 'ollama', 'cloudflare']",)),
    Case("url placeholder without url_params",
         replace_once("url: https://api.cohere.com", "url: https://api.cohere.com/{region}"),
         (f"{CONFIGS}.cohere.url: placeholder {{region}} has no url_params entry",)),
    Case("endpoint placeholder other than model",
         replace_once("endpoint: /v2/chat", "endpoint: /v2/{chat}"),
         (f"{CONFIGS}.cohere.endpoints.generate.endpoint: placeholder {{chat}} is not one of "
          "{model}, {model+}",)),
    Case("xheader without auth_name",
         replace_once("          auth_name: x-api-key\n", ""),
         (f"{CONFIGS}.anthropic: 'auth_name' is a required property",)),
    Case("default that does not parse",
         replace_once('default: "8080"', 'default: "80x"'),
         ("x-config.sections.2.server.settings.1.port.default: expected an integer, got '80x'",)),
    Case("unknown setting type",
         replace_once("type: duration\n              default: 5s\n              description: How "
                      "long to wait for a connection",
                      "type: seconds\n              default: 5s\n              description: How "
                      "long to wait for a connection"),
         ("x-config.sections.3.client.settings.0.connect_timeout.type: 'seconds' is not one of "
          "['string', 'bool', 'int', 'float', 'duration', 'url', 'path', 'list']",)),
    Case("two settings with one variable",
         replace_once("env: CLIENT_LIST_TIMEOUT", "env: CLIENT_READ_TIMEOUT"),
         ("x-config.sections.3.client.settings.4.list_timeout.env: CLIENT_READ_TIMEOUT is "
          "already defined at x-config.sections.3.client.settings.1.read_timeout.env",)),
    Case("invalid OpenAPI",
         replace_once("          description: The process is up.\n", ""),
         ("paths./health.get.responses.200: 'description' is a required property",)),
    Case("dangling $ref",
         replace_once('$ref: "#/components/schemas/ProviderError"',
                      '$ref: "#/components/schemas/Nope"'),
         ("components.schemas.ListModelsResponse.properties.error.$ref: "
          "$ref '/components/schemas/Nope' cannot be resolved",)),
    Case("not OpenAPI 3.1",
         replace_once("openapi: 3.1.0", "openapi: 3.0.3"),
         ("openapi: expected an OpenAPI 3.1 document, got '3.0.3'",)),
    Case("YAML syntax error",
         replace_once("  /health:\n    get:\n", "  /health:\n    get: [\n"),
         ("YAML syntax error",)),
    Case("duplicate YAML key",
         replace_once("  version: 1.0.0\n", "  version: 1.0.0\n  version: 2.0.0\n"),
         ("YAML syntax error: duplicate key 'version'",)),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_spec_exits_2_naming_path_and_problem(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, out = tmp_path / "openapi.yaml", tmp_path / "out"
    spec.write_text(case.edit(SPEC.read_text(encoding="utf-8")), encoding="utf-8")
    assert main(["--spec", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines and all(line.startswith(f"{spec}") for line in lines), err
    for expected in case.expected:
        assert any(expected in line for line in lines), f"{expected!r} not in:\n{err}"
    assert not out.exists()


def test_yaml_error_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "openapi.yaml"
    spec.write_text("openapi: 3.1.0\ninfo: {title: x\npaths: {}\n", encoding="utf-8")
    assert main(["--spec", str(spec)]) == 2
    assert capsys.readouterr().err.startswith(f"{spec}:3:")


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["--spec", str(missing)]) == 2
    expected = f"{missing}: cannot read the spec: No such file or directory\n"
    assert capsys.readouterr().err == expected


def test_every_problem_is_reported_not_just_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "openapi.yaml"
    spec.write_text(SPEC.read_text(encoding="utf-8").replace("auth_type: bearer", "auth_type: x"),
                    encoding="utf-8")
    assert main(["--spec", str(spec)]) == 2
    lines = capsys.readouterr().err.splitlines()
    bearer_providers = ["groq", "openai", "cloudflare", "cohere"]  # in spec order
    assert lines == [f"{spec}: {CONFIGS}.{p}.auth_type: 'x' is not one of "
                     "['bearer', 'xheader', 'query', 'none']" for p in bearer_providers]


@pytest.mark.parametrize("text", ["openapi: [3.1\n", "components:\n  schemas: {}\n"])
def test_real_process_exits_2_without_traceback(tmp_path: Path, text: str) -> None:
    spec = tmp_path / "openapi.yaml"
    spec.write_text(text, encoding="utf-8")
    result = run_cli("--spec", str(spec), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith(str(spec))
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_real_process_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("--spec", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "cannot read the spec" in result.stderr
    assert "Traceback" not in result.stderr
