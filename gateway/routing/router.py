"""The router: one requested model name in, one answer out, from the first candidate that works.

For each candidate in the plan's order: skip it if its provider's key was refused, if it is
cooling down, or if its provider's budget is spent; otherwise call it, retrying transient
failures with backoff, and on failure cool it down and go on (see `gateway.routing.policy`).
Every attempt, wait and retry fits in one per-request deadline, and one request never makes
more than (ROUTING_RETRIES + 1) x candidates upstream calls. Streams choose their candidate
before the first event reaches the caller; after that, failures are stream error events and
nothing is retried.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TypeVar

from gateway import chat, ir
from gateway.chat import AnyTelemetry
from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout
from gateway.providers import Provider
from gateway.routing.backends import StateBackend
from gateway.routing.budgets import Budgets
from gateway.routing.cache import (
    CachedAnswer,
    ResponseCache,
    StreamAssembler,
    cache_key,
    cache_policy,
    replay,
)
from gateway.routing.catalog import Candidate, Catalog, Plan
from gateway.routing.config import RoutingConfig
from gateway.routing.health import Cooldowns, KeyGuard, Standing
from gateway.routing.options import RouterOptions
from gateway.routing.policy import Cooldown, Verdict, backoff, decide
from gateway.timing import Deadline
from gateway.upstream import Upstream

T = TypeVar("T")
Events = AsyncGenerator[ir.StreamEvent, None]
Batch = list[ir.StreamEvent]
Batches = AsyncGenerator[Batch, None]
_NO_MORE: Batch = []  # `anext`'s default at the end of `Batches` (compared by identity)
Sleep = Callable[[float], Awaitable[None]]


class NoModelAvailable(UpstreamError):
    """Every candidate is cooling down or over budget; `retry_after` says when one frees up."""

    status = 429
    code = "no_model_available"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened to one candidate: `ok`, `error` (one per upstream call) or `skipped`."""

    provider: str
    model: str
    outcome: str
    status: int | None = None
    code: str | None = None


@dataclass(slots=True)
class Routed:
    """Who served a routed request, whether from the cache, and every attempt on the way."""

    provider_id: str
    model: str
    cache_hit: bool
    attempts: list[Attempt] = field(default_factory=list)
    provider: Provider | None = None


@dataclass(slots=True)
class RoutedResponse(Routed):
    """A routed non-streamed answer."""

    answer: ir.ChatResponse = field(default_factory=lambda: ir.ChatResponse(id="", model=""))


@dataclass(slots=True)
class RoutedStream(Routed):
    """A routed stream: iterate (and close) either `batches`, as `chat.open_stream` gives
    them, or `events`, the same events one by one; not both."""

    batches: Batches | None = None
    _events: Events | None = field(default=None, init=False, repr=False)

    @property
    def events(self) -> Events | None:
        """The stream's events one at a time (the same generator on every access)."""
        if self._events is None and self.batches is not None:
            self._events = _one_by_one(self.batches)
        return self._events


@dataclass(slots=True)
class _Run:
    """One request's progress through its plan."""

    plan: Plan
    deadline: float
    loop: asyncio.AbstractEventLoop
    attempts: list[Attempt] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    last_error: GatewayError | None = None


