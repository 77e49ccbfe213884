"""Two workers against one: each side offered the same loads and judged by its best."""

from __future__ import annotations

from bench.load import CAPACITY_LOADS, HALF_LOAD, at_load, capacity


def test_the_contenders_are_named_by_their_load_and_plain_at_64() -> None:
    assert CAPACITY_LOADS == (64, 128)
    assert at_load("1", 64) == "1"
    assert at_load("2", 128) == "2 at 128"
    assert at_load("1", 32) == HALF_LOAD


def test_each_side_is_judged_by_its_best_load() -> None:
    out = {"1": {"rps": 8000.0}, "1 at 128": {"rps": 7900.0}, HALF_LOAD: {"rps": 9000.0},
           "2": {"rps": 13300.0}, "2 at 128": {"rps": 14100.0}}
    assert capacity(out, "1") == "1"  # its half load (32) is not a capacity load
    assert capacity(out, "2") == "2 at 128"
    out["1 at 128"]["rps"] = 8100.0
    assert capacity(out, "1") == "1 at 128"


def test_results_with_only_the_load_of_64_are_judged_by_it() -> None:
    assert capacity({"1": {"rps": 8000.0}, "2": {"rps": 13000.0}}, "2") == "2"
    assert capacity({"1": {"rps": None}, "1 at 128": {"rps": 10.0}}, "1") == "1 at 128"
