"""A bounded load run against a gateway process, watching its memory and file descriptors.

Workers send a steady mix of streamed and whole answers, across every provider and both the
native and the OpenAI API, for a fixed time. A sampler reads the process's resident memory
(/proc/PID/status VmRSS) and open descriptors (/proc/PID/fd) twice a second. After a
warm-up (pools filling, caches and code paths settling), memory should be flat: the report
gives the least-squares growth rate in MiB per minute.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HI = [{"role": "user", "content": "hi"}]


@dataclass
class Sample:
    """One reading of the process."""

    at: float
    rss_kib: int
    fds: int


@dataclass
class SoakReport:
    """What a soak run did and what the process looked like."""

    seconds: float
    warmup: float
    requests: int = 0
    streamed: int = 0
    errors: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    @property
    def steady(self) -> list[Sample]:
        """The samples after the warm-up."""
        start = self.samples[0].at + self.warmup if self.samples else 0.0
        return [s for s in self.samples if s.at >= start]

    @property
    def rss_growth_mib_per_min(self) -> float:
        """Least-squares slope of resident memory over the steady part."""
        points = self.steady
        if len(points) < 2:
            return 0.0
        xs = [p.at for p in points]
        ys = [p.rss_kib / 1024 for p in points]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mean_x) ** 2 for x in xs)
        cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
        return cov / var * 60 if var else 0.0

    def summary(self) -> str:
        """The figures, one line."""
        steady = self.steady or self.samples
        return (f"soak {self.seconds:.0f}s: {self.requests} requests "
                f"({self.streamed} streamed, {self.requests / self.seconds:.0f}/s), "
                f"{len(self.errors)} errors; RSS {steady[0].rss_kib / 1024:.1f} -> "
                f"{steady[-1].rss_kib / 1024:.1f} MiB after warm-up "
                f"(peak {max(s.rss_kib for s in self.samples) / 1024:.1f}), growth "
                f"{self.rss_growth_mib_per_min:+.2f} MiB/min; fds {steady[0].fds} -> "
                f"{steady[-1].fds} (max {max(s.fds for s in steady)})")


def read_process(pid: int) -> Sample:
    """Resident memory and open descriptors of `pid` now."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines()
               if line.startswith("VmRSS:"))
    return Sample(at=time.monotonic(), rss_kib=rss, fds=len(os.listdir(f"/proc/{pid}/fd")))


async def _sampler(pid: int, report: SoakReport, stop: asyncio.Event) -> None:
    while not stop.is_set():
        report.samples.append(read_process(pid))
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except TimeoutError:
            pass


async def _one(client: httpx.AsyncClient, url: str, provider: str, model: str, n: int,
               report: SoakReport) -> None:
    """One request of the mix: native or OpenAI API, streamed or whole."""
    stream = n % 2 == 0
    if n % 4 < 2:
        target = f"{url}/llms/{provider}/generate"
        body = {"model": model, "messages": HI, "stream": stream}
    else:
        target = f"{url}/v1/chat/completions"
        body = {"model": f"{provider}/{model}", "messages": HI, "stream": stream}
    try:
        async with client.stream("POST", target, json=body) as response:
            data = await response.aread()
        ok = response.status_code == 200 and (not stream or data.endswith(b"[DONE]\n\n"))
        if not ok:
            report.errors.append(f"{target} {response.status_code} {data[-200:]!r}")
    except httpx.HTTPError as exc:
        report.errors.append(f"{target} {type(exc).__name__}")
    report.requests += 1
    report.streamed += stream


async def _worker(url: str, models: list[tuple[str, str]], deadline: float, offset: int,
                  report: SoakReport) -> None:
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        n = offset
        while time.monotonic() < deadline:
            provider, model = models[n % len(models)]
            await _one(client, url, provider, model, n // len(models), report)
            n += 1


async def soak(url: str, pid: int, models: list[tuple[str, str]], seconds: float,
               workers: int = 8) -> SoakReport:
    """Run the mix with `workers` concurrent clients for `seconds`; sample `pid` throughout."""
    report = SoakReport(seconds=seconds, warmup=max(5.0, seconds * 0.2))
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sampler(pid, report, stop))
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_worker(url, models, deadline, i, report) for i in range(workers)))
    await asyncio.sleep(1.0)  # let connections settle before the last reading
    stop.set()
    await sampler
    report.samples.append(read_process(pid))
    return report
