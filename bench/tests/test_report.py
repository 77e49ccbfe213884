"""The report judges each target from the figures of the same run."""

from __future__ import annotations

from typing import Any

import pytest

from bench.load import HALF_LOAD, scaling_ceiling
from bench.report import CHAT, GENERATE, Figures, render, target_rows


def _sweep(rps: float, p50: float, p99: float) -> dict[str, Any]:
    run = {"rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": 0, "cpu_us_per_request": 200.0}
    return {"1": {**run, "rps": rps / 10}, "64": run}


def _row(target: str, rps: float, p50: float = 0.3, p99: float = 1.0) -> dict[str, Any]:
    return {"status": "ok", "target": target, "group": "x", "sweep": _sweep(rps, p50, p99),
            "rss_idle_mb": 60.0, "rss_steps_mb": [61.0, 62.0],
            "soak": {"seconds": 3.0, "rss_before_mb": 62.0, "rss_after_mb": 62.5},
            "stream": {"rps": 3500.0, "streams_ok": 10, "streams_bad": 0, "errors": 0,
                       "cpu_us_per_request": 300.0},
            "first_chunk": {"p50_ms": 0.9, "p99_ms": 1.2, "broken": 0, "streams": 10}}


def _compared(rps: float) -> dict[str, float]:
    return {"rps": rps, "cpu_us_per_request": 1e6 / rps}


def results(gateway_rps: float) -> dict[str, Any]:
    """A run's results as `python -m bench` saves them."""
    return {
        "plan": "quick", "started": "now", "seconds": 1,
        "plan_detail": {"concurrencies": [1, 64], "seconds": {}, "default_seconds": 2.0,
                        "warmup_s": 1.0, "stream_concurrency": 16, "stream_seconds": 2.0,
                        "first_chunk_count": 10, "compare_rounds": 2, "open_streams": 100},
        "machine": {"cores": 2, "cpu": "cpu", "memory_gb": 1.0, "kernel": "k",
                    "load_average_at_start": [0.1, 0, 0], "load_average_at_end": [0.1, 0, 0]},
        "versions": {"wrk": "4"},
        "direct": {"sweep": _sweep(50000, 0.02, 0.1),
                   "stream": {"rps": 20000.0, "streams_ok": 5, "streams_bad": 0, "errors": 0},
                   "first_chunk": {"p50_ms": 0.3, "broken": 0}},
        "rows": {GENERATE: _row("gateway", gateway_rps), CHAT: _row("gateway", gateway_rps),
                 "floor": _row("floor-aiohttp", 6000), "litellm": _row("litellm", 120),
                 "portkey": _row("portkey", 900)},
        "telemetry": {"off": _compared(100.0), "on": _compared(90.0), "ratio": 0.9,
                      "best_ratio": 0.87},
        "workers": {"1": _compared(100.0), "2": _compared(150.0), "ratio": 1.5},
        "open_streams": {"streams": 100, "intact": 100, "errors": {}, "seconds": 1.0,
                         "peak_rss_mb": 70.0, "upstream_max_open": 100, "rss_idle_mb": 60.0,
                         "client_max_connections": "600"},
        "profile": {"samples": 0, "error": "not run"},
    }


def _verdicts(gateway_rps: float) -> dict[str, str]:
    return {row[0]: row[3] for row in target_rows(Figures(results(gateway_rps)))}


def test_targets_pass_and_fail_on_the_figures() -> None:
    fast = _verdicts(5000)
    assert fast["RPS, non-stream, 64 concurrent (POST /llms/openai/generate)"] == "**pass**"
    assert fast["\u2026 against portkey (POST /v1/chat/completions)"] == "**pass**"
    assert fast["two workers vs one"] == "**FAIL**"
    assert fast["telemetry-on throughput cost"] == "**pass**"
    assert fast["added p50 at 1 concurrent (POST /llms/openai/generate)"] == "**pass**"
    assert fast["RSS growth during 3 s more at 64 concurrent (after the sweep)"] == "**pass**"
    slow = _verdicts(3000)
    assert slow["RPS, non-stream, 64 concurrent (POST /llms/openai/generate)"] == "**FAIL**"
    assert slow["\u2026 against litellm (POST /llms/openai/generate)"] == "**FAIL**"


