"""How `make bench` takes a ratio between two contenders from their rounds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench import load
from bench.compare import paired_ratio
from bench.load import LoadResult, Request
from bench.plan import QUICK


def test_paired_ratio_is_the_median_of_each_rounds_ratio() -> None:
    # One lucky round for "off" (120) makes the best runs' ratio 0.75; the rounds say 0.88.
    out = {"off": {"rps": 120.0, "rounds": [100.0, 120.0, 100.0]},
           "on": {"rps": 90.0, "rounds": [90.0, 85.0, 88.0]}}
    assert paired_ratio(out, "on", "off") == pytest.approx(0.88)
    assert out["on"]["rps"] / out["off"]["rps"] == pytest.approx(0.75)


def test_paired_ratio_skips_failed_runs() -> None:
    out = {"1": {"rounds": [100.0, 0.0, 100.0, 100.0]}, "2": {"rounds": [150.0, 160.0, 0.0, 170.0]}}
    assert paired_ratio(out, "2", "1") == pytest.approx(1.6)
    assert paired_ratio({"1": {"rounds": [0.0]}, "2": {"rounds": [1.0]}}, "2", "1") is None


def test_copies_of_each_setting_run_in_turn_and_pair_up_by_round_and_copy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench.load.alternate` with two servers per setting: a round runs each setting's first
    copy, then each one's second; the rounds line up so that `paired_ratio` pairs runs of the
    same round and copy, and the best run is the best of every copy's."""

    order: list[tuple[str, int]] = []
    speed = {"off-1": 100, "off-2": 110, "on-1": 85, "on-2": 96}  # a slow and a fast process

    def fake_wrk(request: Request, *, concurrency: int, seconds: float) -> LoadResult:
        name = request.url
        runs_before = sum(1 for ran, _ in order if ran == name)  # 0 for the warm-up
        order.append((name, concurrency))
        return LoadResult(concurrency, 1.0, speed[name] + runs_before, 0, 1.0, 1.0, 1.0, 1.0)

    monkeypatch.setattr(load, "run_wrk", fake_wrk)
    monkeypatch.setattr(load, "cpu_seconds", lambda pid: 0.0)
    contenders = {name: [(Request(f"{name}-{copy}", b""), []) for copy in (1, 2)]
                  for name in ("off", "on")}
    out = load.alternate(contenders, replace(QUICK, compare_rounds=2),
                         concurrency={"on": 32})
    assert order[4:] == [("off-1", 64), ("on-1", 32), ("off-2", 64), ("on-2", 32)] * 2
    assert out["off"]["rounds"] == [101, 111, 102, 112]
    assert out["on"]["rounds"] == [86, 97, 87, 98]
    assert out["off"]["rps"] == 112  # the fast copy's best run
    ratios = sorted([86 / 101, 97 / 111, 87 / 102, 98 / 112])
    assert paired_ratio(out, "on", "off") == pytest.approx((ratios[1] + ratios[2]) / 2)
