"""How long and how hard each phase runs: the full plan, or BENCH_QUICK=1 for development."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """Every bound of one run: concurrencies, seconds per load run, counts."""

    name: str
    concurrencies: tuple[int, ...]
    seconds: dict[int, float]  # per concurrency; missing ones use `default_seconds`
    default_seconds: float
    warmup_s: float
    stream_concurrency: int
    stream_seconds: float
    first_chunk_count: int
    first_chunk_budget_s: float
    compare_seconds: float  # telemetry on/off and one/two workers: seconds per run
    compare_rounds: int  # ... alternating, best of this many runs each
    profile_seconds: float
    soak_seconds: float  # the gateway's memory-flatness run, after its sweep
    open_streams: int
    open_hold_s: float
    open_wait_s: float

    def seconds_at(self, concurrency: int) -> float:
        """How long the load run at `concurrency` lasts."""
        return self.seconds.get(concurrency, self.default_seconds)


FULL = Plan(
    name="full", concurrencies=(1, 8, 64, 256), seconds={1: 10.0, 64: 10.0},
    default_seconds=5.0, warmup_s=2.0, stream_concurrency=16, stream_seconds=10.0,
    first_chunk_count=300, first_chunk_budget_s=20.0, compare_seconds=5.0, compare_rounds=5,
    profile_seconds=10.0, soak_seconds=20.0, open_streams=5000, open_hold_s=5.0,
    open_wait_s=30.0)

QUICK = Plan(
    name="quick", concurrencies=(1, 64), seconds={}, default_seconds=2.0, warmup_s=1.0,
    stream_concurrency=16, stream_seconds=2.0, first_chunk_count=50, first_chunk_budget_s=5.0,
    compare_seconds=2.0, compare_rounds=2, profile_seconds=3.0, soak_seconds=3.0,
    open_streams=1000, open_hold_s=2.0,
    open_wait_s=15.0)


def from_env() -> Plan:
    """QUICK when BENCH_QUICK is set to anything but empty or 0, else FULL."""
    return QUICK if os.environ.get("BENCH_QUICK", "") not in ("", "0") else FULL
