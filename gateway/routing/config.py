"""The routing file: the built-in `routing.yaml` with the user's ROUTING_FILE merged over it.

Loading validates the merged document against `ROUTING_SCHEMA`, then checks every reference
(models, providers, presets, dialects). Every problem names the file that holds the offending
entry and its path, such as `routing.yaml: aliases.fast[2]: unknown model 'gpt-5x'`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from gateway.dialects import DIALECTS
from gateway.routing.schema import ROUTING_SCHEMA
from generated.providers import PROVIDERS

BUILTIN_ROUTING_FILE = Path(__file__).resolve().parents[2] / "routing.yaml"
AUTO = "auto"
LIMIT_KINDS = ("rpm", "rpd", "tpm", "tpd")


class RoutingConfigError(ValueError):
    """The routing files are invalid; `problems` names each offending entry."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid routing configuration:\n" +
                         "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """A canonical model name and each provider's own id for it, in the file's order."""

    name: str
    providers: Mapping[str, str]
    first_party: str | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    """Per-provider limits; None means unlimited."""

    rpm: int | None = None
    rpd: int | None = None
    tpm: int | None = None
    tpd: int | None = None

    def limits(self) -> dict[str, int]:
        """The limits that are set, by kind."""
        values = {"rpm": self.rpm, "rpd": self.rpd, "tpm": self.tpm, "tpd": self.tpd}
        return {kind: value for kind, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class LocalServer:
    """A server that may run on this machine; `url` is None for a spec provider (Ollama)."""

    id: str
    probe: str
    name: str | None = None
    url: str | None = None
    generate: str | None = None
    dialect: str | None = None


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """The validated routing configuration."""

    models: Mapping[str, CatalogModel] = field(default_factory=dict)
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    auto: tuple[str, ...] = ()
    overrides: Mapping[str, str] = field(default_factory=dict)
    budgets: Mapping[str, Budget] = field(default_factory=dict)
    local_servers: Mapping[str, LocalServer] = field(default_factory=dict)


def merge(base: Any, over: Any) -> Any:
    """`over` merged into `base`: mappings key by key, `None` deletes, anything else replaces."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    merged = dict(base)
    for key, value in over.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge(merged.get(key), value)
    return merged


def format_path(parts: Iterable[str | int]) -> str:
    """`['aliases', 'fast', 2]` → `aliases.fast[2]`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _read(path: Path, label: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RoutingConfigError([f"{label}: cannot be read ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RoutingConfigError([f"{label}: not valid YAML{where}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RoutingConfigError([f"{label}: expected a mapping at the top level"])
    return data


class _Origins:
    """Which file an entry of the merged document comes from, for error messages."""

    def __init__(self, builtin: str, user: tuple[str, dict[str, Any]] | None) -> None:
        self.builtin = builtin
        self.user = user

    def label(self, parts: Sequence[str | int]) -> str:
        """The user's file if it holds the entry at `parts`, else the built-in one."""
        if self.user is None:
            return self.builtin
        node: Any = self.user[1]
        for part in parts:
            inside = (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node))
            if inside:
                node = node[part]
            elif not isinstance(node, dict | list):
                break
            else:
                return self.builtin
        return self.user[0]

    def problem(self, parts: Sequence[str | int], message: str) -> str:
        """`file: path: message`."""
        return f"{self.label(parts)}: {format_path(parts)}: {message}"


def load_routing(user_file: str | Path | None = None, *,
                 builtin: Path = BUILTIN_ROUTING_FILE,
                 known_providers: Iterable[str] = PROVIDERS) -> RoutingConfig:
    """The built-in routing file with `user_file` merged over it, validated."""
    builtin_label = builtin.name
    document = _read(builtin, builtin_label)
    user: tuple[str, dict[str, Any]] | None = None
    if user_file is not None:
        user_label = str(user_file)
        user = (user_label, _read(Path(user_file), user_label))
        document = merge(document, user[1])
    origins = _Origins(builtin_label, user)
    validator = jsonschema.Draft202012Validator(ROUTING_SCHEMA)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    if errors:
        raise RoutingConfigError([origins.problem(list(e.absolute_path), e.message)
                                  for e in errors])
    return _build(document, origins, set(known_providers))


