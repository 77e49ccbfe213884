"""The benchmark run: every phase in order, each target against the same mock.

Phases: the mock's own capacity; direct-to-mock baselines; per target a non-stream sweep
over concurrencies (RPS, latency, CPU per request, RSS) and a stream run (streams/s with
every frame checked, time to first chunk); then, for the gateway only, telemetry on/off,
one/two workers, a py-spy profile and the many-open-streams check. A target that fails is
recorded with its reason and the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench import profile as profiling
from bench.compare import paired_ratio
from bench.load import (
    CAPACITY_LOADS,
    HALF_LOAD,
    LoadResult,
    Request,
    Server,
    alternate,
    as_result,
    at_load,
    best_round,
    capacity,
    run_wrk,
    scaling_ceiling,
)
from bench.mock import STREAM_CHUNKS, Mock
from bench.plan import Plan
from bench.procs import (
    GATEWAY_CORE,
    LOAD_CORE,
    Proc,
    base_env,
    cpu_seconds,
    free_port,
    rss_mb,
    start,
    wait_ready,
)
from bench.streams import first_chunk_times, many_open_streams
from bench.targets import (
    BENCH_PYTHON,
    GATEWAY,
    GATEWAY_PYTHON,
    ROOT,
    Route,
    Target,
    gateway_env,
    launch_gateway,
    telemetry_env,
)

Result = dict[str, Any]
DIRECT = Route("mock (direct)", "/v1/chat/completions", body={"model": "bench-model",
                                                              "messages": []})


def _sweep_at(request: Request, plan: Plan, concurrency: int, cpu_of: int | None = None
              ) -> Result:
    """One point of a sweep; at 1 concurrent, the round with the lowest p50."""
    runs = [run_wrk(request, concurrency=concurrency, seconds=plan.seconds_at(concurrency),
                    cpu_of=cpu_of) for _ in range(plan.rounds_at(concurrency))]
    return best_round(runs, "p50_ms" if concurrency == 1 else "rps")


def route_url(port: int, route: Route) -> str:
    """Where a target on `port` serves `route`."""
    return f"http://127.0.0.1:{port}{route.path}"


def mock_capacity(mock: Mock, plan: Plan) -> Result:
    """The mock alone, with wrk on the other (otherwise idle) core: it must far outrun all."""
    request = Request(mock.json_url + DIRECT.path, DIRECT.payload(stream=False))
    result = run_wrk(request, concurrency=64, seconds=plan.seconds_at(64), core=GATEWAY_CORE)
    return as_result(result)


def direct_baseline(mock: Mock, plan: Plan) -> Result:
    """Direct-to-mock runs with the same placement as the targets (wrk on the load core)."""
    request = Request(mock.json_url + DIRECT.path, DIRECT.payload(stream=False))
    sweep = {str(c): _sweep_at(request, plan, c) for c in plan.concurrencies}
    stream_url = mock.sse_url + DIRECT.path
    body = DIRECT.payload(stream=True)
    stream = [run_wrk(Request(stream_url, body), concurrency=plan.stream_concurrency,
                      seconds=plan.stream_seconds, stream_chunks=STREAM_CHUNKS)
              for _ in range(plan.stream_rounds)]
    first = first_chunk_times(stream_url, body, {}, "openai", count=plan.first_chunk_count,
                              budget_s=plan.first_chunk_budget_s)
    return {"label": DIRECT.label, "sweep": sweep, "stream": best_round(stream, "rps"),
            "first_chunk": asdict(first)}


def _launch(target: Target, upstream: str, log_dir: Path, route: Route, *, stream: bool,
            extra: Mapping[str, str] | None = None) -> tuple[Proc, int]:
    port = free_port()
    proc = target.launch(upstream, port, log_dir, dict(extra or {}))
    try:
        wait_ready(proc, route_url(port, route), body=route.payload(stream=stream),
                   headers=route.request_headers(upstream), timeout=target.ready_timeout)
    except Exception:
        proc.stop()
        raise
    return proc, port


def _present(port: int, route: Route, upstream: str) -> bool:
    """Whether the running target serves `route` at all (an optional route may be absent)."""
    answer = httpx.post(route_url(port, route), content=route.payload(stream=False),
                        headers=route.request_headers(upstream), timeout=10)
    return answer.status_code not in (404, 405)


def sweep_target(target: Target, mock: Mock, plan: Plan, log_dir: Path) -> dict[str, Result]:
    """Non-stream runs of every route over the plan's concurrencies, with RSS along the way."""
    rows: dict[str, Result] = {}
    proc, port = _launch(target, mock.json_url, log_dir, target.routes[0], stream=False)
    try:
        time.sleep(1.0)
        idle = rss_mb(proc.pid)
        steps: list[float] = []
        for route in target.routes:
            if route.optional and not _present(port, route, mock.json_url):
                rows[route.label] = {"status": "absent", "reason": "route answers 404"}
                continue
            request = Request(route_url(port, route), route.payload(stream=False),
                              route.request_headers(mock.json_url))
            run_wrk(request, concurrency=64, seconds=plan.warmup_s)
            sweep: Result = {}
            for concurrency in plan.concurrencies:
                sweep[str(concurrency)] = _sweep_at(request, plan, concurrency, proc.pid)
                steps.append(rss_mb(proc.pid))
            rows[route.label] = {"status": "ok", "sweep": sweep}
        soak = _soak(proc, port, target, mock, plan) if target.group == "project" else {}
        for row in rows.values():
            row.update(rss_idle_mb=idle, rss_steps_mb=steps, **soak)
    finally:
        proc.stop()
    return rows


