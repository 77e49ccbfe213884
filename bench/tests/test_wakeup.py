"""`bench.wakeup` measures a round trip on one core and across two."""

from __future__ import annotations

import os

import pytest

from bench import wakeup


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_both_placements_give_a_round_trip() -> None:
    found = wakeup.measure()
    assert set(found) == {"same_core_us", "cross_core_us"}
    assert 0 < found["same_core_us"] < 10_000
    assert 0 < found["cross_core_us"] < 10_000