def _build(doc: dict[str, Any], origins: _Origins, spec_providers: set[str]) -> RoutingConfig:
    problems: list[str] = []
    local_servers = _local_servers(doc.get("local_servers", {}), origins, spec_providers,
                                   problems)
    providers = spec_providers | set(local_servers)
    models = _models(doc["models"], origins, providers, problems)
    check = _NameCheck(models, providers, origins, problems)
    aliases = {name: tuple(entries) for name, entries in doc.get("aliases", {}).items()}
    for name, entries in aliases.items():
        if name in models or name == AUTO:
            problems.append(origins.problem(["aliases", name],
                                            f"alias '{name}' hides the model of that name"))
        for i, entry in enumerate(entries):
            check.target(["aliases", name, i], entry, allow_alias=False)
    auto = tuple(doc.get("auto", []))
    for i, entry in enumerate(auto):
        if entry not in models:
            problems.append(origins.problem(["auto", i], f"unknown model '{entry}'"))
    overrides = dict(doc.get("overrides", {}))
    check.aliases = set(aliases)
    for name, target in overrides.items():
        check.target(["overrides", name], target, allow_alias=True)
    budgets = _budgets(doc.get("budgets", {}), doc.get("budget_presets", {}), origins,
                       providers, problems)
    if problems:
        raise RoutingConfigError(problems)
    return RoutingConfig(models=MappingProxyType(models), aliases=MappingProxyType(aliases),
                         auto=auto, overrides=MappingProxyType(overrides),
                         budgets=MappingProxyType(budgets),
                         local_servers=MappingProxyType(local_servers))


@dataclass(slots=True)
class _NameCheck:
    """Checks that a name a request could use (in an alias or override) resolves."""

    models: Mapping[str, CatalogModel]
    providers: set[str]
    origins: _Origins
    problems: list[str]
    aliases: set[str] = field(default_factory=set)

    def target(self, where: list[str | int], name: str, *, allow_alias: bool) -> None:
        """Record a problem unless `name` is a model, `provider/model` (or alias, auto)."""
        prefix, slash, model = name.partition("/")
        if slash:
            if prefix not in self.providers or not model:
                self.problems.append(self.origins.problem(
                    where, f"unknown provider '{prefix}' in '{name}'"))
            return
        if name in self.models or (allow_alias and (name in self.aliases or name == AUTO)):
            return
        self.problems.append(self.origins.problem(where, f"unknown model '{name}'"))


def _models(raw: dict[str, Any], origins: _Origins, providers: set[str],
            problems: list[str]) -> dict[str, CatalogModel]:
    models: dict[str, CatalogModel] = {}
    for name, entry in raw.items():
        served = dict(entry["providers"])
        for provider in served:
            if provider not in providers:
                problems.append(origins.problem(["models", name, "providers", provider],
                                                f"unknown provider '{provider}'"))
        first = entry.get("first_party")
        if first is not None and first not in served:
            problems.append(origins.problem(["models", name, "first_party"],
                                            f"'{first}' is not one of the model's providers"))
        models[name] = CatalogModel(name=name, providers=MappingProxyType(served),
                                    first_party=first)
    return models


def _budgets(raw: dict[str, Any], presets: dict[str, Any], origins: _Origins,
             providers: set[str], problems: list[str]) -> dict[str, Budget]:
    budgets: dict[str, Budget] = {}
    for provider, entry in raw.items():
        if provider not in providers:
            problems.append(origins.problem(["budgets", provider],
                                            f"unknown provider '{provider}'"))
        limits: dict[str, int] = {}
        preset = entry.get("preset")
        if preset is not None:
            if preset not in presets:
                problems.append(origins.problem(["budgets", provider, "preset"],
                                                f"unknown budget preset '{preset}'"))
            else:
                limits.update(presets[preset])
        limits.update({k: v for k, v in entry.items() if k in LIMIT_KINDS})
        budgets[provider] = Budget(**limits)
    return budgets


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_servers(raw: dict[str, Any], origins: _Origins, spec_providers: set[str],
                   problems: list[str]) -> dict[str, LocalServer]:
    servers: dict[str, LocalServer] = {}
    for sid, entry in raw.items():
        where: list[str | int] = ["local_servers", sid]
        if sid in spec_providers:
            extra = sorted(set(entry) & {"url", "generate", "dialect"})
            if extra:
                problems.append(origins.problem(
                    [*where, extra[0]], f"'{sid}' is a spec provider; its {extra[0]} comes "
                    "from the spec and its settings"))
        else:
            for needed in ("url", "generate", "dialect"):
                if needed not in entry:
                    problems.append(origins.problem(where, f"'{needed}' is required"))
            dialect = entry.get("dialect")
            if dialect is not None and dialect not in DIALECTS:
                problems.append(origins.problem([*where, "dialect"],
                                                f"unknown dialect '{dialect}'"))
            url = entry.get("url")
            if url is not None and not _loopback(url):
                problems.append(origins.problem([*where, "url"],
                                                f"'{url}' is not a loopback address"))
        servers[sid] = LocalServer(id=sid, probe=entry["probe"], name=entry.get("name"),
                                   url=entry.get("url"), generate=entry.get("generate"),
                                   dialect=entry.get("dialect"))
    return servers
