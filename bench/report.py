"""docs/benchmarks.md from one run's results: the setup, the targets, the tables, the profile."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.load import CAPACITY_LOADS, HALF_LOAD, at_load
from bench.mock import STREAM_CHUNKS

Results = dict[str, Any]
GENERATE = "gateway POST /llms/openai/generate"
CHAT = "gateway POST /v1/chat/completions"


def _num(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    return f"{value:,.{digits}f}{suffix}"


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


class Figures:
    """The figures the targets are judged on, read out of one run's results."""

    def __init__(self, results: Results) -> None:
        self.r = results
        self.rows: dict[str, Any] = results.get("rows", {})
        self.top = str(max(results["plan_detail"]["concurrencies"]))

    def rps(self, label: str, concurrency: str = "64") -> float | None:
        """Non-stream requests/s of a row at `concurrency`."""
        value = _get(self.rows.get(label), "sweep", concurrency, "rps")
        return float(value) if value else None

    def group_rps(self, target: str) -> float | None:
        """RPS at 64 of the first measured row of `target`."""
        for label, row in self.rows.items():
            if row.get("target") == target and self.rps(label):
                return self.rps(label)
        return None

    def added(self, label: str, metric: str) -> float | None:
        """A row's latency at 1 concurrent minus the direct-to-mock one, in ms."""
        mine = _get(self.rows.get(label), "sweep", "1", metric)
        direct = _get(self.r, "direct", "sweep", "1", metric)
        return None if mine is None or direct is None else mine - direct

    def added_first_chunk(self, label: str) -> float | None:
        """A row's time to first chunk (p50) minus the direct-to-mock one, in ms."""
        mine = _get(self.rows.get(label), "first_chunk", "p50_ms")
        direct = _get(self.r, "direct", "first_chunk", "p50_ms")
        return None if mine is None or direct is None else mine - direct

    def gateway_labels(self) -> list[str]:
        """The gateway's measured routes."""
        return [lb for lb in (GENERATE, CHAT) if _get(self.rows.get(lb), "status") == "ok"]


def _verdict(value: float | None, goal: Callable[[float], bool]) -> str:
    if value is None:
        return "not measured"
    return "**pass**" if goal(value) else "**FAIL**"


def _best(workers: dict[str, Any], count: str) -> tuple[int, dict[str, Any]]:
    """The load (connections) at which `count` workers are judged (`bench.load.capacity`)
    and that run's figures; results from before the comparison took several loads have only
    the one at 64."""
    name = (workers.get("best") or {}).get(count, count)
    load = next((load for load in CAPACITY_LOADS if at_load(count, load) == name), 64)
    return load, workers.get(name) or {}


def _ceiling_text(workers: dict[str, Any]) -> str:
    """What the load's CPU lets two workers reach here (`bench.load.scaling_ceiling`)."""
    ceiling = workers.get("ceiling")
    one = _best(workers, "1")[1]
    load = one.get("load_cpu_us_per_request")
    if ceiling is None or load is None:
        return ""
    gateway = _num(one["cpu_us_per_request"])
    return (f" With one worker, wrk and nginx took {_num(load)} µs of CPU a request, so two "
            f"workers, filling both cores with the gateway's work and theirs, reach at most "
            f"about 2g / (g + l) = {_num(ceiling, 2)}\u00d7 here (g = {gateway} µs, the one "
            f"worker's CPU a request; l = {_num(load)} µs; an estimate from one worker's "
            f"best run, as both figures move from run to run).{_shared_core_text(workers)}")


