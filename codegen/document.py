"""Typed views of a validated spec: its providers and its settings, templates expanded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codegen.setting_values import SettingSpec

PROVIDERS_SECTION = "providers"  # the x-config section that is a per-provider template
PROVIDER_PLACEHOLDER = "{PROVIDER}"
URL_SETTING = "api_url"  # template settings whose meaning the generator knows
KEY_SETTING = "api_key"
PROVIDER_CONFIGS_PATH = ("components", "schemas", "Providers", "x-provider-configs")


@dataclass(frozen=True)
class PagingDef:
    """How a list endpoint pages (see generated/providers.py `Paging`)."""

    cursor_param: str | None
    next_cursor: str | None
    has_more: str | None
    page_param: str | None


@dataclass(frozen=True)
class EndpointDef:
    """One upstream endpoint of a provider."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    paging: PagingDef | None


@dataclass(frozen=True)
class UrlParamDef:
    """A `{name}` placeholder in a provider's base URL and the variable that fills it."""

    name: str
    env: str
    description: str


@dataclass(frozen=True)
class ProviderDef:
    """One entry of `x-provider-configs`, with the names of its derived variables."""

    id: str
    name: str
    url: str
    auth_type: str
    auth_name: str | None
    extra_headers: tuple[tuple[str, str], ...]
    dialect: str
    list: EndpointDef
    generate: EndpointDef
    stream: EndpointDef | None
    url_params: tuple[UrlParamDef, ...]
    api_url_env: str
    api_key_env: str


@dataclass(frozen=True)
class SectionDef:
    """A group of settings, as titled in the spec."""

    name: str
    title: str
    description: str | None


@dataclass(frozen=True)
class Document:
    """Everything the renderers need from one spec file."""

    file_name: str
    version: str
    providers: tuple[ProviderDef, ...]
    sections: tuple[SectionDef, ...]
    settings: tuple[SettingSpec, ...]


def provider_configs(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The `x-provider-configs` mapping of a schema-valid document."""
    node: Any = raw
    for key in PROVIDER_CONFIGS_PATH:
        node = node[key]
    return dict(node)


def single_entries(items: list[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """The spec writes ordered maps as lists of one-key maps; this unpacks them in order."""
    return [next(iter(item.items())) for item in items]


def template_env(template: str, provider_id: str) -> str:
    """A provider's variable name from a `{PROVIDER}_...` template."""
    return template.replace(PROVIDER_PLACEHOLDER, provider_id.upper())


def _endpoint(node: Mapping[str, Any]) -> EndpointDef:
    paging = node.get("paging")
    return EndpointDef(
        method=node["method"],
        path=node["endpoint"],
        query=tuple((str(k), str(v)) for k, v in node.get("query", {}).items()),
        paging=None
        if paging is None
        else PagingDef(
            cursor_param=paging.get("cursor_param"),
            next_cursor=paging.get("next_cursor"),
            has_more=paging.get("has_more"),
            page_param=paging.get("page_param"),
        ),
    )


def _auth_name(node: Mapping[str, Any]) -> str | None:
    if node["auth_type"] == "none":
        return None
    if node["auth_type"] == "bearer":
        return str(node.get("auth_name", "Authorization"))
    return str(node["auth_name"])


def _provider(key: str, node: Mapping[str, Any], templates: Mapping[str, Any]) -> ProviderDef:
    endpoints = node["endpoints"]
    stream = endpoints.get("stream")
    return ProviderDef(
        id=key,
        name=node["name"],
        url=node["url"],
        auth_type=node["auth_type"],
        auth_name=_auth_name(node),
        extra_headers=tuple((str(k), str(v)) for k, v in node.get("extra_headers", {}).items()),
        dialect=node["dialect"],
        list=_endpoint(endpoints["list"]),
        generate=_endpoint(endpoints["generate"]),
        stream=None if stream is None else _endpoint(stream),
        url_params=tuple(
            UrlParamDef(name=name, env=param["env"], description=param["description"])
            for name, param in node.get("url_params", {}).items()
        ),
        api_url_env=template_env(templates[URL_SETTING]["env"], key),
        api_key_env=template_env(templates[KEY_SETTING]["env"], key),
    )


def _setting(env: str, node: Mapping[str, Any], section: str, **overrides: Any) -> SettingSpec:
    fields: dict[str, Any] = {
        "env": env,
        "field": env.lower(),
        "type": node["type"],
        "default": node.get("default"),
        "secret": bool(node.get("secret", False)),
        "description": " ".join(str(node["description"]).split()),
        "section": section,
        "choices": tuple(node.get("enum", ())),
        "minimum": None if node.get("minimum") is None else float(node["minimum"]),
        "maximum": None if node.get("maximum") is None else float(node["maximum"]),
    }
    fields.update(overrides)
    return SettingSpec(**fields)


def _provider_settings(
    providers: tuple[ProviderDef, ...], templates: Mapping[str, Any]
) -> list[SettingSpec]:
    settings: list[SettingSpec] = []
    for provider in providers:
        for key, node in templates.items():
            default = provider.url if key == URL_SETTING else node.get("default")
            description = f"{provider.name}: {' '.join(str(node['description']).split())}"
            env = template_env(node["env"], provider.id)
            settings.append(
                _setting(env, node, PROVIDERS_SECTION, default=default, description=description)
            )
        for param in provider.url_params:
            node = {"type": "string", "description": f"{provider.name}: {param.description}"}
            settings.append(_setting(param.env, node, PROVIDERS_SECTION))
    return settings


def read_document(raw: Mapping[str, Any], file_name: str) -> Document:
    """Build the typed view of a document that passed schema validation and cross-checks."""
    sections = single_entries(raw["x-config"]["sections"])
    templates = dict(single_entries(dict(sections)[PROVIDERS_SECTION]["settings"]))
    providers = tuple(_provider(k, v, templates) for k, v in provider_configs(raw).items())
    settings: list[SettingSpec] = []
    for name, section in sections:
        if name == PROVIDERS_SECTION:
            settings.extend(_provider_settings(providers, templates))
            continue
        for _, node in single_entries(section["settings"]):
            settings.append(_setting(node["env"], node, name))
    return Document(
        file_name=file_name,
        version=str(raw["info"]["version"]),
        providers=providers,
        sections=tuple(
            SectionDef(name=name, title=s["title"], description=s.get("description"))
            for name, s in sections
        ),
        settings=tuple(settings),
    )
