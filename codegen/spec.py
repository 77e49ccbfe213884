"""Loading and validating the spec: YAML, OpenAPI 3.1, the extension schema, then cross-checks.

Every problem becomes one line `<file>: <json.path>: <what is wrong>`; nothing here lets an
exception escape as a traceback for a malformed document.
"""

from __future__ import annotations

import json
import keyword
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from codegen.document import (
    KEY_SETTING,
    PROVIDER_CONFIGS_PATH,
    PROVIDER_PLACEHOLDER,
    PROVIDERS_SECTION,
    URL_SETTING,
    provider_configs,
    single_entries,
    template_env,
)
from codegen.setting_values import SettingSpec, parse_setting

EXTENSION_SCHEMA = Path(__file__).with_name("extensions.schema.json")
ENDPOINT_PLACEHOLDERS = ("{model}", "{model+}")
RESERVED_FIELDS = frozenset({"from_env", "provider_url", "provider_key", "provider_url_params"})
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_CONFIGS = ".".join(PROVIDER_CONFIGS_PATH)
_NUMERIC_TYPES = ("int", "float", "duration")
_TEXT_TYPES = ("string", "url", "path", "list")


class SpecError(Exception):
    """A spec that cannot be generated from; `problems` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys instead of silently keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def json_path(parts: Iterable[object]) -> str:
    """A dotted path such as `components.schemas.Providers.enum`."""
    return ".".join(str(part) for part in parts)


def _problem(display: str, path: str, message: str) -> str:
    return f"{display}: {path}: {message}" if path else f"{display}: {message}"


def read_yaml(path: Path, display: str) -> dict[str, Any]:
    """Parse the file; a missing file, bad YAML or a non-mapping top level is a SpecError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError([f"{display}: cannot read the spec: {reason}"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{display}:{mark.line + 1}:{mark.column + 1}" if mark else display
        raise SpecError([f"{where}: YAML syntax error: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{display}: YAML syntax error: {exc}"]) from None
    if not isinstance(data, dict):
        raise SpecError([f"{display}: the top level must be a mapping"])
    return data


def _openapi_problems(doc: Mapping[str, Any], display: str) -> list[str]:
    version = doc.get("openapi")
    if not isinstance(version, str) or not version.startswith("3.1."):
        return [_problem(display, "openapi", f"expected an OpenAPI 3.1 document, got {version!r}")]
    problems: list[str] = []
    # The pure-Python backend: its messages are one line each and do not depend on whether
    # the optional Rust backend happens to be installed (schemathesis brings it in).
    os.environ.setdefault("OPENAPI_SPEC_VALIDATOR_SCHEMA_VALIDATOR_BACKEND", "jsonschema")
    try:
        errors = [(tuple(getattr(e, "absolute_path", ())), str(getattr(e, "message", e)))
                  for e in OpenAPIV31SpecValidator(doc).iter_errors()]
        for path, message in sorted(errors, key=lambda e: (_document_order(doc, e[0]), e[1])):
            problems.append(_problem(display, json_path(path), message))
    except Exception as exc:  # the validator raises on unresolvable $refs
        ref = getattr(exc, "ref", None)
        if isinstance(ref, str):
            where = _find_ref(doc, ref if ref.startswith("#") else f"#{ref}", ())
            message = f"$ref {ref!r} cannot be resolved"
            problems.append(_problem(display, json_path(where or ()), message))
        else:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            problems.append(_problem(display, "", reason))
    return problems


def _find_ref(node: object, ref: str, path: tuple[object, ...]) -> tuple[object, ...] | None:
    """The path of the first `$ref: ref` in document order, to point at a dangling reference."""
    if isinstance(node, dict):
        if node.get("$ref") == ref:
            return (*path, "$ref")
        children: Iterable[tuple[object, object]] = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    else:
        return None
    for key, child in children:
        found = _find_ref(child, ref, (*path, key))
        if found is not None:
            return found
    return None


def _document_order(doc: Mapping[str, Any], path: Iterable[object]) -> tuple[int, ...]:
    """A sort key placing a path where it appears in the document (jsonschema's order is not)."""
    key: list[int] = []
    node: Any = doc
    for part in path:
        if isinstance(node, dict) and part in node:
            key.append(list(node).index(part))
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            key.append(part)
        else:
            key.append(-1)
            break
        node = node[part]
    return tuple(key)


def _extension_problems(doc: Mapping[str, Any], display: str) -> list[str]:
    schema = json.loads(EXTENSION_SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(Draft202012Validator(schema).iter_errors(doc),
                    key=lambda e: (_document_order(doc, e.absolute_path), e.message))
    return [_problem(display, json_path(e.absolute_path), e.message) for e in errors]


def _enum(doc: Mapping[str, Any], name: str) -> list[str]:
    return list(doc["components"]["schemas"][name]["enum"])


def _provider_problems(doc: Mapping[str, Any]) -> list[str]:
    configs = provider_configs(doc)
    problems: list[str] = []
    enum = _enum(doc, "Providers")
    enum_path = "components.schemas.Providers.enum"
    problems += [f"{enum_path}: {p!r} has no entry in x-provider-configs" for p in enum
                 if p not in configs]
    problems += [f"{_CONFIGS}.{key}: {key!r} is not in the Providers enum" for key in configs
                 if key not in enum]
    if set(enum) == set(configs) and enum != list(configs):
        problems.append(
            f"{enum_path}: order {enum} differs from x-provider-configs {list(configs)}"
        )
    dialects = _enum(doc, "Dialect")
    for key, config in configs.items():
        path = f"{_CONFIGS}.{key}"
        if config["id"] != key:
            problems.append(f"{path}.id: {config['id']!r} does not match its key {key!r}")
        if config["dialect"] not in dialects:
            problems.append(f"{path}.dialect: {config['dialect']!r} is not one of {dialects}")
        problems += _url_problems(path, config)
        for kind, endpoint in config["endpoints"].items():
            for placeholder in _PLACEHOLDER.findall(endpoint["endpoint"]):
                if placeholder not in ENDPOINT_PLACEHOLDERS:
                    problems.append(f"{path}.endpoints.{kind}.endpoint: placeholder {placeholder} "
                                    f"is not one of {', '.join(ENDPOINT_PLACEHOLDERS)}")
    return problems


def _url_problems(path: str, config: Mapping[str, Any]) -> list[str]:
    used = [p[1:-1] for p in _PLACEHOLDER.findall(config["url"])]
    declared = config.get("url_params", {})
    problems = [f"{path}.url: placeholder {{{name}}} has no url_params entry" for name in used
                if name not in declared]
    problems += [f"{path}.url_params.{name}: {{{name}}} does not appear in url" for name in declared
                 if name not in used]
    return problems


def _settings_entries(doc: Mapping[str, Any]) -> list[tuple[str, str, str, Mapping[str, Any]]]:
    """(section, setting key, json path, node) for every setting as written in the spec."""
    entries = []
    for index, (section, body) in enumerate(single_entries(doc["x-config"]["sections"])):
        for position, (key, node) in enumerate(single_entries(body["settings"])):
            path = f"x-config.sections.{index}.{section}.settings.{position}.{key}"
            entries.append((section, key, path, node))
    return entries


def _setting_problems(section: str, key: str, path: str, node: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    templated = node["env"].startswith(PROVIDER_PLACEHOLDER)
    if section == PROVIDERS_SECTION and not templated:
        problems.append(f"{path}.env: settings of the providers section must start with "
                        f"{PROVIDER_PLACEHOLDER}_")
    if section != PROVIDERS_SECTION and templated:
        problems.append(
            f"{path}.env: {PROVIDER_PLACEHOLDER} is only allowed in the providers section"
        )
    if "enum" in node and node["type"] not in _TEXT_TYPES:
        problems.append(f"{path}.enum: only {', '.join(_TEXT_TYPES)} settings take an enum")
    for limit in ("minimum", "maximum"):
        if limit in node and node["type"] not in _NUMERIC_TYPES:
            kinds = ", ".join(_NUMERIC_TYPES)
            problems.append(f"{path}.{limit}: only {kinds} settings take a {limit}")
    if node.get("minimum", -float("inf")) > node.get("maximum", float("inf")):
        problems.append(f"{path}: minimum is greater than maximum")
    if "default" in node and node.get("secret", False):
        problems.append(f"{path}.default: a secret setting cannot have a default")
    elif "default" in node:
        spec = _probe_spec(node)
        try:
            parse_setting(spec, node["default"])
        except ValueError as exc:
            problems.append(f"{path}.default: {exc}")
    return problems


def _probe_spec(node: Mapping[str, Any]) -> SettingSpec:
    return SettingSpec(
        env=node["env"], field="", type=node["type"], default=None, secret=False,
        description="", section="", choices=tuple(node.get("enum", ())),
        minimum=node.get("minimum"), maximum=node.get("maximum"),
    )


def _template_problems(entries: Sequence[tuple[str, str, str, Mapping[str, Any]]]) -> list[str]:
    templates = {key: (path, node) for section, key, path, node in entries
                 if section == PROVIDERS_SECTION}
    sections = {section for section, *_ in entries}
    if PROVIDERS_SECTION not in sections:
        return [f"x-config.sections: no {PROVIDERS_SECTION!r} section (the per-provider template)"]
    problems = [f"x-config.sections: the {PROVIDERS_SECTION} section has no {key!r} setting"
                for key in (URL_SETTING, KEY_SETTING) if key not in templates]
    if URL_SETTING in templates and templates[URL_SETTING][1]["type"] != "url":
        problems.append(f"{templates[URL_SETTING][0]}.type: {URL_SETTING} must be of type url")
    if KEY_SETTING in templates and not templates[KEY_SETTING][1].get("secret", False):
        problems.append(f"{templates[KEY_SETTING][0]}.secret: {KEY_SETTING} must be secret")
    return problems


def _env_names(doc: Mapping[str, Any], entries: Sequence[tuple[str, str, str, Mapping[str, Any]]]
               ) -> list[tuple[str, str]]:
    """(variable, json path of its env) for every variable, templates expanded per provider."""
    names: list[tuple[str, str]] = []
    configs = provider_configs(doc)
    for section, _, path, node in entries:
        if section != PROVIDERS_SECTION:
            names.append((node["env"], f"{path}.env"))
            continue
        names += [(template_env(node["env"], key), f"{path}.env") for key in configs]
    for key, config in configs.items():
        for name, param in config.get("url_params", {}).items():
            names.append((param["env"], f"{_CONFIGS}.{key}.url_params.{name}.env"))
    return names


def _name_problems(names: Sequence[tuple[str, str]]) -> list[str]:
    problems: list[str] = []
    first: dict[str, str] = {}
    for env, path in names:
        field = env.lower()
        if env in first:
            problems.append(f"{path}: {env} is already defined at {first[env]}")
            continue
        first[env] = path
        if field.startswith("model_") or field in RESERVED_FIELDS or keyword.iskeyword(field):
            problems.append(f"{path}: {env} would make the reserved settings field name {field!r}")
    return problems


def check_document(doc: Mapping[str, Any], display: str) -> None:
    """Raise SpecError listing every problem of a parsed document, in validation order."""
    problems = _openapi_problems(doc, display) + _extension_problems(doc, display)
    if not problems:
        entries = _settings_entries(doc)
        local = _provider_problems(doc) + _template_problems(entries)
        for entry in entries:
            local += _setting_problems(*entry)
        if not local:
            local = _name_problems(_env_names(doc, entries))
        problems = [f"{display}: {line}" for line in local]
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))


def load_spec(path: Path, display: str) -> dict[str, Any]:
    """Read and fully validate the spec at `path`; `display` names it in messages."""
    doc = read_yaml(path, display)
    check_document(doc, display)
    return doc