def _shared_core_text(workers: dict[str, Any]) -> str:
    """What a request cost with two workers against one (the gateway's CPU and the load's),
    and what both cores allow at that cost."""
    one, two = _best(workers, "1")[1], _best(workers, "2")[1]
    if two.get("cpu_us_per_request") is None or two.get("load_cpu_us_per_request") is None:
        return ""
    gateway, load = two["cpu_us_per_request"], two["load_cpu_us_per_request"]
    return (f" With two, the gateway took {_num(gateway)} µs and wrk and nginx {_num(load)} "
            f"µs a request, {_num(gateway + load)} µs in all against "
            f"{_num(one['cpu_us_per_request'] + one['load_cpu_us_per_request'])} with one; at "
            f"that cost both cores allow at most 2g / (g\u2082 + l\u2082) = "
            f"{_num(2 * one['cpu_us_per_request'] / (gateway + load), 2)}\u00d7.")


def _loads_text(workers: dict[str, Any]) -> str:
    """Every load each side was offered, and the ratio at 64 connections for both."""
    listed = []
    for side, name in (("1", "one"), ("2", "two")):
        runs = [f"{_num(run['rps'])} RPS at {load}" for load in CAPACITY_LOADS
                if (run := workers.get(at_load(side, load))) and run.get("rps")]
        if not runs:
            return ""
        listed.append(f"{name}: {', '.join(runs)}")
    at_64 = workers.get("ratio_at_64")
    both = f"; both at 64 connections, two served {_num(at_64, 2)}\u00d7 one" if at_64 else ""
    return (f" Each side was offered the same loads and is judged by its best "
            f"({'; '.join(listed)}{both}).")


def _half_load_text(workers: dict[str, Any]) -> str:
    """One worker at 32 connections (`HALF_LOAD`), about what each of two serves: what a
    request costs a worker given half the connections, beside what it cost with two."""
    half, two = workers.get(HALF_LOAD) or {}, workers.get("2") or {}
    if not half.get("rps") or not two.get("rps") or half.get("cpu_us_per_request") is None:
        return ""
    return (f" One worker at 32 connections, about what each of the two serves: "
            f"{_num(half['rps'])} RPS, {_num(half['cpu_us_per_request'])} µs of CPU a request "
            f"(at 64: {_num(workers['1']['cpu_us_per_request'])} µs; with two workers: "
            f"{_num(two.get('cpu_us_per_request'))} µs). Two workers served "
            f"{_num(two['rps'] / half['rps'], 2)}\u00d7 one worker at 32.")


