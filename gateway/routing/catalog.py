"""From the model a request names to the ordered candidates that may serve it.

A request may name `provider/model`, a catalog model (`llama-3.3-70b`), an alias (`fast`),
`auto`, or a provider's own model id that the catalog knows (`llama-3.3-70b-versatile`).
An override in the routing file first replaces the name. A catalog model's candidates are
its first-party provider, then the other cloud providers in the catalog's order, then local
servers. Only usable providers become candidates: configured (API key present), and for a
local server, discovered or explicitly configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.errors import NotFound, ProviderNotConfigured
from gateway.providers import Provider
from gateway.routing.config import AUTO, CatalogModel, RoutingConfig

PLAN_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Candidate:
    """One provider's model that may serve a request."""

    provider: Provider
    model: str  # the provider's own id
    canonical: str | None = None
    provider_id: str = field(init=False, compare=False)  # the provider's id, kept

    def __post_init__(self) -> None:
        object.__setattr__(self, "provider_id", self.provider.id)

    @property
    def label(self) -> str:
        """`provider/model`."""
        return f"{self.provider.id}/{self.model}"


@dataclass(frozen=True, slots=True)
class Plan:
    """The resolved name and its candidates in the order they are tried."""

    requested: str
    name: str  # after overrides; the cache keys on this
    candidates: tuple[Candidate, ...]
    # (provider id, model) of each candidate, as the cooldowns are asked for them: made once
    # per plan (plans are kept), not per request.
    pairs: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs",
                           tuple((c.provider_id, c.model) for c in self.candidates))


class Catalog:
    """Resolves model names against the routing configuration and the usable providers."""

    def __init__(self, config: RoutingConfig, providers: Mapping[str, Provider], *,
                 explicit_locals: Iterable[str] = (),
                 discovered: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.config = config
        self.providers = dict(providers)
        self.locals = frozenset(config.local_servers)
        self.explicit_locals = frozenset(explicit_locals)
        self.discovered = dict(discovered or {})
        self._native: dict[str, list[tuple[str, str]]] = {}
        # Resolved plans by requested name: the catalog does not change once built (local
        # servers are discovered before it is), and names come from callers, so it is bounded.
        self._plans: dict[str, Plan] = {}
        for model in config.models.values():
            for pid, native in model.providers.items():
                self._native.setdefault(native, []).append((model.name, pid))

    def usable(self, provider_id: str) -> bool:
        """Whether routing may pick this provider on its own."""
        provider = self.providers.get(provider_id)
        if provider is None or not provider.configured:
            return False
        if provider_id in self.locals:
            return provider_id in self.explicit_locals or provider_id in self.discovered
        return True

    def _serves(self, provider_id: str, model: str) -> bool:
        listed = self.discovered.get(provider_id)
        if not listed:  # configured by URL but not probed: trust the catalog
            return True
        return model in listed or f"{model}:latest" in listed

    def ordered(self, model: CatalogModel) -> list[tuple[str, str]]:
        """Every (provider, native id) of a catalog model in try order, usable or not."""
        entries = list(model.providers.items())
        first = [e for e in entries if e[0] == model.first_party]
        cloud = [e for e in entries if e[0] != model.first_party and e[0] not in self.locals]
        local = [e for e in entries if e[0] in self.locals and e[0] != model.first_party]
        return first + cloud + local

    def canonical(self, name: str) -> list[Candidate]:
        """The usable candidates of a catalog model."""
        return [Candidate(self.providers[pid], native, name)
                for pid, native in self.ordered(self.config.models[name])
                if self.usable(pid) and self._serves(pid, native)]

    def resolve(self, requested: str) -> Plan:
        """The plan for a requested model name; NotFound when nothing could serve it."""
        plan = self._plans.get(requested)
        if plan is not None:
            return plan
        name = self.config.overrides.get(requested, requested)
        candidates = self._candidates(name)
        if not candidates:
            raise NotFound(self._nothing_serves(name), code="model_unavailable")
        plan = Plan(requested, name, tuple(_dedupe(candidates)))
        if len(self._plans) >= PLAN_CACHE_SIZE:
            self._plans.clear()
        self._plans[requested] = plan
        return plan

    def _candidates(self, name: str) -> list[Candidate]:
        if name == AUTO:
            found = [c for entry in self.config.auto for c in self.canonical(entry)]
            return found + self._local_models()
        if name in self.config.aliases:
            return [c for entry in self.config.aliases[name] for c in self._entry(entry)]
        if name in self.config.models:
            return self.canonical(name)
        prefix, slash, model = name.partition("/")
        if slash and prefix in self.providers and model:
            provider = self.providers[prefix]
            if not provider.configured:
                raise ProviderNotConfigured(provider.id, list(provider.missing))
            return [Candidate(provider, model)]
        if name in self._native:
            return [Candidate(self.providers[pid], name, canonical)
                    for canonical, pid in self._native[name] if self.usable(pid)]
        raise NotFound(f"unknown model '{name}': name a provider/model (such as "
                       "'openai/gpt-4o-mini'), a catalog model, an alias or 'auto'",
                       code="unknown_model")

    def _entry(self, entry: str) -> list[Candidate]:
        """An alias entry: a catalog model, or `provider/model` if that provider is usable."""
        if entry in self.config.models:
            return self.canonical(entry)
        prefix, _, model = entry.partition("/")
        provider = self.providers.get(prefix)
        if provider is None or not provider.configured:
            return []
        return [Candidate(provider, model)]

    def _local_models(self) -> list[Candidate]:
        return [Candidate(self.providers[pid], model)
                for pid, models in self.discovered.items() if self.usable(pid)
                for model in models]

    def _nothing_serves(self, name: str) -> str:
        """Why no candidate is left, naming the settings that would enable one."""
        names = [name] if name in self.config.models else list(
            self.config.aliases.get(name, self.config.auto if name == AUTO else ()))
        missing: list[str] = []
        for entry in names:
            model = self.config.models.get(entry)
            for pid in model.providers if model else ():
                provider = self.providers.get(pid)
                if provider is not None and pid not in self.locals:
                    missing.extend(v for v in provider.missing if v not in missing)
        hint = f"; set {' or '.join(missing)}" if missing else ""
        return f"no configured provider serves '{name}'{hint}"


def _dedupe(candidates: list[Candidate]) -> list[Candidate]:
    seen: set[str] = set()
    out: list[Candidate] = []
    for candidate in candidates:
        if candidate.label not in seen:
            seen.add(candidate.label)
            out.append(candidate)
    return out