def test_render_names_every_row_and_an_unmeasured_peer() -> None:
    data = results(5000)
    data["rows"]["portkey"] = {"status": "unavailable", "reason": "install failed: no npm",
                               "target": "portkey", "group": "peer"}
    text = render(data, chart="benchmarks.png")
    assert "install failed: no npm" in text
    assert "not measured" in text  # the ratio against the missing peer
    assert "![RPS and p50 latency by concurrency](benchmarks.png)" in text
    for label in (GENERATE, CHAT, "floor", "litellm"):
        assert label in text


def test_telemetry_line_gives_both_ratios() -> None:
    text = render(results(5000), chart="benchmarks.png")
    assert "ratio 0.90 (median of the rounds' on/off; 0.87 between the best runs)" in text


def test_setup_says_how_rounds_are_summed_up() -> None:
    data = results(5000)
    assert "such runs" not in render(data, chart=None)  # one run each: nothing to say
    data["plan_detail"].update(latency_rounds=3, stream_rounds=3, seconds={"1": 4.0})
    text = render(data, chart=None)
    assert "4 s at 1 (others 2 s)" in text
    assert "3 such runs at 1 concurrent, the one with the lowest p50 shown" in text
    assert "3 such runs alternating between a target's routes" in text


def test_setup_says_what_waking_the_other_core_costs() -> None:
    data = results(5000)
    assert "Waking the other core" not in render(data, chart=None)
    data["machine"]["wakeup"] = {"same_core_us": 9.0, "cross_core_us": 94.0}
    text = render(data, chart=None)
    assert "takes 94.0 µs there and back across the two cores, 9.0 µs on one" in text
    assert "about 0.170 ms of every target's added latency at 1 concurrent" in text


def test_setup_says_how_idle_cores_wait() -> None:
    data = results(5000)
    data["machine"]["wakeup"] = {"same_core_us": 9.0, "cross_core_us": 94.0}
    data["machine"]["idle"] = {"driver": "haltpoll", "governor": "haltpoll", "halt_poll_ns": 0}
    text = render(data, chart=None)
    assert ("whatever the target does. Idle cores: they halt as soon as they have nothing to "
            "run (cpuidle driver haltpoll, governor haltpoll, `guest_halt_poll_ns` 0;") in text
    data["machine"]["idle"] = {"driver": "haltpoll", "halt_poll_ns": 200_000}
    text = render(data, chart=None)
    assert ("Idle cores: they poll for work for up to 200 µs before they halt (cpuidle driver "
            "haltpoll, `guest_halt_poll_ns`).") in text
    del data["machine"]["wakeup"]
    data["machine"]["idle"] = {"driver": "intel_idle", "governor": "menu"}
    assert "- Idle cores: cpuidle driver intel_idle, governor menu.\n" in render(data, chart=None)
    data["machine"]["idle"] = {}
    assert "Idle cores" not in render(data, chart=None)