def _soak(proc: Proc, port: int, target: Target, mock: Mock, plan: Plan) -> Result:
    """One more long run at 64 concurrent after the sweep: RSS must not grow during it."""
    route = target.routes[0]
    before = rss_mb(proc.pid)
    request = Request(route_url(port, route), route.payload(stream=False),
                      route.request_headers(mock.json_url))
    run = run_wrk(request, concurrency=64, seconds=plan.soak_seconds, cpu_of=proc.pid)
    return {"soak": {**as_result(run), "rss_before_mb": before,
                     "rss_after_mb": rss_mb(proc.pid)}}


def stream_target(target: Target, mock: Mock, plan: Plan, log_dir: Path,
                  skip: set[str]) -> dict[str, Result]:
    """Streams/s with every frame checked (the best of the plan's rounds, alternating between
    the routes), then time to first chunk, per route."""
    rows: dict[str, Result] = {}
    routes = [r for r in target.routes if r.label not in skip]
    if not routes:
        return rows
    proc, port = _launch(target, mock.sse_url, log_dir, routes[0], stream=True)
    try:
        requests = {route.label: Request(route_url(port, route), route.payload(stream=True),
                                         route.request_headers(mock.sse_url))
                    for route in routes}
        runs: dict[str, list[LoadResult]] = {label: [] for label in requests}
        for request in requests.values():
            run_wrk(request, concurrency=plan.stream_concurrency, seconds=plan.warmup_s,
                    stream_chunks=STREAM_CHUNKS)
        for _ in range(plan.stream_rounds):
            for label, request in requests.items():
                runs[label].append(run_wrk(
                    request, concurrency=plan.stream_concurrency, seconds=plan.stream_seconds,
                    stream_chunks=STREAM_CHUNKS, cpu_of=proc.pid))
        for route in routes:
            request = requests[route.label]
            first = first_chunk_times(request.url, request.body, request.headers,
                                      route.stream_format, count=plan.first_chunk_count,
                                      budget_s=plan.first_chunk_budget_s)
            rows[route.label] = {"stream": best_round(runs[route.label], "rps"),
                                 "first_chunk": asdict(first),
                                 "rss_after_streams_mb": rss_mb(proc.pid)}
    finally:
        proc.stop()
    return rows


def telemetry_cost(mock: Mock, plan: Plan, log_dir: Path) -> Result:
    """Gateway throughput with telemetry off and on (exporting OTLP to the mock)."""
    route = GATEWAY.routes[0]
    settings = {"off": {}, "on": telemetry_env(mock.json_url)}
    contenders: dict[str, list[Server]] = {name: [] for name in settings}
    try:
        for copy in range(1, plan.compare_copies + 1):
            for name, extra in settings.items():
                logs = log_dir / f"telemetry-{name}-{copy}"  # each copy's own log
                logs.mkdir(exist_ok=True)
                proc, port = _launch(GATEWAY, mock.json_url, logs, route, stream=False,
                                     extra=extra)
                contenders[name].append(
                    (Request(route_url(port, route), route.payload(stream=False)), [proc]))
        out: Result = alternate(contenders, plan)
    finally:
        for copies in contenders.values():
            for _, procs in copies:
                procs[0].stop()
    out["best_ratio"] = out["on"]["rps"] / out["off"]["rps"] if out["off"]["rps"] else None
    out["ratio"] = paired_ratio(out, "on", "off")
    return out


def start_workers(count: int, upstream: str, log_dir: Path) -> tuple[int, Proc]:
    """`python -m gateway` with SERVER_WORKERS=`count`, allowed on the first `count` cores."""
    port = free_port()
    env = gateway_env(upstream, port, {"SERVER_WORKERS": str(count)})
    cores = ",".join([GATEWAY_CORE, LOAD_CORE][:count])
    proc = start(f"gateway-{count}-workers", [str(GATEWAY_PYTHON), "-m", "gateway"],
                 core=cores, env=env, log_dir=log_dir, cwd=ROOT)
    wait_ready(proc, f"http://127.0.0.1:{port}/ready", body=None, headers={}, timeout=30)
    return port, proc


