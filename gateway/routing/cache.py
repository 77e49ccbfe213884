"""The response cache: an exact match on the normalised request.

The key covers everything that changes the answer (the model name as routed, the messages,
tools, tool choice, sampling settings, limits, stop sequences, the response format, and any
pass-through field) and nothing that does not (request ids, `user`, `metadata`, stream
options, whether the answer is streamed). Plain and streamed requests share entries: a
streamed hit is replayed as stream events. Only complete answers are stored, never errors or
streams that broke off.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway import ir
from gateway.routing.backends import StateBackend

KEY_VERSION = "v1"
# Pass-through fields that never change the answer.
IGNORED_EXTRA = frozenset({
    "user", "metadata", "request_id", "stream_options", "store", "safety_identifier",
    "prompt_cache_key",
})
HITS, MISSES = "cache:hits", "cache:misses"


def cache_policy(cache_control: str | None) -> tuple[bool, bool]:
    """(read, write) for a request's Cache-Control: no-cache and max-age=0 refresh the entry,
    no-store bypasses the cache entirely."""
    directives: dict[str, str] = {}
    for part in (cache_control or "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.lower()] = value.strip().strip('"')
    if "no-store" in directives:
        return False, False
    if "no-cache" in directives or directives.get("max-age") == "0":
        return False, True
    return True, True


def normalise(request: ir.ChatRequest, model: str) -> dict[str, Any]:
    """The parts of `request` that decide the answer, as plain data."""
    return {
        "model": model,
        "messages": [dataclasses.asdict(m) for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": list(request.stop),
        "tools": [dataclasses.asdict(t) for t in request.tools],
        "tool_choice": request.tool_choice,
        "response_format": request.response_format,
        "extra": {k: v for k, v in request.extra.items() if k not in IGNORED_EXTRA},
        "extra_dialect": request.extra_dialect if request.extra else None,
    }


def cache_key(request: ir.ChatRequest, model: str) -> str:
    """The cache key of `request` routed as `model`."""
    data = orjson.dumps(normalise(request, model),
                        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return KEY_VERSION + ":" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored answer and who served it."""

    provider: str
    model: str
    answer: ir.ChatResponse


def _encode(entry: CachedAnswer, expires: float) -> bytes:
    answer = entry.answer
    return orjson.dumps({
        "provider": entry.provider, "model": entry.model, "expires": expires,
        "answer": {
            "id": answer.id, "model": answer.model, "text": answer.text,
            "finish_reason": answer.finish_reason,
            "tool_calls": [dataclasses.asdict(c) for c in answer.tool_calls],
            "usage": dataclasses.asdict(answer.usage) if answer.usage else None,
        },
    })


def _decode(raw: bytes) -> tuple[CachedAnswer, float]:
    data = orjson.loads(raw)
    body = data["answer"]
    usage = ir.Usage(**body["usage"]) if body["usage"] else None
    answer = ir.ChatResponse(id=body["id"], model=body["model"], text=body["text"],
                             tool_calls=[ir.ToolCall(**c) for c in body["tool_calls"]],
                             finish_reason=body["finish_reason"], usage=usage)
    return CachedAnswer(data["provider"], data["model"], answer), float(data["expires"])


def replay(answer: ir.ChatResponse) -> list[ir.StreamEvent]:
    """A cached answer as the stream events a provider would have sent (one batch)."""
    events: list[ir.StreamEvent] = [ir.MessageStart(id=answer.id, model=answer.model)]
    if answer.text:
        events.append(ir.TextDelta(answer.text))
    for index, call in enumerate(answer.tool_calls):
        events.append(ir.ToolCallStart(index=index, id=call.id, name=call.name))
        if call.arguments:
            events.append(ir.ToolCallDelta(index=index, arguments=call.arguments))
    events.append(ir.Finish(answer.finish_reason))
    if answer.usage is not None:
        events.append(ir.UsageReport(answer.usage))
    return events


class StreamAssembler:
    """Builds the whole answer from a stream's events; `result()` is None unless complete."""

    def __init__(self, model: str) -> None:
        self._answer = ir.ChatResponse(id="", model=model)
        self._text: list[str] = []
        self._calls: dict[int, ir.ToolCall] = {}
        self._finished = False
        self._failed = False

    @property
    def usage(self) -> ir.Usage | None:
        """The usage reported so far."""
        return self._answer.usage

    @property
    def failed(self) -> bool:
        """Whether the stream reported an error."""
        return self._failed

    def add_all(self, events: list[ir.StreamEvent]) -> None:
        """Take a batch of events into account."""
        text = self._text
        for event in events:
            # Text is nearly every event of a stream: the one case worth a shortcut.
            if type(event) is ir.TextDelta:
                text.append(event.text)
            else:
                self.add(event)

    def add(self, event: ir.StreamEvent) -> None:
        """Take one event into account."""
        if type(event) is ir.MessageStart:  # the events are final classes (see gateway.ir)
            self._answer.id, self._answer.model = event.id, event.model or self._answer.model
        elif type(event) is ir.TextDelta:
            self._text.append(event.text)
        elif type(event) is ir.ToolCallStart:
            self._calls[event.index] = ir.ToolCall(event.id, event.name, "")
        elif type(event) is ir.ToolCallDelta and event.index in self._calls:
            self._calls[event.index].arguments += event.arguments
        elif type(event) is ir.Finish:
            self._finished = True
            self._answer.finish_reason = event.reason
        elif type(event) is ir.UsageReport:
            self._answer.usage = event.usage
        elif type(event) is ir.StreamError:
            self._failed = True

    def result(self) -> ir.ChatResponse | None:
        """The complete answer, or None if the stream failed or never finished."""
        if self._failed or not self._finished or self._answer.finish_reason == "error":
            return None
        self._answer.text = "".join(self._text)
        self._answer.tool_calls = [self._calls[i] for i in sorted(self._calls)]
        return self._answer


class ResponseCache:
    """Cached answers in the state backend, with a TTL on the router's clock and an LRU bound."""

    def __init__(self, backend: StateBackend, clock: Callable[[], float], *, enabled: bool,
                 ttl: float, max_entries: int) -> None:
        self._backend = backend
        self._clock = clock
        self.enabled = enabled and ttl > 0
        self.ttl = ttl
        self.max_entries = max_entries

    async def get(self, key: str) -> CachedAnswer | None:
        """The live entry for `key`, counting a hit or a miss."""
        raw = await self._backend.cache_get(key)
        entry = None
        if raw is not None:
            try:
                entry, expires = _decode(raw)
            except (ValueError, KeyError, TypeError):
                entry, expires = None, 0.0  # written by an incompatible version: a miss
            if expires <= self._clock():
                entry = None
        await self._backend.add(HITS if entry else MISSES, 1, None)
        return entry

    async def put(self, key: str, entry: CachedAnswer) -> None:
        """Store a complete answer (never an error)."""
        if entry.answer.finish_reason == "error":
            return
        await self._backend.cache_put(key, _encode(entry, self._clock() + self.ttl), self.ttl,
                                      self.max_entries)

    async def stats(self) -> dict[str, Any]:
        """Entries, hits and misses, in the spec's CacheStats shape."""
        hits, misses = await self._backend.counts([HITS, MISSES])
        return {"enabled": self.enabled, "backend": self._backend.kind,
                "entries": await self._backend.cache_size(), "max_entries": self.max_entries,
                "ttl_seconds": self.ttl, "hits": hits, "misses": misses}

    async def clear(self) -> int:
        """Drop every entry; returns how many there were."""
        return await self._backend.cache_clear()
