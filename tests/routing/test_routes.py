"""`GET /status`, `GET /cache/stats` and `DELETE /cache` over real HTTP, checked against the spec.

The test app wires the router the way the gateway does (`app.state.gateway.router`, built in
the lifespan) and adds a small chat route that reports hits in `X-Cache`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import GatewayError
from gateway.library import Gateway, Hooks
from gateway.responses import JSONResponse, error_response
from gateway.routes import cache, status
from gateway.routes.status import router_of
from tests.routing.conftest import FakeClock, chat, env_for
from tests.routing.test_fallback import HOPS
from tests.support.server import serve

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())


def schema(name: str) -> jsonschema.Draft202012Validator:
    """A validator for one of the spec's component schemas."""
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]})


async def chat_route(request: Request) -> Response:
    body = await request.json()
    routed = await router_of(request).complete(
        chat(body["text"]), requested_model=body["model"],
        cache_control=request.headers.get("cache-control"))
    return JSONResponse({"provider": routed.provider_id, "text": routed.answer.text},
                        headers={"X-Cache": "HIT" if routed.cache_hit else "MISS"})


def routing_app(env: dict[str, str], clock: FakeClock) -> Starlette:
    state = SimpleNamespace(router=None)
    gateway = Gateway.from_env(env, hooks=Hooks(clock=clock))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway:
            state.router = gateway.router
            yield

    app = Starlette(lifespan=lifespan, routes=[
        Route("/status", status.status, methods=["GET"]),
        Route("/cache/stats", cache.cache_stats, methods=["GET"]),
        Route("/cache", cache.clear_cache, methods=["DELETE"]),
        Route("/chat", chat_route, methods=["POST"]),
    ])
    app.state.gateway = state
    return app


@pytest.fixture
def served(simulators: Any, routing_file: Any, clock: FakeClock) -> Iterator[httpx.Client]:
    routing = routing_file({**HOPS, "budgets": {"anthropic": {"rpm": 5, "tpd": 100000}}})
    env = env_for(simulators, "openai", "groq", "anthropic", ROUTING_FILE=routing)
    with serve(routing_app(env, clock)) as server, httpx.Client(base_url=server.url) as client:
        yield client


def test_status_shows_keys_cooldowns_and_budgets(served, simulators, clock) -> None:
    simulators["openai"].fail_next(401)
    simulators["groq"].fail_next(429, headers={"retry-after": "30"})
    answer = served.post("/chat", json={"model": "hop-model", "text": "hi"})
    assert answer.json()["provider"] == "anthropic"

    response = served.get("/status")
    assert response.status_code == 200
    body = response.json()
    schema("RoutingStatus").validate(body)
    providers = {p["id"]: p for p in body["providers"]}
    assert providers["openai"]["key_bad"] and not providers["openai"]["healthy"]
    assert providers["openai"]["configured"] and not providers["cohere"]["configured"]
    groq_models = {m["model"]: m for m in providers["groq"]["models"]}
    cooling = groq_models["llama-3.3-70b-versatile"]
    assert cooling["cooling_down_until"] == pytest.approx(clock() + 30)
    assert cooling["failures"] == 1 and not cooling["healthy"]
    assert "llama-3.3-70b" in cooling["canonical"] and "hop-model" in cooling["canonical"]
    assert providers["anthropic"]["budgets"]["rpm"] == {"limit": 5, "used": 1, "left": 4}
    assert providers["anthropic"]["budgets"]["tpd"]["used"] > 0
    assert providers["ollama"]["local"] and not providers["anthropic"]["local"]
    hop = next(m for m in body["models"] if m["name"] == "hop-model")
    assert [(c["provider"], c["available"]) for c in hop["candidates"]] == [
        ("openai", False), ("groq", False), ("anthropic", True)]
    assert body["aliases"]["fast"][0] == "llama-3.1-8b"

    clock.advance(31)  # the cooldown heals by itself; the refused key does not
    later = {p["id"]: p for p in served.get("/status").json()["providers"]}
    healed = {m["model"]: m for m in later["groq"]["models"]}["llama-3.3-70b-versatile"]
    assert healed["healthy"] and healed["cooling_down_until"] is None
    assert later["openai"]["key_bad"]


def test_cache_header_stats_and_clearing(served, simulators) -> None:
    ask = {"model": "hop-model", "text": "cache me"}
    first, second = served.post("/chat", json=ask), served.post("/chat", json=ask)
    fresh = served.post("/chat", json=ask, headers={"Cache-Control": "no-cache"})
    assert [r.headers["x-cache"] for r in (first, second, fresh)] == ["MISS", "HIT", "MISS"]
    assert second.json() == first.json()

    stats = served.get("/cache/stats").json()
    schema("CacheStats").validate(stats)
    assert stats | {"ttl_seconds": 0} == {"enabled": True, "backend": "memory", "entries": 1,
                                          "max_entries": 1000, "ttl_seconds": 0, "hits": 1,
                                          "misses": 1}
    cleared = served.delete("/cache")
    schema("CacheCleared").validate(cleared.json())
    assert cleared.json() == {"cleared": 1}
    assert served.get("/cache/stats").json()["entries"] == 0
    assert served.post("/chat", json=ask).headers["x-cache"] == "MISS"
    assert sum(1 for r in simulators["openai"].requests if r.method == "POST") == 3


def test_routes_without_a_router_answer_503() -> None:
    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return error_response(exc)

    app = Starlette(routes=[Route("/status", status.status), Route("/cache/stats",
                                                                   cache.cache_stats)],
                    exception_handlers={GatewayError: gateway_error})
    app.state.gateway = SimpleNamespace()
    with serve(app) as server:
        responses = [httpx.get(server.url + path) for path in ("/status", "/cache/stats")]
    assert [r.status_code for r in responses] == [503, 503]
    assert responses[0].json()["code"] == "service_unavailable"
