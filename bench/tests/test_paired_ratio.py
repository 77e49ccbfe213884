"""How `make bench` takes a ratio between two contenders from their rounds."""

from __future__ import annotations

import pytest

from bench.compare import paired_ratio


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
