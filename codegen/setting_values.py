"""How setting values are read from the environment, shared with generated/settings.py.

The code between the RUNTIME markers is copied verbatim into `generated/settings.py` (which
must not import `codegen`), and the generator itself uses it to check the spec's defaults, so
both always agree on what a valid value is. It may use only the names imported here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

# BEGIN RUNTIME


class SettingsError(ValueError):
    """Raised by `Settings.from_env`; names every offending variable and why, never a secret."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("invalid settings:\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One environment variable: its settings field, type, default (as text) and limits."""

    env: str
    field: str
    type: str
    default: str | None
    secret: bool
    description: str
    section: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderFields:
    """The settings fields that configure one provider."""

    url: str
    key: str
    params: tuple[tuple[str, str], ...] = ()  # (url placeholder, field)


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_INTEGER = re.compile(r"[+-]?\d+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_bool(raw: str) -> bool:
    """true/false, 1/0, yes/no, on/off in any case."""
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("expected a boolean (true/false, 1/0, yes/no, on/off)")


def parse_int(raw: str) -> int:
    """A decimal integer."""
    if not _INTEGER.fullmatch(raw.strip()):
        raise ValueError("expected an integer")
    return int(raw)


def parse_float(raw: str) -> float:
    """A finite decimal number."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def parse_duration(raw: str) -> float:
    """Seconds from "30s", "1m30s", "250ms", "2h" (ns/us/ms/s/m/h) or a bare number of seconds."""
    text = raw.strip()
    try:
        bare = float(text)
    except ValueError:
        bare = None
    if bare is not None:
        if not math.isfinite(bare) or bare < 0:
            raise ValueError("expected a non-negative duration")
        return bare
    parts = _DURATION_PART.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise ValueError('expected a duration such as "30s", "1m30s", "250ms" or "2h"')
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_url(raw: str) -> str:
    """An absolute http(s) URL."""
    text = raw.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an absolute http:// or https:// URL")
    return text


def parse_text(raw: str) -> str:
    """Any text, kept as given."""
    return raw


def parse_list(raw: str) -> tuple[str, ...]:
    """Comma-separated items, trimmed; empty items are dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


PARSERS: Mapping[str, Callable[[str], object]] = {
    "string": parse_text,
    "path": parse_text,
    "url": parse_url,
    "bool": parse_bool,
    "int": parse_int,
    "float": parse_float,
    "duration": parse_duration,
    "list": parse_list,
}


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _limit_problems(spec: SettingSpec, value: object) -> list[str]:
    problems: list[str] = []
    items = value if isinstance(value, tuple) else (value,)
    if spec.choices:
        wrong = [str(item) for item in items if str(item) not in spec.choices]
        if wrong:
            shown = "" if spec.secret else f", got {', '.join(map(repr, wrong))}"
            problems.append(f"must be one of {', '.join(spec.choices)}{shown}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        unit = " seconds" if spec.type == "duration" else ""
        shown = "" if spec.secret else f", got {value}"
        if spec.minimum is not None and value < spec.minimum:
            problems.append(f"must be at least {_number(spec.minimum)}{unit}{shown}")
        if spec.maximum is not None and value > spec.maximum:
            problems.append(f"must be at most {_number(spec.maximum)}{unit}{shown}")
    return problems


def parse_setting(spec: SettingSpec, raw: str) -> object:
    """The typed value of `raw`; ValueError names the problem and, unless secret, the input."""
    try:
        value = PARSERS[spec.type](raw)
    except ValueError as exc:
        shown = "" if spec.secret else f", got {raw!r}"
        raise ValueError(f"{exc}{shown}") from None
    problems = _limit_problems(spec, value)
    if problems:
        raise ValueError("; ".join(problems))
    return value


def read_environment(specs: Sequence[SettingSpec], environ: Mapping[str, str]) -> dict[str, object]:
    """Typed values for every variable set (non-empty) in `environ`; unknown ones are ignored."""
    values: dict[str, object] = {}
    problems: list[str] = []
    for spec in specs:
        raw = environ.get(spec.env, "")
        if raw == "":
            continue
        try:
            values[spec.field] = parse_setting(spec, raw)
        except ValueError as exc:
            problems.append(f"{spec.env}: {exc}")
    if problems:
        raise SettingsError(problems)
    return values


def fill_url_params(url: str, params: Mapping[str, str | None]) -> str:
    """`url` with each known `{name}` placeholder replaced by its percent-encoded value."""
    for name, value in params.items():
        if value is not None:
            url = url.replace("{" + name + "}", quote(value, safe=""))
    return url


# END RUNTIME


def runtime_source() -> str:
    """The source between the RUNTIME markers of this module, as copied into generated code."""
    with open(__file__, encoding="utf-8") as handle:
        text = handle.read()
    start = text.index("# BEGIN RUNTIME\n") + len("# BEGIN RUNTIME\n")
    return text[start : text.index("# END RUNTIME\n")].strip("\n") + "\n"