def target_rows(f: Figures) -> list[list[str]]:
    """One line per target of the issue: what was measured, the goal, pass or fail."""
    out: list[list[str]] = []
    for label in f.gateway_labels() or [GENERATE]:
        rps = f.rps(label)
        route = label.removeprefix("gateway ")
        out.append([f"RPS, non-stream, 64 concurrent ({route})", _num(rps), "≥ 4,000",
                    _verdict(rps, lambda v: v >= 4000)])
        for peer, goal, text in (("portkey", 4.0, "≥ 4\u00d7 Portkey"),
                                 ("litellm", 30.0, "≥ 30\u00d7 LiteLLM"),
                                 ("floor-aiohttp", 0.6, "≥ 60 % of Starlette + aiohttp")):
            other = f.group_rps(peer)
            ratio = rps / other if rps and other else None
            out.append([f"… against {peer} ({route})", _num(ratio, 2, "\u00d7"), text,
                        _verdict(ratio, partial(operator.le, goal))])
        p50, p99 = f.added(label, "p50_ms"), f.added(label, "p99_ms")
        out.append([f"added p50 at 1 concurrent ({route})", _num(p50, 3, " ms"), "≤ 0.4 ms",
                    _verdict(p50, lambda v: v <= 0.4)])
        out.append([f"added p99 at 1 concurrent ({route})", _num(p99, 3, " ms"), "≤ 1.5 ms",
                    _verdict(p99, lambda v: v <= 1.5)])
        sps = _get(f.rows.get(label), "stream", "rps")
        out.append([f"streams/s, 16 concurrent ({route})", _num(sps), "≥ 3,000",
                    _verdict(sps, lambda v: v >= 3000)])
        ttfc = f.added_first_chunk(label)
        out.append([f"added time to first chunk ({route})", _num(ttfc, 3, " ms"), "≤ 1 ms",
                    _verdict(ttfc, lambda v: v <= 1.0)])
        bad = _broken_streams(f.rows.get(label, {}))
        out.append([f"dropped or merged frames ({route})", _num(bad), "0",
                    _verdict(bad, lambda v: v == 0)])
    ratio = _get(f.r, "telemetry", "ratio")
    cost = 1 - ratio if ratio is not None else None
    out.append(["telemetry-on throughput cost", _num(cost * 100 if cost is not None else None,
                                                     1, " %"), "≤ 15 %",
                _verdict(cost, lambda v: v <= 0.15)])
    workers = _get(f.r, "workers", "ratio")
    ceiling = _get(f.r, "workers", "ceiling")
    measured = _num(workers, 2, "\u00d7")
    notes = []
    if workers is not None and _get(f.r, "workers", "best"):
        one, two = (_best(f.r["workers"], count)[0] for count in ("1", "2"))
        notes.append(f"one at {one} connections, two at {two}")
    if workers is not None and ceiling is not None:
        notes.append(f"this machine's ceiling: {_num(ceiling, 2, chr(0xd7))}")
    if notes:
        measured += f" ({'; '.join(notes)})"
    out.append(["two workers vs one", measured, "≥ 1.7\u00d7",
                _verdict(workers, lambda v: v >= 1.7)])
    idle = _get(f.rows.get(GENERATE), "rss_idle_mb")
    out.append(["RSS of an idle worker", _num(idle, 1, " MB"), "≤ 80 MB",
                _verdict(idle, lambda v: v <= 80)])
    soak = _get(f.rows.get(GENERATE), "soak") or {}
    growth = soak["rss_after_mb"] - soak["rss_before_mb"] if soak else None
    out.append([f"RSS growth during {_num(soak.get('seconds'))} s more at 64 concurrent "
                "(after the sweep)", _num(growth, 1, " MB"), "flat (≤ 2 MB)",
                _verdict(growth, lambda v: v <= 2)])
    opened = f.r.get("open_streams") or {}
    wanted = _get(f.r, "plan_detail", "open_streams")
    errors = sum((opened.get("errors") or {}).values()) if "errors" in opened else None
    held = opened.get("upstream_max_open")
    out.append([f"{_num(wanted)} open streams held by one worker, zero errors",
                f"{_num(held)} held at once, {_num(errors)} errors", "all held, 0 errors",
                _verdict(errors, lambda v: v == 0 and held == wanted)])
    return out


def _broken_streams(row: dict[str, Any]) -> float | None:
    stream, first = row.get("stream"), row.get("first_chunk")
    if not stream or not first:
        return None
    return float(stream["streams_bad"] + stream["errors"] + first["broken"])


def _status(row: dict[str, Any]) -> str:
    status = row.get("status", "?")
    return f"{status}: {row.get('reason', '')}"[:160] if status != "ok" else ""


def nonstream_rows(f: Figures) -> list[list[str]]:
    """RPS and latency at 64, added latency at 1, CPU per request and memory, per row."""
    out = []
    direct = f.r.get("direct") or {}
    d64 = _get(direct, "sweep", "64") or {}
    d1 = _get(direct, "sweep", "1") or {}
    out.append(["mock (direct)", _num(d64.get("rps")), _num(d64.get("p50_ms"), 2),
                _num(d64.get("p99_ms"), 2), "\u2013", f"{_num(d1.get('p50_ms'), 3)} (abs.)",
                f"{_num(d1.get('p99_ms'), 3)} (abs.)", "\u2013", "\u2013",
                _num(d64.get("errors"))])
    for label, row in f.rows.items():
        s64 = _get(row, "sweep", "64")
        if not s64:
            out.append([label, _status(row) or "not measured", *["\u2013"] * 8])
            continue
        steps = row.get("rss_steps_mb") or [None]
        errors = sum(v.get("errors", 0) for v in row["sweep"].values())
        out.append([label, _num(s64["rps"]), _num(s64["p50_ms"], 2), _num(s64["p99_ms"], 2),
                    _num(s64["cpu_us_per_request"]), _num(f.added(label, "p50_ms"), 3),
                    _num(f.added(label, "p99_ms"), 3), _num(row.get("rss_idle_mb"), 1),
                    _num(steps[-1], 1), _num(errors)])
    return out


