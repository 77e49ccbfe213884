"""Metrics read back through the in-memory reader: names, units, labels and their bounds."""

from __future__ import annotations

import threading
import time

import httpx
from opentelemetry.sdk.metrics import Exemplar, Histogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from gateway.telemetry import Telemetry, TelemetryConfig
from gateway.telemetry.histograms import FOLD_AT, MetricsHub
from gateway.telemetry.histograms import Histogram as GatewayHistogram
from tests.support.server import serve
from tests.telemetry.conftest import SECRET, Live, build_app, eventually


def labels(point: object) -> dict[str, object]:
    return dict(getattr(point, "attributes", None) or {})


def test_http_server_duration_is_labelled_by_method_route_and_status(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s, httpx.Client(trust_env=False) as c:
        c.get(f"{s.url}/v1/openai/models")
        c.get(f"{s.url}/v1/groq/models")
        c.get(f"{s.url}/boom")
        points = eventually(lambda: (p := live.points("http.server.request.duration"))
                            and sum(x.count for x in p) == 3 and p)
    by_route = {(labels(p)["http.route"], labels(p)["http.response.status_code"]): p
                for p in points}
    ok = by_route[("/v1/{provider}/models", 200)]
    assert ok.count == 2  # two providers, one route template: one series
    assert labels(ok) == {"http.request.method": "GET", "http.route": "/v1/{provider}/models",
                          "http.response.status_code": 200}
    failed = by_route[("/boom", 500)]
    assert labels(failed)["error.type"] == "RuntimeError"
    assert 0 < ok.sum < 5  # seconds, not milliseconds
    assert ok.explicit_bounds[0] == 0.005


def test_attempt_records_duration_tokens_and_first_token(live: Live) -> None:
    with live.telemetry.upstream_attempt(provider="openai", model="gpt-4o", operation="chat",
                                         server_address="api.openai.test") as attempt:
        time.sleep(0.02)
        attempt.first_token()
        attempt.first_token()  # only the first one counts
        time.sleep(0.02)
        attempt.set_response("gpt-4o-2024", 120, 30, ["stop"])
    expected = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024"}
    for name in ("gen_ai.client.operation.duration", "gen_ai.server.request.duration"):
        (point,) = live.points(name)
        assert labels(point) == expected
        assert 0.04 <= point.sum < 5
    (ttft,) = live.points("gen_ai.server.time_to_first_token")
    assert 0.02 <= ttft.sum < (live.points("gen_ai.client.operation.duration")[0].sum)
    tokens = {labels(p)["gen_ai.token.type"]: p for p in live.points("gen_ai.client.token.usage")}
    assert (tokens["input"].sum, tokens["output"].sum) == (120, 30)
    assert labels(tokens["input"]) == {**expected, "gen_ai.token.type": "input"}


def test_failed_attempt_is_labelled_with_its_error_type_and_no_tokens(live: Live) -> None:
    with live.telemetry.upstream_attempt(provider="cohere", model=None, operation="list_models",
                                         server_address="api.cohere.test") as attempt:
        attempt.set_error("upstream_timeout")
    (point,) = live.points("gen_ai.client.operation.duration")
    assert labels(point) == {"gen_ai.operation.name": "list_models",
                             "gen_ai.provider.name": "cohere", "error.type": "upstream_timeout"}
    assert live.points("gen_ai.client.token.usage") == []
    assert live.points("gen_ai.server.time_to_first_token") == []


def test_model_labels_are_capped_per_provider(live: Live) -> None:
    # The fixture admits 3 models per provider.
    for i in range(10):
        for provider in ("openai", "groq"):
            with live.telemetry.upstream_attempt(provider=provider, model=f"model-{i}",
                                                 operation="chat", server_address="h"):
                pass
    with live.telemetry.upstream_attempt(provider="groq", model="m" * 500, operation="chat",
                                         server_address="h"):
        pass
    points = live.points("gen_ai.client.operation.duration")
    for provider in ("openai", "groq"):
        models = {labels(p)["gen_ai.request.model"]: p.count for p in points
                  if labels(p)["gen_ai.provider.name"] == provider}
        assert set(models) == {"model-0", "model-1", "model-2", "other"}
    groq_other = next(p for p in points if labels(p)["gen_ai.provider.name"] == "groq"
                      and labels(p)["gen_ai.request.model"] == "other")
    assert groq_other.count == 8


def test_provider_label_is_capped_too(live: Live) -> None:
    for i in range(100):
        with live.telemetry.upstream_attempt(provider=f"p{i}", model=None, operation="chat",
                                             server_address="h"):
            pass
    providers = {labels(p)["gen_ai.provider.name"]
                 for p in live.points("gen_ai.client.operation.duration")}
    assert len(providers) <= 65
    assert "other" in providers and "p0" in providers


def test_label_values_from_callers_are_redacted(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s, httpx.Client(trust_env=False) as c:
        c.get(f"{s.url}/v1/openai/models", params={"model": f"key={SECRET}"})
        text = c.get(f"{s.url}/metrics").text
    assert SECRET not in text
    assert 'gen_ai_request_model="key=[REDACTED]"' in text


def test_a_delta_reader_gets_what_changed_since_its_last_collection() -> None:
    delta = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    cumulative = InMemoryMetricReader()
    telemetry = Telemetry(TelemetryConfig(enabled=True, metric_readers=(delta, cumulative)))

    def attempt(output_tokens: int) -> None:
        with telemetry.upstream_attempt(provider="openai", model="m", operation="chat",
                                        server_address="h") as a:
            a.set_response("m", 1, output_tokens, ["stop"])

    def output_tokens(reader: InMemoryMetricReader) -> list[HistogramDataPoint]:
        data = reader.get_metrics_data()
        return [p for rm in (data.resource_metrics if data else []) for sm in rm.scope_metrics
                for m in sm.metrics if m.name == "gen_ai.client.token.usage"
                for p in m.data.data_points if isinstance(p, HistogramDataPoint)
                and labels(p)["gen_ai.token.type"] == "output"]

    try:
        attempt(10)
        attempt(30)
        (first,) = output_tokens(delta)
        attempt(5)
        (second,) = output_tokens(delta)
        (total,) = output_tokens(cumulative)
    finally:
        telemetry.shutdown()
    assert (first.count, first.sum, first.min, first.max) == (2, 40, 10, 30)
    assert (second.count, second.sum, second.min, second.max) == (1, 5, 5, 5)
    assert second.start_time_unix_nano >= first.time_unix_nano
    assert sum(second.bucket_counts) == 1
    assert (total.count, total.sum, total.min, total.max) == (3, 45, 5, 30)
    assert output_tokens(delta) == []  # nothing new


def test_a_duration_links_to_the_trace_of_its_request(live: Live) -> None:
    exemplars: dict[str, list[Exemplar]] = {}

    def collect() -> list[Exemplar] | None:
        # A collection reports the exemplars recorded since the previous one.
        data = live.reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for p in m.data.data_points:
                        exemplars.setdefault(m.name, []).extend(p.exemplars)
        return exemplars.get("http.server.request.duration")

    with serve(build_app(live.telemetry)) as s, httpx.Client(trust_env=False) as c:
        c.get(f"{s.url}/v1/openai/models?model=m1")
        (server,) = eventually(lambda: live.finished("SERVER"))
        (duration,) = eventually(collect)
    (client,) = live.finished("CLIENT")
    assert (duration.trace_id, duration.span_id) == (server.context.trace_id,
                                                     server.context.span_id)
    assert {e.span_id for e in exemplars["gen_ai.client.token.usage"]} == {
        client.context.span_id}


def test_values_recorded_on_many_threads_are_all_counted_in_their_buckets() -> None:
    """Values wait in a queue and are folded in batches (every FOLD_AT, and at collection):
    none is lost or counted twice, whatever thread recorded it."""
    histogram = GatewayHistogram("h", unit="s", description="", boundaries=(1.0, 10.0))
    reader = InMemoryMetricReader()
    MetricsHub([histogram], [reader], resource=Resource.create({}),
               scope=InstrumentationScope("t"))
    per_thread = FOLD_AT * 3 + 7  # several folds by the recorders, a remainder at collection
    key = (("k", "v"),)

    def record() -> None:
        for n in range(per_thread):
            histogram.record(float(n % 3) * 5, key)  # 0, 5, 10: the first and second buckets
        histogram.record(-1.0, key)  # ignored, as are the two below
        histogram.record(float("nan"), key)
        histogram.record(float("inf"), key)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    data = reader.get_metrics_data()
    assert data is not None
    (point,) = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert isinstance(point, HistogramDataPoint)
    thirds = [len(range(start, per_thread, 3)) * 4 for start in range(3)]
    assert point.count == per_thread * 4
    assert list(point.bucket_counts) == [thirds[0], thirds[1] + thirds[2], 0]
    assert point.sum == 5 * thirds[1] + 10 * thirds[2]
    assert (point.min, point.max) == (0, 10)


def test_folded_batches_count_what_the_sdk_counts() -> None:
    """Each series folds its queued values at once (sorted, then cut at every bound): the
    counts, sum, min and max are the SDK's own histogram's for the same values, values on a
    bound included, across several folds and a remainder folded at collection."""
    from random import Random

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    bounds = (0.005, 0.01, 0.025, 0.05, 0.1, 1.0, 10.0)
    rng = Random(6)
    values: list[float] = [*bounds, 0, 0.0, 10, 11]  # on the bounds, zero, ints, overflow
    values += [rng.choice(bounds) * rng.choice((0.5, 1, 1.5)) for _ in range(FOLD_AT * 5)]
    values += [rng.expovariate(20) for _ in range(FOLD_AT * 2 + 19)]
    rng.shuffle(values)
    key = (("route", "/x"),)
    ours = GatewayHistogram("h", unit="s", description="", boundaries=bounds)
    reader = InMemoryMetricReader()
    MetricsHub([ours], [reader], resource=Resource.create({}), scope=InstrumentationScope("t"))
    sdk_reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[sdk_reader], views=[
        View(instrument_name="h", aggregation=ExplicitBucketHistogramAggregation(bounds))])
    theirs = provider.get_meter("t").create_histogram("h", unit="s")
    for value in values:
        ours.record(value, key)
        theirs.record(value, dict(key))
    for ignored in (-1.0, -0.0001, float("nan"), float("inf"), float("-inf")):
        ours.record(ignored, key)  # the SDK's histogram ignores these: so must ours
    data, expected_data = reader.get_metrics_data(), sdk_reader.get_metrics_data()
    assert data is not None and expected_data is not None
    (point,) = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    (expected,) = expected_data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert isinstance(point, HistogramDataPoint) and isinstance(expected, HistogramDataPoint)
    assert list(point.bucket_counts) == list(expected.bucket_counts)
    assert point.count == expected.count == len(values)
    assert (point.min, point.max) == (expected.min, expected.max)
    assert abs(point.sum - expected.sum) < 1e-9
    provider.shutdown()


def test_each_bucket_a_batch_reaches_gets_its_latest_sampled_value_as_exemplar() -> None:
    from gateway.telemetry.spans import SERVER, Tracer

    tracer = Tracer([])
    histogram = GatewayHistogram("h", unit="s", description="", boundaries=(1.0, 10.0))
    reader = InMemoryMetricReader()
    MetricsHub([histogram], [reader], resource=Resource.create({}),
               scope=InstrumentationScope("t"))
    spans = [tracer.start(f"s{n}", SERVER, {}, None) for n in range(5)]
    for span in spans:
        tracer.end(span)
    spans[4].sampled = False  # an unsampled span is never an exemplar
    series = histogram.series((("k", "v"),))
    for value, span in ((0.5, spans[0]), (5.0, spans[1]), (0.7, spans[2]), (4.0, spans[3]),
                        (3.0, spans[4]), (2.0, None), (20.0, None)):
        series.add(value, span)
    data = reader.get_metrics_data()
    assert data is not None
    (point,) = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert list(point.bucket_counts) == [2, 4, 1]
    found = {e.value: e.span_id for e in point.exemplars}
    assert found == {0.7: int.from_bytes(spans[2].span_id, "big"),
                     4.0: int.from_bytes(spans[3].span_id, "big")}


def test_a_count_too_large_for_a_double_is_ignored_not_raised() -> None:
    """A provider may report any integer as a token count: one no double can hold is ignored
    as an infinite value is, and the values folded with it are still counted."""
    histogram = GatewayHistogram("h", unit="{token}", description="", boundaries=(1.0, 10.0))
    reader = InMemoryMetricReader()
    MetricsHub([histogram], [reader], resource=Resource.create({}),
               scope=InstrumentationScope("t"))
    for value in (3, 10**400, 5, -2):
        histogram.record(value, (("k", "v"),))
    data = reader.get_metrics_data()
    assert data is not None
    (point,) = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert list(point.bucket_counts) == [0, 2, 0]
    assert (point.count, point.min, point.max) == (2, 3, 5)
