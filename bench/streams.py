"""A streaming client that checks every frame: time to first chunk, drops, merges.

Each stream must carry the mock's tokens `[t00] .. [t19]` in order, one per SSE event,
each parsed as JSON from the event's `data:`; anything else counts as a broken stream.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.mock import STREAM_CHUNKS, token

EXPECTED = [token(i) for i in range(STREAM_CHUNKS)]


def event_text(payload: Any, stream_format: str) -> str:
    """The text an event carries, in the OpenAI chunk shape or the gateway's generate shape."""
    if not isinstance(payload, dict):
        return ""
    if stream_format == "generate":
        response = payload.get("response") or {}
        return str(response.get("content") or "")
    choices = payload.get("choices") or []
    if not choices:
        return ""
    return str((choices[0].get("delta") or {}).get("content") or "")


@dataclass
class StreamOutcome:
    """One stream: seconds to the first text, in total, and what went wrong (if anything)."""

    first_text_s: float | None = None
    total_s: float = 0.0
    texts: list[str] = field(default_factory=list)
    done: bool = False
    error: str = ""

    @property
    def intact(self) -> bool:
        """Every token once, in order, one per event, then `[DONE]`."""
        return not self.error and self.done and self.texts == EXPECTED


class EventReader:
    """Splits bytes into SSE events as they arrive and records their texts."""

    def __init__(self, outcome: StreamOutcome, stream_format: str, started: float) -> None:
        self._buffer = b""
        self._outcome = outcome
        self._format = stream_format
        self._started = started

    def feed(self, data: bytes) -> None:
        """Consume a chunk of the body."""
        self._buffer += data.replace(b"\r\n", b"\n")
        while b"\n\n" in self._buffer:
            event, self._buffer = self._buffer.split(b"\n\n", 1)
            self._event(event)

    def _event(self, event: bytes) -> None:
        data = b"\n".join(line[5:].strip() for line in event.split(b"\n")
                          if line.startswith(b"data:"))
        if not data:
            return
        if data == b"[DONE]":
            self._outcome.done = True
            return
        text = event_text(json.loads(data), self._format)
        if text:
            if self._outcome.first_text_s is None:
                self._outcome.first_text_s = time.perf_counter() - self._started
            self._outcome.texts.append(text)


async def one_stream(session: aiohttp.ClientSession, url: str, body: bytes,
                     headers: Mapping[str, str], stream_format: str) -> StreamOutcome:
    """POST `body` and read the streamed answer event by event."""
    outcome = StreamOutcome()
    started = time.perf_counter()
    reader = EventReader(outcome, stream_format, started)
    try:
        async with session.post(url, data=body, headers={
                "Content-Type": "application/json", **headers}) as response:
            if response.status != 200:
                outcome.error = f"HTTP {response.status}"
                return outcome
            async for chunk in response.content.iter_any():
                reader.feed(chunk)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        outcome.error = type(exc).__name__
    outcome.total_s = time.perf_counter() - started
    return outcome


@dataclass
class FirstChunkResult:
    """Time to first text over sequential streams, in milliseconds, and broken streams."""

    streams: int
    broken: int
    p50_ms: float
    p99_ms: float
    first_error: str = ""


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


async def _first_chunks(url: str, body: bytes, headers: Mapping[str, str], stream_format: str,
                        count: int, budget_s: float) -> FirstChunkResult:
    times: list[float] = []
    broken, first_error = 0, ""
    deadline = time.monotonic() + budget_s
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            outcome = await one_stream(session, url, body, headers, stream_format)
            if outcome.intact and outcome.first_text_s is not None:
                times.append(outcome.first_text_s * 1e3)
            else:
                broken += 1
                first_error = first_error or outcome.error or f"texts={outcome.texts[:4]}"
    return FirstChunkResult(streams=len(times) + broken, broken=broken,
                            p50_ms=_percentile(times, 50), p99_ms=_percentile(times, 99),
                            first_error=first_error)


def first_chunk_times(url: str, body: bytes, headers: Mapping[str, str], stream_format: str,
                      *, count: int, budget_s: float) -> FirstChunkResult:
    """Open `count` streams one after another (within `budget_s`) and time their first text."""
    return asyncio.run(_first_chunks(url, body, headers, stream_format, count, budget_s))


@dataclass
class OpenStreamsResult:
    """The many-open-streams check: how many were intact, how long it took, peak memory."""

    streams: int
    intact: int
    errors: dict[str, int]
    seconds: float
    peak_rss_mb: float


async def _many(url: str, body: bytes, headers: Mapping[str, str], stream_format: str,
                count: int, budget_s: float, sample_rss: Callable[[], float]
                ) -> OpenStreamsResult:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=budget_s)
    peak = 0.0
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        for index in range(count):
            tasks.append(asyncio.create_task(
                one_stream(session, url, body, headers, stream_format)))
            if index % 200 == 199:  # ramp up, so the listen backlog never overflows
                await asyncio.sleep(0.05)
                peak = max(peak, sample_rss())
        pending = set(tasks)
        while pending and time.monotonic() - started < budget_s + 5:
            _, pending = await asyncio.wait(pending, timeout=0.25)
            peak = max(peak, sample_rss())
        for task in pending:
            task.cancel()
        outcomes = [t.result() for t in tasks if t.done() and not t.cancelled()]
    errors: dict[str, int] = {}
    for outcome in outcomes:
        if not outcome.intact:
            key = outcome.error or "broken stream"
            errors[key] = errors.get(key, 0) + 1
    if len(outcomes) < count:
        errors["unfinished"] = count - len(outcomes)
    return OpenStreamsResult(streams=count, intact=sum(o.intact for o in outcomes),
                             errors=errors, seconds=time.monotonic() - started,
                             peak_rss_mb=peak)


def many_open_streams(url: str, body: bytes, headers: Mapping[str, str], stream_format: str,
                      *, count: int, budget_s: float, sample_rss: Callable[[], float]
                      ) -> OpenStreamsResult:
    """Open `count` streams at once against a slow upstream and check every one."""
    return asyncio.run(_many(url, body, headers, stream_format, count, budget_s, sample_rss))