def stream_rows(f: Figures) -> list[list[str]]:
    """Streams/s, frame checks, CPU per stream and time to first chunk, per row."""
    direct = f.r.get("direct") or {}
    out = [["mock (direct)", _num(_get(direct, "stream", "rps")),
            _num(_get(direct, "stream", "streams_ok")),
            _num(_broken_streams(direct)), "\u2013",
            _num(_get(direct, "first_chunk", "p50_ms"), 3), "\u2013"]]
    for label, row in f.rows.items():
        if "stream" not in row:
            reason = row.get("stream_error") or _status(row) or "not measured"
            out.append([label, reason[:160], *["\u2013"] * 5])
            continue
        out.append([label, _num(row["stream"]["rps"]), _num(row["stream"]["streams_ok"]),
                    _num(_broken_streams(row)), _num(row["stream"]["cpu_us_per_request"]),
                    _num(_get(row, "first_chunk", "p50_ms"), 3),
                    _num(f.added_first_chunk(label), 3)])
    return out


def sweep_rows(f: Figures) -> tuple[list[str], list[list[str]]]:
    """RPS and p50 at every concurrency of the plan, per row."""
    levels = [str(c) for c in f.r["plan_detail"]["concurrencies"]]
    header = ["target", *[f"RPS / p50 ms @{c}" for c in levels]]
    sources = [("mock (direct)", f.r.get("direct") or {}), *f.rows.items()]
    out = []
    for label, row in sources:
        cells = []
        for c in levels:
            run = _get(row, "sweep", c)
            cells.append(f"{_num(run['rps'])} / {_num(run['p50_ms'], 2)}" if run else "\u2013")
        out.append([label, *cells])
    return header, out


def _rounds(f: Figures) -> str:
    detail = f.r["plan_detail"]
    copies = detail.get("compare_copies", 1)
    served = f", each setting served by {copies} processes alike" if copies > 1 else ""
    return (f"all started, runs alternating in {detail['compare_rounds']} rounds{served}, "
            "best run of each shown")