def test_two_workers_are_judged_with_this_machines_ceiling_beside_them() -> None:
    data = results(5000)
    assert "ceiling" not in render(data, chart=None)  # not measured: nothing said
    data["workers"]["1"].update(cpu_us_per_request=100.0, load_cpu_us_per_request=20.0)
    data["workers"]["ceiling"] = scaling_ceiling(100.0, 20.0)
    verdicts = {row[0]: (row[1], row[3]) for row in target_rows(Figures(data))}
    assert verdicts["two workers vs one"] == (
        "1.50\u00d7 (this machine's ceiling: 1.67\u00d7)", "**FAIL**")
    text = render(data, chart=None)
    assert "wrk and nginx took 20 µs of CPU a request" in text
    assert "reach at most about 2g / (g + l) = 1.67\u00d7 here (g = 100 µs" in text
    assert "With two," not in text  # the two workers' CPU was not measured
    data["workers"]["2"].update(cpu_us_per_request=105.0, load_cpu_us_per_request=25.0)
    text = render(data, chart=None)
    assert ("With two, the gateway took 105 µs and wrk and nginx 25 µs a request, 130 µs in "
            "all against 120 with one; at that cost both cores allow at most "
            "2g / (g\u2082 + l\u2082) = 1.54\u00d7.") in text


def test_two_workers_are_set_beside_one_worker_at_half_the_connections() -> None:
    data = results(5000)
    data["workers"]["1"].update(cpu_us_per_request=100.0)
    data["workers"]["2"].update(cpu_us_per_request=104.0)
    assert "One worker at 32 connections" not in render(data, chart=None)  # not measured
    data["workers"][HALF_LOAD] = _compared(120.0)
    data["workers"][HALF_LOAD].update(cpu_us_per_request=103.0)
    text = render(data, chart=None)
    assert ("One worker at 32 connections, about what each of the two serves: 120 RPS, 103 µs "
            "of CPU a request (at 64: 100 µs; with two workers: 104 µs). Two workers served "
            "1.25\u00d7 one worker at 32.") in text


def test_the_comparisons_say_how_many_processes_served_each_setting() -> None:
    data = results(5000)
    assert "all started, runs alternating in 2 rounds, best run" in render(data, chart=None)
    data["plan_detail"]["compare_copies"] = 2
    assert ("all started, runs alternating in 2 rounds, each setting served by 2 processes "
            "alike, best run") in render(data, chart=None)


def test_the_ceiling_is_twice_the_gateways_share_of_a_request() -> None:
    assert scaling_ceiling(100.0, 0.0) == 2.0  # a load that costs nothing: two cores, 2x
    assert scaling_ceiling(140.0, 20.0) == pytest.approx(1.75)
    assert scaling_ceiling(None, 20.0) is None
    assert scaling_ceiling(140.0, None) is None


def test_two_workers_are_judged_by_each_sides_best_of_the_same_loads() -> None:
    data = results(5000)
    workers = data["workers"]
    workers["1 at 128"] = _compared(95.0)
    workers["2 at 128"] = _compared(170.0)
    for name, cpu in (("1", 100.0), ("1 at 128", 101.0), ("2", 110.0), ("2 at 128", 102.0)):
        workers[name].update(cpu_us_per_request=cpu, load_cpu_us_per_request=20.0)
    workers[HALF_LOAD] = _compared(80.0)
    workers.update(best={"1": "1", "2": "2 at 128"}, ratio=1.7, ratio_at_64=1.5,
                   ceiling=scaling_ceiling(100.0, 20.0))
    verdicts = {row[0]: (row[1], row[3]) for row in target_rows(Figures(data))}
    assert verdicts["two workers vs one"] == (
        "1.70\u00d7 (one at 64 connections, two at 128; this machine's ceiling: 1.67\u00d7)",
        "**pass**")
    text = render(data, chart=None)
    assert ("- **Workers**: one 100 RPS at 64 connections (100 µs CPU/request), two 170 RPS "
            "at 128 (102 µs), ratio 1.70 between the best runs") in text
    assert ("Each side was offered the same loads and is judged by its best (one: 100 RPS at "
            "64, 95 RPS at 128; two: 150 RPS at 64, 170 RPS at 128; both at 64 connections, "
            "two served 1.50\u00d7 one).") in text
    assert "With two, the gateway took 102 µs and wrk and nginx 20 µs a request" in text
    assert "Two workers served 1.88\u00d7 one worker at 32." in text  # two at 64 over 32
