"""Ended requests and upstream attempts are recorded a few dozen at a time, and whenever
metrics are collected or spans exported: nothing a reader or a collector asks for waits."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from gateway.telemetry import Telemetry, TelemetryConfig
from gateway.telemetry.otlp import SpanBatcher, SpanEncoder
from gateway.telemetry.server_span import END_AT
from gateway.telemetry.spans import NO_ATTRIBUTES, SERVER, Tracer
from tests.support.server import serve
from tests.telemetry.conftest import KeptSender, build_app, eventually, histogram_points
from tests.telemetry.test_exporters import Receiver


def _counts(reader: InMemoryMetricReader) -> dict[str, int]:
    """Values recorded so far by metric name (every series added up)."""
    return {name: sum(point.count for point in points)
            for name, points in histogram_points(reader).items()}


def test_a_collection_sees_every_request_ended_before_it() -> None:
    """Fewer requests than wait to be recorded together: a reader still counts them all."""
    reader = InMemoryMetricReader()
    telemetry = Telemetry(TelemetryConfig(enabled=True, metric_readers=(reader,)))
    try:
        with serve(build_app(telemetry)) as s, httpx.Client(trust_env=False) as client:
            for number in range(1, 4):
                answer = client.get(f"{s.url}/v1/openai/models?model=m1")
                assert answer.status_code == 200
                counts = _counts(reader)
                assert counts["http.server.request.duration"] == number
                assert counts["gen_ai.client.operation.duration"] == number
                assert counts["gen_ai.client.token.usage"] == 2 * number  # input and output
            scraped = client.get(f"{s.url}/metrics").text
        assert 'http_server_request_duration_seconds_count{' in scraped
        line = next(line for line in scraped.splitlines()
                    if line.startswith("http_server_request_duration_seconds_count{")
                    and 'http_route="/v1/{provider}/models"' in line)
        assert line.endswith(" 3.0")
    finally:
        telemetry.shutdown()


def test_ends_wait_to_be_recorded_together_and_each_is_recorded_once() -> None:
    """The first end is recorded at once (its span starts the exporter's thread); then ends
    wait until `END_AT` have, and are recorded on the thread whose end reached it."""
    spans = InMemorySpanExporter()
    telemetry = Telemetry(TelemetryConfig(enabled=True, span_exporter=spans))
    server = telemetry._server
    server.batch = END_AT  # as without a synchronous exporter (which has each recorded at once)
    scope = {"type": "http", "method": "GET", "scheme": "http", "http_version": "1.1",
             "path": "/", "headers": [(b"host", b"gateway.test")]}
    try:
        for number in range(1 + END_AT * 2 + 3):
            telemetry.observe_request(scope).finish(200, "/", None, 0.001)
            recorded = len(spans.get_finished_spans())
            if number == 0:
                assert recorded == 1
            else:
                assert recorded == 1 + number // END_AT * END_AT
        assert len(server.finished) == 3
        telemetry.force_flush()
        assert not server.finished
        assert len(spans.get_finished_spans()) == 1 + END_AT * 2 + 3
        assert {span.name for span in spans.get_finished_spans()} == {"GET /"}
    finally:
        telemetry.shutdown()


def test_two_threads_recording_at_once_record_each_end_once() -> None:
    """A reader's thread and the event loop's may record at the same moment."""
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    telemetry = Telemetry(TelemetryConfig(enabled=True, span_exporter=spans,
                                          metric_readers=(reader,)))
    server = telemetry._server
    client = telemetry._client
    server.batch = client.batch = 10 ** 9  # only the threads below record
    scope = {"type": "http", "method": "POST", "scheme": "http", "http_version": "1.1",
             "path": "/", "headers": [(b"host", b"gateway.test")]}
    ends = 20_000
    try:
        for _ in range(ends):
            observation = telemetry.observe_request(scope)
            with telemetry.upstream_attempt("openai", "m1", "chat", "api.test") as attempt:
                attempt.set_response("m1", 3, 4, ["stop"])
            observation.finish(200, "/", None, 0.001)
        start = threading.Barrier(2)

        def record() -> None:
            start.wait()
            telemetry.record_ended()

        threads = [threading.Thread(target=record) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        finished = spans.get_finished_spans()
        assert len(finished) == 2 * ends
        assert len({span.context.span_id for span in finished}) == 2 * ends
        counts = _counts(reader)
        assert counts["http.server.request.duration"] == ends
        assert counts["gen_ai.client.operation.duration"] == ends
    finally:
        telemetry.shutdown()


def test_spans_reach_the_collector_on_its_schedule_without_a_flush(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fewer requests than wait to be recorded together: the export thread records them and
    sends their spans within its schedule, with no flush and no further request."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    receiver = Receiver()
    with serve(receiver.app) as collector:
        telemetry = Telemetry(TelemetryConfig(enabled=True, otlp_endpoint=collector.url))
        try:
            with serve(build_app(telemetry)) as s, httpx.Client(trust_env=False) as client:
                for _ in range(5):
                    assert client.get(f"{s.url}/v1/openai/models?model=m1").status_code == 200
                names = eventually(lambda: (
                    len(receiver.span_names().get("GET /v1/{provider}/models", [])) == 5
                    and len(receiver.span_names().get("list_models m1", [])) == 5
                    and receiver.span_names()), timeout=10)
                assert names
        finally:
            telemetry.shutdown()


def test_a_failure_to_record_does_not_stop_the_exports(caplog: pytest.LogCaptureFixture) -> None:
    """The export thread records before it exports; if that fails, the spans already handed
    over still go out, and later exports still run."""
    sender = KeptSender()

    def broken() -> None:
        raise RuntimeError("recording failed")

    batcher = SpanBatcher(sender, SpanEncoder(Resource.create({}),  # type: ignore[arg-type]
                                              InstrumentationScope("gateway")),
                          schedule_delay_millis=60_000, before_export=broken)
    tracer = Tracer([batcher])
    try:
        for round_ in range(2):
            span = tracer.start(f"GET /{round_}", SERVER, NO_ATTRIBUTES, None)
            tracer.end(span)
            with caplog.at_level(logging.ERROR, logger="gateway.telemetry.otlp"):
                assert batcher.force_flush()
            assert len(sender.sent) == round_ + 1
        assert [r.getMessage() for r in caplog.records].count("recording ended spans failed") == 2
    finally:
        batcher.shutdown()


def test_spans_handed_over_on_two_threads_at_once_start_one_export_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A metric reader's thread may record the first ends while the event loop does: the
    first spans then reach the batcher on both, and only one export thread may start."""
    from gateway.telemetry import otlp

    started: list[threading.Thread] = []
    real = threading.Thread

    class SlowToMake(real):  # widens the moment between the check and the start
        def __init__(self, *args: object, **kwargs: object) -> None:
            time.sleep(0.05)
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    monkeypatch.setattr(otlp.threading, "Thread", SlowToMake)
    batcher = SpanBatcher(KeptSender(),  # type: ignore[arg-type]
                          SpanEncoder(Resource.create({}), InstrumentationScope("gateway")),
                          schedule_delay_millis=60_000)
    tracer = Tracer([batcher])
    ready = threading.Barrier(4)

    def hand_over(number: int) -> None:
        span = tracer.start(f"GET /{number}", SERVER, NO_ATTRIBUTES, None)
        ready.wait()
        tracer.end(span)

    threads = [real(target=hand_over, args=(number,)) for number in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [thread.name for thread in started
                if thread.name == "gateway-span-export"] == ["gateway-span-export"]
    finally:
        batcher.shutdown()