def _extra_lines(f: Figures) -> list[str]:
    tel, wk, op = f.r.get("telemetry") or {}, f.r.get("workers") or {}, f.r.get("open_streams")
    lines = ["## Telemetry, workers, many open streams", ""]
    if _get(tel, "on", "rps"):
        lines.append(f"- **Telemetry** (gateway, generate route, 64 concurrent; "
                     f"{_rounds(f)}): off {_num(tel['off']['rps'])} RPS "
                     f"({_num(tel['off']['cpu_us_per_request'])} µs CPU/request), on "
                     f"{_num(tel['on']['rps'])} RPS ({_num(tel['on']['cpu_us_per_request'])} "
                     f"µs), ratio {_num(tel['ratio'], 2)} (median of the rounds' on/off; "
                     f"{_num(tel.get('best_ratio'), 2)} between the best runs). Traces and "
                     "metrics are exported over OTLP/HTTP to the mock.")
    else:
        lines.append(f"- **Telemetry**: not measured ({tel.get('reason', '?')}).")
    if _get(wk, "2", "rps"):
        (one_at, one), (two_at, two) = _best(wk, "1"), _best(wk, "2")
        lines.append(f"- **Workers**: one {_num(one['rps'])} RPS at {one_at} "
                     f"connections ({_num(one['cpu_us_per_request'])} µs CPU/request), two "
                     f"{_num(two['rps'])} RPS at {two_at} "
                     f"({_num(two['cpu_us_per_request'])} µs), "
                     f"ratio {_num(wk['ratio'], 2)} between the best runs ({_rounds(f)}; the "
                     f"median of the rounds' two/one, {_num(wk.get('paired_ratio'), 2)}, is "
                     "not the verdict: a slow moment of core 0 costs the one worker more than "
                     "the two). Two is `python -m gateway` "
                     "with `SERVER_WORKERS=2` (two forked workers sharing the port), "
                     "allowed on cores 0 and 1. This machine has only two cores, so the "
                     "workers share core 1 with nginx and wrk: the ratio here understates "
                     "scaling; the CPU per request shows whether workers get in each other's "
                     "way." + _loads_text(wk) + _ceiling_text(wk) + _half_load_text(wk))
    else:
        lines.append(f"- **Workers**: not measured ({wk.get('reason', '?')}).")
    if op and "streams" in op:
        lines.append(f"- **Open streams**: {_num(op['streams'])} streams opened at once through "
                     f"one worker against a slow upstream that holds each until all are open "
                     f"(most open at once: {_num(op['upstream_max_open'])}); "
                     f"{_num(op['intact'])} intact, errors {op['errors'] or 'none'}, "
                     f"{_num(op['seconds'], 1)} s, gateway RSS {_num(op['rss_idle_mb'], 1)} MB "
                     f"idle → {_num(op['peak_rss_mb'], 1)} MB at peak, "
                     f"{_num(op.get('gateway_cpu_s'), 1)} s of gateway CPU. {_direct_note(op)}"
                     " Run with "
                     f"CLIENT_MAX_CONNECTIONS={op['client_max_connections']} (the default, "
                     "512, would queue streams beyond it on the upstream pool).")
    else:
        lines.append(f"- **Open streams**: not measured ({(op or {}).get('reason', '?')}).")
    return [*lines, ""]


def _direct_note(opened: dict[str, Any]) -> str:
    direct = opened.get("direct")
    if not direct:
        return ""
    return (f"The same check straight at a slow upstream (no gateway): "
            f"{_num(direct['intact'])} intact of {_num(direct['streams'])}, "
            f"{_num(direct['upstream_max_open'])} open at once, {_num(direct['seconds'], 1)} s"
            + (" (so the client side is not the limit)." if direct["intact"] == direct["streams"]
               else " (the client side itself falls short: the gateway figure is a bound)."))


def _profile_lines(f: Figures) -> list[str]:
    prof = f.r.get("profile") or {}
    lines = ["## Where the gateway's CPU goes (py-spy)", ""]
    if not prof.get("samples"):
        return [*lines, f"Not profiled: {prof.get('error') or prof.get('reason') or '?'}", ""]
    total = prof["samples"]
    cpu = _get(f.rows.get(GENERATE), "sweep", "64", "cpu_us_per_request")
    lines.append(f"{prof['route']}, 64 concurrent, {_num(total)} samples with native frames. "
                 "Each sample goes to the innermost frame that belongs to a component; µs "
                 f"per request apportion the {_num(cpu)} µs measured without the profiler.")
    lines.append("")
    rows = [[name, _num(100 * n / total, 1, " %"),
             _num(cpu * n / total if cpu else None)] for name, n in prof["components"]]
    lines += _table(["component", "share of CPU samples", "≈ µs per request"], rows)
    lines += ["", "Busiest Python functions (innermost Python frame):", ""]
    lines += _table(["function", "samples"],
                    [[f"`{name}`", _num(n)] for name, n in prof["hottest"]])
    return [*lines, ""]


def _interpreter_lines(builds: list[dict[str, Any]]) -> list[str]:
    """Which CPython the Python targets ran on, against the other builds found."""
    if not builds:
        return []
    best, *others = builds
    rest = "; ".join(f"{b['build']}: {_num(b['workload_ms'], 1)} ms" for b in others)
    return [f"- Interpreter: the gateway, the floors and LiteLLM all run on {best['build']}, the "
            f"fastest CPython 3.11 build found (`bench/interpreter.py`: a pure-Python workload "
            f"in {_num(best['workload_ms'], 1)} ms" + (f"; {rest}" if rest else "") + ")."]


