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
    stream_seconds: float  # per round
    stream_rounds: int  # streams/s: best of this many runs (see `bench.load.best_round`)
    latency_rounds: int  # the runs at 1 concurrent: the one with the lowest p50 of this many
    first_chunk_count: int
    first_chunk_budget_s: float
    compare_seconds: float  # telemetry on/off and one/two workers: seconds per run
    compare_rounds: int  # ... alternating, best of this many runs each
    compare_copies: int  # ... each setting served by this many processes (`bench.load.alternate`)
    profile_seconds: float
    soak_seconds: float  # the gateway's memory-flatness run, after its sweep
    open_streams: int
    open_hold_s: float
    open_wait_s: float

    def seconds_at(self, concurrency: int) -> float:
        """How long the load run at `concurrency` lasts (each round, at 1 concurrent)."""
        return self.seconds.get(concurrency, self.default_seconds)

    def rounds_at(self, concurrency: int) -> int:
        """How many runs at `concurrency` there are: several at 1 concurrent, else one."""
        return self.latency_rounds if concurrency == 1 else 1


FULL = Plan(
    name="full", concurrencies=(1, 8, 64, 256), seconds={1: 4.0, 64: 10.0},
    default_seconds=5.0, warmup_s=2.0, stream_concurrency=16, stream_seconds=4.0,
    stream_rounds=3, latency_rounds=3,
    first_chunk_count=300, first_chunk_budget_s=20.0, compare_seconds=5.0, compare_rounds=5,
    compare_copies=2, profile_seconds=10.0, soak_seconds=20.0, open_streams=5000, open_hold_s=5.0,
    open_wait_s=30.0)

QUICK = Plan(
    name="quick", concurrencies=(1, 64), seconds={}, default_seconds=2.0, warmup_s=1.0,
    stream_concurrency=16, stream_seconds=2.0, stream_rounds=1, latency_rounds=1,
    first_chunk_count=50, first_chunk_budget_s=5.0,
    compare_seconds=2.0, compare_rounds=2, compare_copies=1, profile_seconds=3.0, soak_seconds=3.0,
    open_streams=1000, open_hold_s=2.0,
    open_wait_s=15.0)


def from_env() -> Plan:
    """QUICK when BENCH_QUICK is set to anything but empty or 0, else FULL."""
    return QUICK if os.environ.get("BENCH_QUICK", "") not in ("", "0") else FULL
