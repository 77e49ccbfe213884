"""`python -m bench`: run every phase, save bench/results/, write docs/benchmarks.md + chart.

Run it through `make bench` (which prepares the tools); BENCH_QUICK=1 for a short run.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import interpreter, peers, plan, run, wakeup
from bench.chart import draw
from bench.mock import Mock, start_mock
from bench.procs import LOAD_CORE
from bench.report import render
from bench.targets import ALL, BENCH_PYTHON, GATEWAY_PYTHON, ROOT, Target

RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.png"


def busy_share(seconds: float = 2.0) -> float:
    """How busy the CPUs were (0..1) over `seconds` before anything of the bench ran."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)
    busy_before, total_before = sample()
    time.sleep(seconds)
    busy_after, total_after = sample()
    return (busy_after - busy_before) / max(1, total_after - total_before)


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, kernel and load, from /proc."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                  if ln.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().split()
    mem_gb = int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024 / 1024
    return {"cores": os.cpu_count(), "cpu": model, "memory_gb": round(mem_gb, 1),
            "kernel": platform.release(), "load_average_at_start": os.getloadavg(),
            "busy_before_start": busy_share(), "interpreters": interpreter.survey(),
            "wakeup": _wakeup(), "idle": wakeup.idling()}


def _wakeup() -> dict[str, Any]:
    """`bench.wakeup`'s round trips, or why there are none (the run goes on without)."""
    try:
        return dict(wakeup.measure())
    except Exception as exc:  # context for the report, never a failed run
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


def versions() -> dict[str, str]:
    """Every component's version, as installed for this run."""
    out = {"gateway (git)": peers.git_revision(ROOT),
           "python": platform.python_version()}
    for name in ("starlette", "uvicorn", "httpx", "httpcore", "pydantic", "orjson", "uvloop",
                 "httptools"):
        out[name] = peers.venv_package_version(GATEWAY_PYTHON, name)
    for name in ("aiohttp", "httpx-aiohttp", "py-spy", "matplotlib"):
        out[name] = peers.venv_package_version(BENCH_PYTHON, name)
    out["LiteLLM proxy"] = peers.LITELLM_VERSION
    out["Portkey gateway"] = peers.PORTKEY_VERSION
    out["node"] = peers.tool_version(["node", "--version"])
    out["nginx (mock)"] = peers.tool_version(["nginx", "-v"])
    out["wrk"] = peers.tool_version(["wrk", "-v"], r"wrk (\S+)")
    return out


def _attempt(results: dict[str, Any], key: str, phase: Callable[[], Any], *,
             store: bool = True) -> Any:
    """Run one phase; a failure becomes {"status": "failed", ...} instead of ending the run."""
    started = time.monotonic()
    print(f"[bench] {key} ...", flush=True)
    try:
        value = phase()
    except Exception as exc:
        value = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:600]}
        traceback.print_exc()
    if store:
        results[key] = value
    print(f"[bench] {key} done in {time.monotonic() - started:.0f}s", flush=True)
    return value


def _failed(value: Any) -> bool:
    return isinstance(value, dict) and value.get("status") == "failed"


def measure_target(target: Target, results: dict[str, Any], the_plan: plan.Plan, mock: Mock,
                   log_dir: Path) -> None:
    """A target's rows: non-stream sweep, then streams, or why it could not be measured."""
    rows: dict[str, Any] = results.setdefault("rows", {})
    meta = {"target": target.key, "group": target.group, "version": target.version()}
    reason = target.unavailable()
    if reason is not None:
        for route in target.routes:
            rows[route.label] = {**meta, "status": "unavailable", "reason": reason}
        return
    swept = _attempt(results, f"sweep {target.key}",
                     lambda: run.sweep_target(target, mock, the_plan, log_dir), store=False)
    for route in target.routes:
        rows[route.label] = {**meta, **(swept if _failed(swept) else swept[route.label])}
    measured = [r for r in target.routes if rows[r.label].get("status") == "ok"]
    if not measured:
        return
    skip = {r.label for r in target.routes if r not in measured}
    streamed = _attempt(results, f"streams {target.key}",
                        lambda: run.stream_target(target, mock, the_plan, log_dir, skip),
                        store=False)
    for route in measured:
        if _failed(streamed):
            rows[route.label]["stream_error"] = streamed["reason"]
        else:
            rows[route.label].update(streamed[route.label])


def main() -> int:
    """Run the whole benchmark and write the report."""
    the_plan = plan.from_env()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the open-streams check
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # keep the gateway's core for the gateway
    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = RESULTS / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"plan": the_plan.name, "started": stamp,
                               "plan_detail": the_plan.__dict__}
    results["install"] = {"litellm": peers.ensure_litellm(), "portkey": peers.ensure_portkey()}
    results["machine"] = machine()
    results["versions"] = versions()
    mock = start_mock(log_dir, log_dir)
    try:
        _attempt(results, "mock_capacity", lambda: run.mock_capacity(mock, the_plan))
        _attempt(results, "direct", lambda: run.direct_baseline(mock, the_plan))
        for target in ALL:
            measure_target(target, results, the_plan, mock, log_dir)
        _attempt(results, "telemetry", lambda: run.telemetry_cost(mock, the_plan, log_dir))
        _attempt(results, "workers", lambda: run.workers_scaling(mock, the_plan, log_dir))
        _attempt(results, "profile", lambda: run.gateway_profile(mock, the_plan, log_dir))
    finally:
        mock.proc.stop()
    _attempt(results, "open_streams", lambda: run.open_streams(the_plan, log_dir))
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["seconds"] = round(time.time() - started)
    text = json.dumps(results, indent=1, default=str)
    (log_dir / "results.json").write_text(text)
    results = json.loads(text)  # render exactly what was saved (string keys throughout)
    chart_error = None
    try:
        draw(results, CHART)
    except Exception as exc:  # the table matters more than the picture
        chart_error = f"{type(exc).__name__}: {exc}"
    DOC.write_text(render(results, chart=CHART.name if chart_error is None else None))
    print(f"[bench] wrote {DOC.relative_to(ROOT)} and {log_dir.relative_to(ROOT)}/results.json"
          f" in {results['seconds']}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