def _best_of_text(rounds: int, what: str) -> str:
    """How several rounds of one load are summed up, for the setup lines (none for one)."""
    if rounds <= 1:
        return ""
    return (f"; {rounds} such runs {what} (other work on the machine only ever slows a run; "
            "every target gets the same rounds, and all are in results.json)")


def _wakeup_lines(wake: dict[str, Any], idle: dict[str, Any]) -> list[str]:
    """What waking the other core costs here, which the latency at 1 concurrent includes, and
    how idle cores wait for work."""
    idling = _idle_text(idle)
    if "cross_core_us" not in wake:
        return [f"- Idle cores: {idling}"] if idling else []
    extra = 2 * (wake["cross_core_us"] - wake["same_core_us"])
    return [f"- Waking the other core: a byte bounced between two processes over a socket pair "
            f"takes {_num(wake['cross_core_us'], 1)} µs there and back across the two cores, "
            f"{_num(wake['same_core_us'], 1)} µs on one (`bench/wakeup.py`). A request through "
            "a target at 1 concurrent crosses cores four times (wrk, target, mock, target, wrk) "
            f"and the direct run none, so about {_num(extra / 1000, 3)} ms of every target's "
            "added latency at 1 concurrent is this machine's, whatever the target does."
            + (f" Idle cores: {idling}" if idling else "")]


def _idle_text(idle: dict[str, Any]) -> str:
    """How idle cores wait (`bench.wakeup.idling`), as a sentence; "" when unknown."""
    named = ", ".join(f"{what} {idle[what]}" for what in ("driver", "governor") if what in idle)
    source = f"cpuidle {named}" if named else "cpuidle"
    poll = idle.get("halt_poll_ns")
    if poll == 0:
        return (f"they halt as soon as they have nothing to run ({source}, "
                "`guest_halt_poll_ns` 0; the kernel's default polls for up to 200 µs first), "
                "so every wake-up of an idle core waits for the hypervisor to run it again.")
    if poll is not None:
        return (f"they poll for work for up to {_num(poll / 1000)} µs before they halt "
                f"({source}, `guest_halt_poll_ns`).")
    return f"{source}." if named else ""


def _setup_lines(r: Results) -> list[str]:
    m, plan = r["machine"], r["plan_detail"]
    cap = r.get("mock_capacity") or {}
    return [
        "## Setup", "",
        f"- Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB memory, Linux "
        f"{m['kernel']}. Before the run the CPUs were "
        f"{_num(100 * m['busy_before_start'] if 'busy_before_start' in m else None)} % busy "
        f"with other work; load average {_num(m['load_average_at_start'][0], 2)} at start, "
        f"{_num(m.get('load_average_at_end', [None])[0], 2)} at end. Other work on the "
        "machine lowers every figure here; compare rows within one run.",
        *_interpreter_lines(m.get("interpreters") or []),
        *_wakeup_lines(m.get("wakeup") or {}, m.get("idle") or {}),
        "- Placement (taskset): the target on core 0, one worker; the nginx mock, wrk and the "
        "stream client on core 1.",
        f"- Mock upstream: nginx (one worker) answering OpenAI's chat-completions format from "
        f"memory: {_num(cap.get('rps'))} RPS at 64 concurrent with wrk on the other core.",
        f"- Non-stream: wrk, one thread, POSTing a small chat request; concurrencies "
        f"{', '.join(map(str, plan['concurrencies']))}; runs of "
        f"{_num(plan['seconds'].get('64', plan['default_seconds']))} s at 64, "
        f"{_num(plan['seconds'].get('1', plan['default_seconds']))} s at 1 "
        f"(others {_num(plan['default_seconds'])} s) after a {_num(plan['warmup_s'])} s warm-up"
        + _best_of_text(plan.get("latency_rounds", 1),
                        "at 1 concurrent, the one with the lowest p50 shown") + ".",
        f"- Streams: {STREAM_CHUNKS} content chunks per stream (plus role, finish and usage "
        f"chunks and [DONE]), {plan['stream_concurrency']} concurrent for "
        f"{_num(plan['stream_seconds'])} s"
        + _best_of_text(plan.get("stream_rounds", 1),
                        "alternating between a target's routes, the one with the most "
                        "streams/s shown; intact and broken streams are counted over all")
        + "; wrk checks every answer (each token once, in order, one per event). Time to "
        f"first chunk: {plan['first_chunk_count']} sequential streams read event by event "
        "(aiohttp), to the first text.",
        "- Added latency = the target's percentile at 1 concurrent minus the same percentile "
        "direct to the mock. CPU per request = the target's user+system CPU time (process "
        "tree, /proc) over the run divided by its requests. RSS = VmRSS of the process tree.",
        "",
    ]


