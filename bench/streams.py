"""A streaming client that checks every frame (see bench.frames): first chunk, drops, merges."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from bench.frames import EventReader, StreamOutcome


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
        outcome.error = f"{type(exc).__name__}: {exc}"[:80]
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
            if index % 100 == 99:  # ramp up (1,000/s), so the listen backlog never overflows
                await asyncio.sleep(0.1)
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
