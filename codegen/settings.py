"""generated/settings.py: the typed Settings class from `x-config`."""

from __future__ import annotations

from pathlib import Path
from string import Template

from codegen.document import Document
from codegen.pysource import Atom, Call, Dict, Expr, Tuple, literal, render, string
from codegen.setting_values import SettingSpec, parse_setting, runtime_source

TEMPLATE = Path(__file__).with_name("templates") / "settings.py.tmpl"
PYTHON_TYPES = {
    "string": "str",
    "path": "str",
    "url": "str",
    "bool": "bool",
    "int": "int",
    "float": "float",
    "duration": "float",
    "list": "tuple[str, ...]",
}


def _value(spec: SettingSpec, value: object) -> Expr:
    if isinstance(value, tuple):
        return Tuple([string(item) for item in value])
    return literal(value)


def field_line(spec: SettingSpec) -> str:
    """The Settings field declaration of one setting, default parsed at generation time."""
    if spec.secret and spec.type == "string":
        return f"    {spec.field}: pydantic.SecretStr | None = None"
    python_type = PYTHON_TYPES[spec.type]
    if spec.default is not None:
        value: Expr = _value(spec, parse_setting(spec, spec.default))
    elif spec.type == "list":
        value = Tuple([])
    else:
        value, python_type = Atom("None"), f"{python_type} | None"
    if spec.secret:  # a secret that is not a string stays typed but out of repr
        value = Call("pydantic.Field", [("default", value), ("repr", Atom("False"))])
    return render(value, 1, prefix=f"{spec.field}: {python_type} = ")


def _spec_call(spec: SettingSpec) -> Call:
    args: list[tuple[str | None, Expr]] = [
        ("env", string(spec.env)),
        ("field", string(spec.field)),
        ("type", string(spec.type)),
        ("default", literal(spec.default)),
        ("secret", literal(spec.secret)),
        ("description", string(spec.description)),
        ("section", string(spec.section)),
    ]
    if spec.choices:
        args.append(("choices", Tuple([string(choice) for choice in spec.choices])))
    if spec.minimum is not None:
        args.append(("minimum", literal(spec.minimum)))
    if spec.maximum is not None:
        args.append(("maximum", literal(spec.maximum)))
    return Call("SettingSpec", args)


def _provider_fields(document: Document) -> Expr:
    entries: list[tuple[Expr, Expr]] = []
    for provider in document.providers:
        pairs = [Tuple([string(p.name), string(p.env.lower())]) for p in provider.url_params]
        params = Tuple(pairs)
        fields = Call("ProviderFields", [
            ("url", string(provider.api_url_env.lower())),
            ("key", string(provider.api_key_env.lower())),
            ("params", params),
        ])
        entries.append((string(provider.id), fields))
    return Call("MappingProxyType", [(None, Dict(entries))])


def render_settings(document: Document, notice: str) -> str:
    """The source of generated/settings.py."""
    specs = Tuple([_spec_call(spec) for spec in document.settings])
    text = Template(TEMPLATE.read_text(encoding="utf-8"))
    return text.substitute(
        notice=notice,
        runtime=runtime_source().rstrip("\n"),
        settings=render(specs, prefix="SETTINGS: tuple[SettingSpec, ...] = "),
        provider_fields=render(
            _provider_fields(document), prefix="_PROVIDER_FIELDS: Mapping[str, ProviderFields] = "
        ),
        fields="\n".join(field_line(spec) for spec in document.settings),
    )
