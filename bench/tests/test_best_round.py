"""How `make bench` sums several runs of one load up: the best one, with no failure hidden."""

from __future__ import annotations

from bench.load import LoadResult, best_round


def _run(*, requests: int, p50: float, errors: int = 0, ok: int = 0, bad: int = 0,
         sample: str = "") -> LoadResult:
    return LoadResult(concurrency=1, seconds=2.0, requests=requests, errors=errors,
                      p50_ms=p50, p90_ms=p50 * 1.5, p99_ms=p50 * 3, mean_ms=p50,
                      streams_ok=ok, streams_bad=bad, bad_sample=sample, cpu_s=None)


def test_latency_rounds_keep_the_lowest_p50_and_every_error() -> None:
    runs = [_run(requests=800, p50=0.50, errors=1), _run(requests=700, p50=0.41),
            _run(requests=900, p50=0.45)]
    best = best_round(runs, "p50_ms")
    assert best["p50_ms"] == 0.41
    assert best["p99_ms"] == 0.41 * 3  # the same round's other figures
    assert best["rps"] == 350.0
    assert best["rounds"] == [0.50, 0.41, 0.45]
    assert best["errors"] == 1  # from a round that was not the best


def test_stream_rounds_keep_the_most_streams_and_count_broken_ones_in_all() -> None:
    runs = [_run(requests=6000, p50=2.0, ok=6000), _run(requests=7000, p50=1.9, ok=6999,
                                                        bad=1, sample="200 merged"),
            _run(requests=5000, p50=2.5, ok=5000)]
    best = best_round(runs, "rps")
    assert best["rps"] == 3500.0
    assert best["rounds"] == [3000.0, 3500.0, 2500.0]
    assert best["streams_ok"] == 17999
    assert best["streams_bad"] == 1
    assert best["bad_sample"] == "200 merged"