def render(results: Results, *, chart: str | None) -> str:
    """The whole docs/benchmarks.md."""
    f = Figures(results)
    lines = [
        "# Benchmarks", "",
        f"Written by `make bench` ({results['plan']} plan, {results['started']}, "
        f"{results.get('seconds', '?')} s). Do not edit: run `make bench` again "
        "(`BENCH_QUICK=1 make bench` for a short run). Raw results: "
        "`bench/results/<time>/results.json`.", "",
        *_setup_lines(results),
        "## Against the targets of issue 6", "",
        *_table(["target", "measured", "goal", "result"], target_rows(f)), "",
        "## Non-stream", "",
        *_table(["target", "RPS @64", "p50 ms @64", "p99 ms @64", "CPU µs/request @64",
                 "added p50 ms @1", "added p99 ms @1", "RSS idle MB", "RSS after load MB",
                 "errors"], nonstream_rows(f)), "",
        "## Streams", "",
        *_table(["target", "streams/s", "intact streams", "broken or failed",
                 "CPU µs/stream", "first chunk p50 ms", "added first chunk ms"],
                stream_rows(f)), "",
        "## By concurrency", "",
    ]
    header, rows = sweep_rows(f)
    lines += [*_table(header, rows), ""]
    if chart:
        lines += [f"![RPS and p50 latency by concurrency]({chart})", ""]
    lines += _extra_lines(f) + _profile_lines(f)
    lines += ["## Notes", "", *NOTES, "", "## Versions", ""]
    lines += _table(["component", "version"],
                    [[k, f"`{v}`"] for k, v in results["versions"].items()])
    install = {k: v for k, v in (results.get("install") or {}).items() if v}
    if install:
        lines += ["", "Install problems: " + "; ".join(f"{k}: {v[:200]}"
                                                       for k, v in install.items())]
    return "\n".join(lines) + "\n"


NOTES = [
    "- The floors are `bench/floors.py`: one Starlette route on uvicorn (uvloop, httptools, "
    "no access log) that relays the body with one shared client and streams the answer back; "
    "no validation or translation. They are served the way `python -m gateway` serves.",
    "- The gateway runs as `python -m gateway` with OPENAI_API_URL at the mock, telemetry "
    "off, its default LOG_LEVEL (info: one access-log line per request, written to a file).",
    "- LiteLLM: newest 1.x release that installs from the registry reachable here (1.108 and "
    "1.109 need packages it does not serve; 1.107.0 is excluded on purpose), with certifi "
    "held one release back (`bench/litellm-overrides.txt`); started with a master key, "
    "which it requires, and one worker.",
    "- Portkey on Node 20 fails every streamed request with 500 (`immutable`: it appends "
    "headers to a fetch() response); `bench/portkey_stream_shim.mjs` copies the headers of "
    "streamed upstream answers so that its streams can be measured at all.",
    "- Timing is never asserted in unit tests; this report is where the figures live.",
]
