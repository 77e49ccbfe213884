"""`bench.compare` sums interleaved runs up: medians, ratios and runs won."""

from __future__ import annotations

from bench.compare import Contender, summary


def _contender(name: str, rps: list[float]) -> Contender:
    # No servers: summary reads only the figures.
    return Contender(name, rps=rps, cpu_us=[500.0] * len(rps), p50_ms=[1.0] * len(rps))


def test_ratios_are_of_medians_and_runs_are_won_one_by_one() -> None:
    base = _contender("HEAD", [1000, 1200, 900, 1100])
    new = _contender("worktree", [1100, 1150, 1000, 1300])
    lines = summary([base, new])
    assert "median    1,050 RPS" in lines[0]
    assert "1.07x HEAD" in lines[1]  # median 1,125 over median 1,050
    assert "more RPS in 3/4 runs" in lines[1]
    assert "runs" not in lines[0]
