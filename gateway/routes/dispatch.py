"""Every chat route hands its request to the router here, and labels the answer it gets."""

from __future__ import annotations

import functools
from urllib.parse import quote

from starlette.requests import Request

from gateway import ir
from gateway.errors import InvalidRequest
from gateway.routing.router import Routed, RoutedResponse, RoutedStream
from gateway.state import GatewayState


def _well_formed(requested_model: str) -> None:
    """A `provider/model` name with an empty half is a typo, not an unknown model."""
    head, slash, tail = requested_model.partition("/")
    if slash and (not head or not tail or tail.startswith("/")):
        raise InvalidRequest(f"model '{requested_model}' must be 'provider/model' (such as "
                             "'openai/gpt-4o-mini'), a catalog model, an alias or 'auto'",
                             field="model")


def _served(request: Request, routed: Routed) -> None:
    # The access log and traces show who really answered, after fallbacks. Written to the
    # scope's state dict itself (what `request.state` wraps), once per request.
    state = request.scope.setdefault("state", {})
    state["provider"] = routed.provider_id
    state["model"] = routed.model


def _cache_control(request: Request, state: GatewayState) -> str | None:
    # The header is only looked up (a scan of every header) when the cache is on.
    return request.headers.get("cache-control") if state.router.cache.enabled else None


async def complete(request: Request, chat: ir.ChatRequest, *,
                   requested_model: str) -> RoutedResponse:
    """A whole answer from the first candidate of `requested_model` that works."""
    _well_formed(requested_model)
    state: GatewayState = request.app.state.gateway
    routed = await state.router.complete(chat, requested_model=requested_model,
                                         cache_control=_cache_control(request, state))
    _served(request, routed)
    return routed


async def stream(request: Request, chat: ir.ChatRequest, *, requested_model: str) -> RoutedStream:
    """A stream from the first candidate that starts without an error."""
    _well_formed(requested_model)
    state: GatewayState = request.app.state.gateway
    routed = await state.router.stream(chat, requested_model=requested_model,
                                       cache_control=_cache_control(request, state))
    _served(request, routed)
    return routed


@functools.lru_cache(maxsize=1024)
def _header_value(model: str) -> str:
    # Model ids come from callers: percent-encode them so any name fits in a header.
    return quote(model, safe="/@:.-_~+")


def headers(routed: Routed) -> dict[str, str]:
    """Response headers saying who served the answer and whether it came from the cache."""
    return {"x-cache": "HIT" if routed.cache_hit else "MISS",
            "x-gateway-provider": routed.provider_id,
            "x-gateway-model": _header_value(routed.model)}