def workers_scaling(mock: Mock, plan: Plan, log_dir: Path) -> Result:
    """One worker on core 0 against SERVER_WORKERS=2 allowed on cores 0 and 1, each at every
    load of `CAPACITY_LOADS` and judged by its best (`capacity`); the one worker also at 32
    (`HALF_LOAD`), about what each of two serves of 64."""
    route = GATEWAY.routes[0]
    contenders: dict[str, list[Server]] = {"1": [], "2": []}
    started: list[Proc] = []
    try:
        for copy in range(1, plan.compare_copies + 1):
            for count in (1, 2):
                logs = log_dir / f"workers-{count}-{copy}"  # each copy's own log
                logs.mkdir(exist_ok=True)
                port, proc = start_workers(count, mock.json_url, logs)
                started.append(proc)
                contenders[str(count)].append(
                    (Request(route_url(port, route), route.payload(stream=False)), [proc]))
        loads = {HALF_LOAD: 32}
        for side in ("1", "2"):
            for load in CAPACITY_LOADS:
                loads[at_load(side, load)] = load
                contenders[at_load(side, load)] = contenders[side]
        contenders[HALF_LOAD] = contenders["1"]
        out: Result = alternate(contenders, plan, upstream=mock.proc, concurrency=loads)
    finally:
        for proc in started:
            proc.stop()
    one, two = capacity(out, "1"), capacity(out, "2")
    out["best"] = {"1": one, "2": two}
    # The ratio of the best runs, not `paired_ratio`: the one worker has core 0 alone, the
    # two have both cores, so a round in which core 0 is slowed by other work lowers one side
    # more than the other, and pairing would count that as scaling.
    out["ratio"] = out[two]["rps"] / out[one]["rps"] if out[one]["rps"] else None
    out["ratio_at_64"] = out["2"]["rps"] / out["1"]["rps"] if out["1"]["rps"] else None
    out["paired_ratio"] = paired_ratio(out, two, one)
    out["ceiling"] = scaling_ceiling(out[one].get("cpu_us_per_request"),
                                     out[one].get("load_cpu_us_per_request"))
    return out


def gateway_profile(mock: Mock, plan: Plan, log_dir: Path) -> Result:
    """py-spy on the gateway while wrk drives the non-stream route at 64 concurrent."""
    route = GATEWAY.routes[0]
    proc, port = _launch(GATEWAY, mock.json_url, log_dir, route, stream=False)
    try:
        request = Request(route_url(port, route), route.payload(stream=False))
        run_wrk(request, concurrency=64, seconds=plan.warmup_s)
        out_file = log_dir / "profile-raw.txt"
        py_spy = BENCH_PYTHON.with_name("py-spy")
        spy = profiling.record(py_spy, proc.pid, plan.profile_seconds, out_file, core=LOAD_CORE)
        time.sleep(0.3)
        load = run_wrk(request, concurrency=64, seconds=plan.profile_seconds + 1,
                       cpu_of=proc.pid)
        found = profiling.collect(spy, out_file, timeout=plan.profile_seconds + 60)
    finally:
        proc.stop()
    return {"route": route.label, "load_while_profiling": as_result(load), **asdict(found)}


def _slow_upstream(plan: Plan, log_dir: Path, name: str) -> tuple[Proc, str]:
    port = free_port()
    proc = start(name, [str(BENCH_PYTHON), "-m", "bench.slow_upstream", str(port),
                        str(plan.open_streams), str(plan.open_hold_s), str(plan.open_wait_s)],
                 core=LOAD_CORE, env=base_env(), log_dir=log_dir, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url + "/stats", body=None, headers={}, timeout=15)
    return proc, url


def _hold_streams(url: str, route: Route, plan: Plan, pid: int | None) -> Result:
    result = many_open_streams(
        url, route.payload(stream=True), {}, route.stream_format, count=plan.open_streams,
        budget_s=plan.open_wait_s + plan.open_hold_s + 30,
        sample_rss=(lambda: rss_mb(pid)) if pid else (lambda: 0.0))
    return asdict(result)


def open_streams(plan: Plan, log_dir: Path) -> Result:
    """Many streams held open at once through one worker against a slow upstream.

    The same check straight at a slow upstream first shows what the client side manages.
    """
    route = GATEWAY.routes[0]
    slow, upstream = _slow_upstream(plan, log_dir, "slow-upstream-direct")
    try:
        direct = _hold_streams(upstream + DIRECT.path, DIRECT, plan, None)
        direct["upstream_max_open"] = httpx.get(upstream + "/stats", timeout=10).json()["max_open"]
    finally:
        slow.stop()
    slow, upstream = _slow_upstream(plan, log_dir, "slow-upstream")
    # The upstream pool must hold every stream's connection at once (the default is 512).
    extra = {"CLIENT_MAX_CONNECTIONS": str(plan.open_streams + 500)}
    port = free_port()
    gateway = launch_gateway(upstream, port, log_dir, extra)
    try:
        wait_ready(gateway, f"http://127.0.0.1:{port}/health", body=None, headers={},
                   timeout=30)
        idle = rss_mb(gateway.pid)
        cpu_before = cpu_seconds(gateway.pid)
        result = _hold_streams(route_url(port, route), route, plan, gateway.pid)
        stats = httpx.get(upstream + "/stats", timeout=10).json()
        return {**result, "upstream_max_open": stats["max_open"], "rss_idle_mb": idle,
                "gateway_cpu_s": cpu_seconds(gateway.pid) - cpu_before, "direct": direct,
                "client_max_connections": extra["CLIENT_MAX_CONNECTIONS"]}
    finally:
        gateway.stop()
        slow.stop()
