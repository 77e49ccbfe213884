"""generated/providers.py: the provider registry from `x-provider-configs`."""

from __future__ import annotations

from pathlib import Path
from string import Template

from codegen.document import Document, EndpointDef, PagingDef, ProviderDef
from codegen.pysource import Atom, Call, Dict, Expr, Tuple, literal, render, string

TEMPLATE = Path(__file__).with_name("templates") / "providers.py.tmpl"


def _mapping(pairs: tuple[tuple[str, str], ...]) -> Call:
    return Call("MappingProxyType", [(None, Dict([(string(k), string(v)) for k, v in pairs]))])


def _paging(paging: PagingDef) -> Call:
    fields = ("cursor_param", "next_cursor", "has_more", "page_param")
    values = [(name, getattr(paging, name)) for name in fields]
    return Call("Paging", [(name, string(value)) for name, value in values if value is not None])


def _endpoint(endpoint: EndpointDef | None) -> Expr:
    if endpoint is None:
        return Atom("None")
    args: list[tuple[str | None, Expr]] = [
        ("method", string(endpoint.method)),
        ("path", string(endpoint.path)),
        ("query", _mapping(endpoint.query)),
    ]
    if endpoint.paging is not None:
        args.append(("paging", _paging(endpoint.paging)))
    return Call("Endpoint", args)


def _provider(provider: ProviderDef) -> Call:
    params = [
        Call("UrlParam", [("name", string(p.name)), ("env", string(p.env)),
                          ("description", string(p.description))])
        for p in provider.url_params
    ]
    return Call("ProviderConfig", [
        ("id", string(provider.id)),
        ("name", string(provider.name)),
        ("url", string(provider.url)),
        ("auth_type", string(provider.auth_type)),
        ("auth_name", literal(provider.auth_name)),
        ("extra_headers", _mapping(provider.extra_headers)),
        ("dialect", string(provider.dialect)),
        ("list", _endpoint(provider.list)),
        ("generate", _endpoint(provider.generate)),
        ("stream", _endpoint(provider.stream)),
        ("url_params", Tuple(params)),
        ("api_url_env", string(provider.api_url_env)),
        ("api_key_env", string(provider.api_key_env)),
    ])


def render_providers(document: Document, notice: str) -> str:
    """The source of generated/providers.py."""
    registry = Call("MappingProxyType", [
        (None, Dict([(string(p.id), _provider(p)) for p in document.providers])),
    ])
    providers = render(registry, prefix="PROVIDERS: Mapping[str, ProviderConfig] = ")
    text = Template(TEMPLATE.read_text(encoding="utf-8"))
    return text.substitute(notice=notice, providers=providers)
