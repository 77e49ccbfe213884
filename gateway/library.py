"""The routing core in-process, without the server.

    async with Gateway.from_env() as gw:
        print(await gw.providers_for("llama-3.3-70b"))      # ['groq', 'cloudflare']
        model = await gw.connect(["gpt-4o-mini", "llama-3.3-70b"])
        answer = await model.complete([{"role": "user", "content": "Hi"}])
        async for text in model.stream("Tell me a story"):
            print(text, end="")
        best = await gw.connect_best()
        print(await gw.ask("What is 2 + 2?"))             # model="auto"

    print(ask_sync("What is 2 + 2?"))                      # outside any event loop

The same settings as the server (the environment, ROUTING_FILE, REDIS_URL) apply, so a
library process with REDIS_URL set shares cooldowns, budgets and the cache with the servers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from gateway import ir
from gateway.app import http_client
from gateway.client import Client
from gateway.errors import NotFound, UpstreamError
from gateway.providers import resolve_all
from gateway.routing import NoModelAvailable, Router, start_router
from gateway.routing.backends import StateBackend
from gateway.routing.config import AUTO, RoutingConfig
from gateway.routing.router import Routed, Sleep
from gateway.telemetry import NoopTelemetry
from gateway.upstream import Upstream
from generated.settings import Settings

MessagesLike = str | Sequence[ir.Message | Mapping[str, Any]]


def to_messages(messages: MessagesLike) -> list[ir.Message]:
    """A prompt string, `{"role", "content"}` mappings or IR messages as IR messages."""
    if isinstance(messages, str):
        return [ir.Message(role="user", content=[ir.TextPart(messages)])]
    out: list[ir.Message] = []
    for message in messages:
        if isinstance(message, ir.Message):
            out.append(message)
        else:
            out.append(ir.Message(role=message["role"],
                                  content=[ir.TextPart(str(message.get("content") or ""))]))
    return out


@dataclass(slots=True)
class Hooks:
    """What tests (or embedders) may swap: clock, sleep, randomness, state."""

    clock: Callable[[], float] | None = None
    sleep: Sleep | None = None
    rng: random.Random | None = None
    backend: StateBackend | None = None
    config: RoutingConfig | None = None


@dataclass(slots=True)
class BoundModel:
    """A model name bound to a gateway; each call is routed (with fallback) like the server's."""

    gateway: Gateway
    name: str
    last: Routed | None = field(default=None, repr=False)

    def _request(self, messages: MessagesLike, params: Mapping[str, Any]) -> ir.ChatRequest:
        return ir.ChatRequest(model=self.name, messages=to_messages(messages), **params)

    async def complete(self, messages: MessagesLike, **params: Any) -> ir.ChatResponse:
        """The whole answer; `params` are ChatRequest fields (max_tokens, temperature, ...)."""
        routed = await self.gateway.router.complete(self._request(messages, params),
                                                    requested_model=self.name)
        self.last = routed
        return routed.answer

    async def ask(self, question: str, **params: Any) -> str:
        """The answer's text."""
        return (await self.complete(question, **params)).text

    async def stream(self, messages: MessagesLike, **params: Any) -> AsyncIterator[str]:
        """The answer's text as it arrives; a failure after the start raises UpstreamError."""
        routed = await self.gateway.router.stream(self._request(messages, params),
                                                  requested_model=self.name)
        self.last = routed
        assert routed.batches is not None
        async with aclosing(routed.batches) as batches:
            async for batch in batches:
                for event in batch:
                    if type(event) is ir.TextDelta and event.text:
                        yield event.text
                    elif type(event) is ir.StreamError:
                        raise UpstreamError(event.message, provider=routed.provider_id,
                                            code=event.type)


class Gateway:
    """The router with its own HTTP client; use as `async with Gateway.from_env() as gw:`."""

    def __init__(self, settings: Settings, *, hooks: Hooks | None = None) -> None:
        self.settings = settings
        self._hooks = hooks or Hooks()
        self._client: Client | None = None
        self._router: Router | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 hooks: Hooks | None = None) -> Gateway:
        """A gateway configured like the server, from `environ` (default: os.environ)."""
        return cls(Settings.from_env(environ), hooks=hooks)

    @classmethod
    def from_settings(cls, settings: Settings, *, hooks: Hooks | None = None) -> Gateway:
        """A gateway for ready settings."""
        return cls(settings, hooks=hooks)

    @property
    def router(self) -> Router:
        """The running router (only inside `async with`)."""
        if self._router is None:
            raise RuntimeError("use the Gateway inside 'async with'")
        return self._router

    async def __aenter__(self) -> Gateway:
        hooks = self._hooks
        self._client = http_client(self.settings)
        extra: dict[str, Any] = {k: v for k, v in (
            ("clock", hooks.clock), ("sleep", hooks.sleep), ("rng", hooks.rng),
            ("backend", hooks.backend), ("config", hooks.config)) if v is not None}
        try:
            self._router = await start_router(self.settings, resolve_all(self.settings),
                                              Upstream(self._client), NoopTelemetry(), **extra)
        except BaseException:
            await self._client.aclose()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self._router is not None:
                await self._router.aclose()
        finally:
            self._router = None
            if self._client is not None:
                await self._client.aclose()

    async def providers_for(self, model: str) -> list[str]:
        """The providers that would serve `model` now, in the order they would be tried."""
        try:
            plan = self.router.plan(model)
        except NotFound:
            return []
        return list(dict.fromkeys(c.provider_id for c in await self.router.available(plan)))

    async def connect(self, models: str | Sequence[str]) -> BoundModel:
        """The first model of `models` that some provider can serve now."""
        names = [models] if isinstance(models, str) else list(models)
        for name in names:
            if await self.providers_for(name):
                return BoundModel(self, name)
        raise NoModelAvailable(f"none of {', '.join(names)} is available now",
                               provider="gateway")

    async def connect_best(self) -> BoundModel:
        """The best available model by the routing file's `auto` priority list."""
        for name in self.router.config.auto:
            if await self.providers_for(name):
                return BoundModel(self, name)
        return await self.connect(AUTO)

    async def ask(self, question: str, *, model: str = AUTO, **params: Any) -> str:
        """A one-off question; the answer's text."""
        return await BoundModel(self, model).ask(question, **params)


def ask_sync(question: str, *, model: str = AUTO, environ: Mapping[str, str] | None = None,
             **params: Any) -> str:
    """`Gateway.ask` for code without an event loop."""

    async def run() -> str:
        async with Gateway.from_env(environ) as gateway:
            return await gateway.ask(question, model=model, **params)

    return asyncio.run(run())
