"""The router's state for `GET /status`, in the spec's RoutingStatus shape."""

from __future__ import annotations

from typing import Any

from gateway.providers import Provider
from gateway.routing.backends import HealthRecord
from gateway.routing.health import model_key, provider_key
from gateway.routing.router import Router


async def routing_status(router: Router) -> dict[str, Any]:
    """Every provider and model: configured, key refused, cooldowns, budgets; the catalog."""
    catalog = router.catalog
    records = await router.cooldowns.records()
    now = router.clock()
    providers: list[dict[str, Any]] = []
    for provider in catalog.providers.values():
        providers.append(await _provider(router, provider, records, now))
    models: list[dict[str, Any]] = []
    for model in catalog.config.models.values():
        candidates = []
        for pid, native in catalog.ordered(model):
            served_by = catalog.providers.get(pid)
            record = _merged(records, pid, native)
            available = (served_by is not None and catalog.usable(pid)
                         and not router.keys.is_bad(served_by) and record.until <= now
                         and not await router.budgets.spent(pid))
            candidates.append({"provider": pid, "model": native, "available": available})
        models.append({"name": model.name, "candidates": candidates})
    return {"providers": providers, "models": models,
            "aliases": {name: list(entries) for name, entries in catalog.config.aliases.items()},
            "cache": await router.cache.stats()}


def _merged(records: dict[str, HealthRecord], provider_id: str, model: str) -> HealthRecord:
    """A model's record with its provider-wide cooldown folded in."""
    own = records.get(model_key(provider_id, model), HealthRecord())
    whole = records.get(provider_key(provider_id), HealthRecord())
    return HealthRecord(max(own.until, whole.until), own.strikes)


async def _provider(router: Router, provider: Provider, records: dict[str, HealthRecord],
                    now: float) -> dict[str, Any]:
    catalog = router.catalog
    canonical: dict[str, list[str]] = {}
    for model in catalog.config.models.values():
        native = model.providers.get(provider.id)
        if native is not None:
            canonical.setdefault(native, []).append(model.name)
    prefix = provider.id + "/"
    for key in records:
        if key.startswith(prefix) and key != provider_key(provider.id):
            canonical.setdefault(key[len(prefix):], [])
    budgets = {kind: {"limit": s.limit, "used": s.used, "left": s.left}
               for kind, s in (await router.budgets.states(provider.id)).items()}
    key_bad = router.keys.is_bad(provider)
    models = []
    for native, names in canonical.items():
        record = _merged(records, provider.id, native)
        cooling = record.until > now
        models.append({"model": native, "canonical": names, "healthy": not cooling,
                       "cooling_down_until": record.until if cooling else None,
                       "failures": record.strikes})
    return {"id": provider.id, "name": provider.config.name, "configured": provider.configured,
            "local": provider.id in catalog.locals, "key_bad": key_bad,
            "healthy": provider.configured and not key_bad
            and not any(b["left"] == 0 for b in budgets.values()),
            "budgets": budgets, "models": models}