class Router:
    """Routes requests over the configured providers; one per app (or library gateway)."""

    def __init__(self, *, config: RoutingConfig, catalog: Catalog, upstream: Upstream,
                 telemetry: AnyTelemetry, backend: StateBackend, options: RouterOptions,
                 clock: Callable[[], float] = time.time, sleep: Sleep = asyncio.sleep,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.catalog = catalog
        self.upstream = upstream
        self.telemetry = telemetry
        self.backend = backend
        self.options = options
        self.clock = clock
        self._sleep = sleep
        # Jitter only spreads retries out; it need not be unpredictable.
        self._rng = rng or random.Random()  # noqa: S311
        self.cooldowns = Cooldowns(backend, clock, base=options.cooldown_base,
                                   cap=options.cooldown_max)
        self.keys = KeyGuard()
        self.budgets = Budgets(backend, clock, config.budgets)
        self.cache = ResponseCache(backend, clock, enabled=options.cache_enabled,
                                   ttl=options.cache_ttl, max_entries=options.cache_max_entries)

    async def aclose(self) -> None:
        """Release the state backend's connections."""
        await self.backend.aclose()

    def plan(self, requested_model: str) -> Plan:
        """The candidates for a model name, in try order (NotFound if there are none)."""
        return self.catalog.resolve(requested_model)

    async def available(self, plan: Plan) -> list[Candidate]:
        """The plan's candidates that would be tried now (not cooling, not over budget)."""
        standings = await self.cooldowns.standings(
            [(c.provider_id, c.model) for c in plan.candidates])
        now = self.clock()
        return [c for c, s in zip(plan.candidates, standings, strict=True)
                if not self.keys.is_bad(c.provider) and not s.cooling(now)
                and not await self.budgets.spent(c.provider_id)]

    # ----- non-streamed -------------------------------------------------------------------

    async def complete(self, request: ir.ChatRequest, *, requested_model: str,
                       cache_control: str | None = None) -> RoutedResponse:
        """Answer `request` from the first candidate of `requested_model` that works."""
        plan = self.plan(requested_model)
        read, write = cache_policy(cache_control) if self.cache.enabled else (False, False)
        key = cache_key(request, plan.name) if read or write else ""
        if read and (hit := await self.cache.get(key)) is not None:
            return RoutedResponse(hit.provider, hit.model, True, [], self._provider(hit),
                                  answer=hit.answer)

        async def call(candidate: Candidate) -> ir.ChatResponse:
            chat_request = request.retarget(candidate.model, stream=False)
            return await chat.complete(self.upstream, self.telemetry, candidate.provider,
                                       chat_request)

        run = self._new_run(plan)
        candidate, answer = await self._route(run, call)
        await self._spend(candidate, answer.usage)
        if write:
            await self.cache.put(key, CachedAnswer(candidate.provider_id, candidate.model,
                                                   answer))
        return RoutedResponse(candidate.provider_id, candidate.model, False, run.attempts,
                              candidate.provider, answer=answer)

    # ----- streamed -----------------------------------------------------------------------

    async def stream(self, request: ir.ChatRequest, *, requested_model: str,
                     cache_control: str | None = None) -> RoutedStream:
        """Open a stream from the first candidate whose stream starts without an error."""
        plan = self.plan(requested_model)
        read, write = cache_policy(cache_control) if self.cache.enabled else (False, False)
        key = cache_key(request, plan.name) if read or write else ""
        if read and (hit := await self.cache.get(key)) is not None:
            return RoutedStream(hit.provider, hit.model, True, [], self._provider(hit),
                                batches=_from_list(replay(hit.answer)))

        async def call(candidate: Candidate) -> tuple[list[Batch], Batches]:
            chat_request = request.retarget(candidate.model, stream=True)
            batches = await chat.open_stream(self.upstream, self.telemetry, candidate.provider,
                                             chat_request)
            return await _peek(candidate, batches), batches

        run = self._new_run(plan)
        candidate, (head, batches) = await self._route(run, call)
        body = self._committed(candidate, head, batches, key if write else None)
        return RoutedStream(candidate.provider_id, candidate.model, False, run.attempts,
                            candidate.provider, batches=body)

    async def _committed(self, candidate: Candidate, head: list[Batch], batches: Batches,
                         key: str | None) -> Batches:
        """The chosen stream: its peeked batches, then the rest; bookkeeping when it ends."""
        assembler = StreamAssembler(candidate.model)
        async with aclosing(batches):
            for batch in head:
                assembler.add_all(batch)
                yield batch
            # `anext` with a default: the end of `batches` is a value, not an exception
            # raised through this frame (a few thousand instructions a stream).
            while (batch := await anext(batches, _NO_MORE)) is not _NO_MORE:
                assembler.add_all(batch)
                yield batch
                if assembler.failed:
                    break
        await self._spend(candidate, assembler.usage)
        answer = assembler.result()
        if answer is None:
            await self.cooldowns.fail(candidate.provider_id, candidate.model, retry_after=None)
        elif key is not None:
            await self.cache.put(key, CachedAnswer(candidate.provider_id, candidate.model,
                                                   answer))

    # ----- the attempt loop ---------------------------------------------------------------

    def _new_run(self, plan: Plan) -> _Run:
        loop = asyncio.get_running_loop()  # once per request: each lookup costs a getpid()
        return _Run(plan, loop.time() + self.options.deadline, loop)

    async def _route(self, run: _Run, call: Callable[[Candidate], Awaitable[T]]
                     ) -> tuple[Candidate, T]:
        """Try the plan's candidates in order; the first result wins."""
        candidates = run.plan.candidates
        standings = self.cooldowns.standings_now(run.plan.pairs)
        if standings is None:
            standings = await self.cooldowns.standings(run.plan.pairs)
        for candidate, standing in zip(candidates, standings, strict=True):
            if not self._eligible(run, candidate, standing):
                continue
            found, result = await self._try(run, candidate, standing, call)
            if found:
                assert result is not None
                return candidate, result
        if run.last_error is not None:
            raise run.last_error
        first = candidates[0]
        if not run.waits:  # every candidate's key was refused earlier
            raise UpstreamError(f"every provider for '{run.plan.requested}' refused its API key",
                                provider=first.provider_id, upstream_status=401,
                                code="upstream_key_refused")
        raise NoModelAvailable(
            f"every model for '{run.plan.requested}' is cooling down or over budget",
            provider=first.provider_id, retry_after=min(run.waits, default=None))

    def _eligible(self, run: _Run, candidate: Candidate, standing: Standing) -> bool:
        now = self.clock()
        if self.keys.is_bad(candidate.provider):
            self._skip(run, candidate, "key_bad")
            return False
        if standing.cooling(now):
            run.waits.append(standing.until - now)
            self._skip(run, candidate, "cooling_down")
            return False
        return True

    def _skip(self, run: _Run, candidate: Candidate, code: str) -> None:
        run.attempts.append(Attempt(candidate.provider_id, candidate.model, "skipped",
                                    code=code))

    async def _try(self, run: _Run, candidate: Candidate, standing: Standing,
                   call: Callable[[Candidate], Awaitable[T]]) -> tuple[bool, T | None]:
        """Call one candidate, with retries; (True, result) on success."""
        loop = run.loop
        for retry in range(self.options.retries + 1):
            remaining = run.deadline - loop.time()
            if remaining <= 0:
                return False, None
            # Checked here first: most providers have no budget, and a call that returns at
            # once still costs a coroutine.
            wait = (await self.budgets.acquire(candidate.provider_id)
                    if self.budgets.limited(candidate.provider_id) else None)
            if wait is not None:
                run.waits.append(wait)
                self._skip(run, candidate, "budget_spent")
                return False, None
            # The call always waits (for the network): a deadline bounds it directly, without
            # `gateway.timing.limited`'s step-by-step relay (13,000 instructions a call).
            deadline = Deadline(loop, run.deadline)
            try:
                try:
                    result = await call(candidate)
                finally:
                    deadline.end()
            except (asyncio.CancelledError, TimeoutError) as caught:
                if isinstance(caught, asyncio.CancelledError) and not deadline.absorbed():
                    raise  # a cancellation from elsewhere
                exc: GatewayError = UpstreamTimeout(
                    f"{candidate.provider_id} did not answer within the routing deadline",
                    provider=candidate.provider_id)
            except GatewayError as error:
                exc = error
            else:
                run.attempts.append(Attempt(candidate.provider_id, candidate.model, "ok"))
                if standing.strikes or standing.until:  # else there is nothing to forget
                    await self.cooldowns.succeed(candidate.provider_id, candidate.model,
                                                 standing)
                return True, result
            if not await self._after_failure(run, candidate, exc, retry):
                return False, None
        return False, None

    async def _after_failure(self, run: _Run, candidate: Candidate, exc: GatewayError,
                             retry: int) -> bool:
        """Record a failed call; True to retry the same candidate (after waiting)."""
        upstream_status = exc.upstream_status if isinstance(exc, UpstreamError) else None
        run.attempts.append(Attempt(candidate.provider_id, candidate.model, "error",
                                    upstream_status, exc.code))
        decision = decide(exc, max_wait=self.options.backoff_max)
        if decision.verdict is Verdict.FATAL:
            raise exc
        run.last_error = exc
        if decision.verdict is Verdict.KEY_BAD:
            self.keys.mark_bad(candidate.provider)
            return False
        if decision.verdict is Verdict.RETRY and retry < self.options.retries:
            delay = max(decision.wait or 0.0, backoff(
                retry, base=self.options.backoff_base, cap=self.options.backoff_max,
                rng=self._rng))
            if run.loop.time() + delay < run.deadline:
                await self._sleep(delay)
                return True
        if decision.cooldown is not Cooldown.NONE:
            retry_after = exc.retry_after if isinstance(exc, UpstreamError) else None
            await self.cooldowns.fail(candidate.provider_id, candidate.model,
                                      retry_after=retry_after,
                                      long=decision.cooldown is Cooldown.LONG,
                                      whole_provider=decision.whole_provider)
        return False

    # ----- helpers ------------------------------------------------------------------------

    async def _spend(self, candidate: Candidate, usage: ir.Usage | None) -> None:
        if usage is not None and self.budgets.limited(candidate.provider_id):
            await self.budgets.spend_tokens(candidate.provider_id, usage.total_tokens)

    def _provider(self, hit: CachedAnswer) -> Provider | None:
        return self.catalog.providers.get(hit.provider)


async def _peek(candidate: Candidate, batches: Batches) -> list[Batch]:
    """The stream's batches up to the one with its first content; an error before that
    content raises instead.

    Nothing has reached the caller yet, so a stream that fails here can still fall back.
    """
    head: list[Batch] = []
    try:
        async for batch in batches:
            head.append(batch)
            for event in batch:
                if type(event) is ir.StreamError:  # final classes (see gateway.ir)
                    raise UpstreamError(f"{candidate.provider_id} failed before its first "
                                        f"event: {event.message}",
                                        provider=candidate.provider_id, code=event.type)
                if type(event) is not ir.MessageStart:
                    return head
    except BaseException:
        await batches.aclose()
        raise
    return head


async def _from_list(events: list[ir.StreamEvent]) -> Batches:
    yield chat.LastBatch(events)


async def _one_by_one(batches: Batches) -> Events:
    async with aclosing(batches):
        async for batch in batches:
            for event in batch:
                yield event
