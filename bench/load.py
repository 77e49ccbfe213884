"""Load runs with wrk: a fixed POST at a fixed concurrency for a fixed time, pinned to a core."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.plan import Plan
from bench.procs import LOAD_CORE, Proc, cpu_seconds

SCRIPT = Path(__file__).with_name("wrk") / "post.lua"


@dataclass(frozen=True)
class Request:
    """One request that a load run repeats: URL, headers and body."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class LoadResult:
    """What one wrk run measured; latencies in milliseconds."""

    concurrency: int
    seconds: float
    requests: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    streams_ok: int = 0
    streams_bad: int = 0
    bad_sample: str = ""
    cpu_s: float | None = None
    load_cpu_s: float | None = None  # wrk's own CPU, plus the mock's where measured

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float | None:
        """CPU time the measured process spent per request, in microseconds."""
        if self.cpu_s is None or not self.requests:
            return None
        return self.cpu_s / self.requests * 1e6


def run_wrk(request: Request, *, concurrency: int, seconds: float, core: str = LOAD_CORE,
            stream_chunks: int | None = None, cpu_of: int | None = None,
            timeout_s: float = 5.0) -> LoadResult:
    """Run wrk (one thread) against `request`; `cpu_of` is a pid whose CPU time is measured."""
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    with tempfile.NamedTemporaryFile(prefix="bench-body-", delete=False) as fh:
        fh.write(request.body)
        body_file = fh.name
    env = {"PATH": os.environ.get("PATH", ""), "BENCH_BODY": body_file,
           "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in request.headers.items())}
    if stream_chunks is not None:
        env["BENCH_STREAM_CHUNKS"] = str(stream_chunks)
    argv = ["taskset", "-c", core, wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s:g}s", "-s", str(SCRIPT), request.url]
    cpu_before = cpu_seconds(cpu_of) if cpu_of else None
    wrk_before = _children_cpu_s()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True,
                              timeout=seconds + timeout_s + 30)
    finally:
        os.unlink(body_file)
    wrk_cpu = _children_cpu_s() - wrk_before  # wrk has been waited for: counted now
    cpu_after = cpu_seconds(cpu_of) if cpu_of else None
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {done.stdout[-500:]} {done.stderr[-500:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    lat = data["latency_us"]
    return LoadResult(
        concurrency=concurrency, seconds=data["duration_us"] / 1e6, requests=data["requests"],
        errors=sum(data["errors"].values()), p50_ms=lat["p50"] / 1e3, p90_ms=lat["p90"] / 1e3,
        p99_ms=lat["p99"] / 1e3, mean_ms=lat["mean"] / 1e3, streams_ok=data["streams_ok"],
        streams_bad=data["streams_bad"], bad_sample=data["bad_sample"],
        cpu_s=(cpu_after - cpu_before) if cpu_before is not None and cpu_after is not None
        else None, load_cpu_s=wrk_cpu)


def _children_cpu_s() -> float:
    """User plus system CPU time of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def as_result(result: LoadResult) -> dict[str, Any]:
    """A run's figures as results.json keeps them, with RPS and CPU per request."""
    data = asdict(result)
    data["rps"] = result.rps
    data["cpu_us_per_request"] = result.cpu_us_per_request
    data["load_cpu_us_per_request"] = (result.load_cpu_s / result.requests * 1e6
                                       if result.load_cpu_s is not None and result.requests
                                       else None)
    return data


def best_round(runs: list[LoadResult], by: str) -> dict[str, Any]:
    """The best of several runs of one load: the most RPS (`by="rps"`) or the lowest p50
    (`by="p50_ms"`). Other work on the machine only ever slows a run, so the best is the
    nearest to the target's own speed; every target gets the same number of rounds. Every
    round's figure is kept (`rounds`), and errors and streams are counted over all rounds:
    no failure hides in a round that was not the best."""
    loads = [as_result(run) for run in runs]
    best = dict((max if by == "rps" else min)(loads, key=lambda load: load[by]))
    best["rounds"] = [load[by] for load in loads]
    for count in ("errors", "streams_ok", "streams_bad"):
        best[count] = sum(load[count] for load in loads)
    best["bad_sample"] = next((load["bad_sample"] for load in loads if load["bad_sample"]), "")
    return best


Server = tuple[Request, list[Proc]]
"""One started server of a setting: the request its load repeats and its processes."""


def alternate(contenders: Mapping[str, Sequence[Server]], plan: Plan,
              upstream: Proc | None = None,
              concurrency: Mapping[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """Alternate runs between contenders (all started, idle when not measured), 64 concurrent
    unless `concurrency` names another number for one, and keep each one's best
    (`best_round`), its CPU that of the contender's processes and its load's CPU that of wrk
    and `upstream`.

    Each contender is one or more servers alike (`Plan.compare_copies`), every contender as
    many: one Python process runs the same code a few per cent faster or slower than
    another (its hash seed, where its memory lies), as much as the differences these runs
    measure. A round runs every contender's first server, then every second one. Every
    run's RPS is kept (`rounds`), in that order for every contender, so `paired_ratio`
    pairs runs of the same round and server."""
    runs: dict[str, list[LoadResult]] = {name: [] for name in contenders}
    connections = {name: (concurrency or {}).get(name, 64) for name in contenders}
    for name, copies in contenders.items():
        for request, _ in copies:
            run_wrk(request, concurrency=connections[name], seconds=plan.warmup_s)
    for _ in range(plan.compare_rounds):
        for alike in zip(*contenders.values(), strict=True):
            for name, (request, procs) in zip(contenders, alike, strict=True):
                cpu_before = sum(cpu_seconds(p.pid) for p in procs)
                upstream_before = cpu_seconds(upstream.pid) if upstream else 0.0
                result = run_wrk(request, concurrency=connections[name],
                                 seconds=plan.compare_seconds)
                cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
                upstream_cpu = cpu_seconds(upstream.pid) - upstream_before if upstream else 0.0
                runs[name].append(replace(result, cpu_s=cpu,
                                          load_cpu_s=(result.load_cpu_s or 0.0) + upstream_cpu))
    return {name: best_round(rounds, "rps") for name, rounds in runs.items()}


HALF_LOAD = "1 at 32"
"""The one worker of the workers' comparison again, at 32 connections: about what each of
two workers serves of the 64 (the kernel spreads connections over them by a hash)."""

CAPACITY_LOADS = (64, 128)
"""The workers' comparison offers one worker and two each of these loads and judges each by
its best: 64, the one worker's load in every other measure, and 128, 64 for each of two.
At 64 in all each of two workers holds about 32 connections, and a worker given fewer
connections serves fewer requests an event-loop turn and spends more CPU on each (see
`HALF_LOAD`); the same loads for both sides, each side's best, is their capacity."""


def at_load(workers: str, connections: int) -> str:
    """The contender's name for `workers` ("1" or "2") at `connections`: plain at 64."""
    return workers if connections == 64 else f"{workers} at {connections}"


def capacity(out: Mapping[str, Mapping[str, Any]], workers: str) -> str:
    """Which of `workers`' contenders at `CAPACITY_LOADS` served the most (its name in `out`);
    the one at 64 when the others were not measured."""
    names = [at_load(workers, load) for load in CAPACITY_LOADS if at_load(workers, load) in out]
    return max(names, key=lambda name: out[name].get("rps") or 0.0)


def scaling_ceiling(gateway_us: float | None, load_us: float | None) -> float | None:
    """The most two workers can get over one on a two-core machine that also runs the load:
    one worker is bound by core 0 (1/g requests a second, g its CPU a request), and two fill
    both cores with the gateway's work and the load's (at most 2/(g + l), l the CPU a
    request of wrk and the mock). So the ratio cannot pass 2g / (g + l)."""
    if not gateway_us or load_us is None:
        return None
    return 2 * gateway_us / (gateway_us + load_us)
