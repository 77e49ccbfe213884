"""docs/configuration.md and .env.example: the settings reference for people."""

from __future__ import annotations

import re

from codegen.document import Document, SectionDef
from codegen.setting_values import SettingSpec

_DOTENV_PLAIN = re.compile(r"[A-Za-z0-9_./:,@+{}-]*")
_FORMATS = """\
## Value formats

- Every variable is optional; an empty value counts as unset, and unknown variables are ignored.
- **bool**: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case.
- **duration**: a number with units `h`, `m`, `s`, `ms`, `us`, `ns`, combined as in `1m30s`,
  or a bare number of seconds.
- **list**: comma-separated items; spaces around items are ignored.
- **url**: an absolute `http://` or `https://` URL.
- **secret**: never logged or shown in error messages; in Kubernetes it belongs in the Secret.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _number(value: float, unit: str) -> str:
    return (str(int(value)) if value == int(value) else str(value)) + unit


def type_label(spec: SettingSpec) -> str:
    """The type with its limits, such as `int, 0 to 65535` or `string, one of a, b`."""
    unit = "s" if spec.type == "duration" else ""
    if spec.minimum is not None and spec.maximum is not None:
        limits = f", {_number(spec.minimum, unit)} to {_number(spec.maximum, unit)}"
    elif spec.minimum is not None:
        limits = f", at least {_number(spec.minimum, unit)}"
    elif spec.maximum is not None:
        limits = f", at most {_number(spec.maximum, unit)}"
    else:
        limits = ""
    if spec.choices:
        limits += ", one of " + ", ".join(spec.choices)
    return spec.type + limits


def _table(specs: list[SettingSpec]) -> list[str]:
    lines = ["| Variable | Type | Default | Secret | Description |",
             "| --- | --- | --- | --- | --- |"]
    for spec in specs:
        default = "*unset*" if spec.default is None else f"`{_cell(spec.default)}`"
        secret = "yes" if spec.secret else "no"
        lines.append(f"| `{spec.env}` | {_cell(type_label(spec))} | {default} | {secret} "
                     f"| {_cell(spec.description)} |")
    return lines


def _section_specs(document: Document, section: SectionDef) -> list[SettingSpec]:
    return [spec for spec in document.settings if spec.section == section.name]


def render_configuration(document: Document, notice: str) -> str:
    """The Markdown reference of every environment variable, section by section."""
    lines = [f"<!-- {notice} -->", "", "# Configuration", "",
             "The gateway is configured only through environment variables. This page is generated",
             f"from `x-config` and `x-provider-configs` in `{document.file_name}`.", ""]
    for section in document.sections:
        lines += [f"## {section.title}", ""]
        if section.description:
            lines += [" ".join(section.description.split()), ""]
        lines += [*_table(_section_specs(document, section)), ""]
    return "\n".join(lines) + "\n" + _FORMATS


def _dotenv_value(value: str) -> str:
    if _DOTENV_PLAIN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_env_example(document: Document, notice: str) -> str:
    """Every variable with its description; defaults filled in, secrets and the rest empty."""
    lines = [f"# {notice}", "# Copy to .env and fill in what you need; empty means unset.", ""]
    for section in document.sections:
        lines += [f"# --- {section.title} ---", ""]
        for spec in _section_specs(document, section):
            kind = f"{type_label(spec)}, secret" if spec.secret else type_label(spec)
            lines.append(f"# {spec.description} [{kind}]")
            value = "" if spec.secret or spec.default is None else _dotenv_value(spec.default)
            lines += [f"{spec.env}={value}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
