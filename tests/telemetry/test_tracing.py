"""Spans read back through the in-memory exporter: SERVER, CLIENT and W3C propagation."""

from __future__ import annotations

import os
from collections.abc import Sequence

import httpx
import pytest
from opentelemetry.context import Context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.util.types import Attributes

from gateway.telemetry import Telemetry, TelemetryConfig, core
from gateway.telemetry.middleware import accept_request_id
from gateway.telemetry.otlp import SpanEncoder
from gateway.telemetry.spans import CLIENT, CURRENT_SPAN, SERVER, RemoteParent, Span, Tracer
from tests.support.server import serve
from tests.telemetry.conftest import SECRET, Live, build_app, eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def get(base_url: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as c:
        return c.get(path, headers=headers)


def test_server_span_names_the_route_template_not_the_raw_path(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s:
        assert get(s.url, "/v1/openai/models?model=gpt-secret-name").status_code == 200
        (span,) = eventually(lambda: live.finished("SERVER"))
        port = s.port
    attrs = dict(span.attributes or {})
    assert span.name == "GET /v1/{provider}/models"
    assert span.kind is SpanKind.SERVER
    assert attrs["http.route"] == "/v1/{provider}/models"
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.response.status_code"] == 200
    assert (attrs["server.address"], attrs["server.port"]) == ("127.0.0.1", port)
    assert not [v for v in attrs.values() if "openai" in str(v) or "gpt-secret" in str(v)]
    assert span.status.status_code is StatusCode.UNSET


def test_route_template_is_built_through_mounts(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s:
        assert get(s.url, "/admin/acme/items/42").json() == {"item": "42"}
        (span,) = eventually(lambda: live.finished("SERVER"))
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/admin/{tenant}/items/{item}"


def test_unmatched_path_has_no_route(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s:
        assert get(s.url, "/no/such/thing").status_code == 404
        (span,) = eventually(lambda: live.finished("SERVER"))
    assert span.name == "GET"
    assert span.attributes is not None
    assert "http.route" not in span.attributes
    assert span.attributes["http.response.status_code"] == 404


def test_incoming_traceparent_is_continued_and_sent_upstream(live: Live) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    with serve(build_app(live.telemetry)) as s:
        body = get(s.url, "/v1/openai/models?model=m1", headers={"traceparent": traceparent}).json()
        server, client = eventually(lambda: sorted(
            live.finished(), key=lambda sp: sp.kind is SpanKind.CLIENT) if len(
                live.finished()) == 2 else None)
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None and f"{server.parent.span_id:016x}" == PARENT_ID
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    upstream = body["upstream_headers"]["traceparent"]
    assert upstream == f"00-{TRACE_ID}-{client.context.span_id:016x}-01"


def test_without_traceparent_a_new_trace_starts_and_still_reaches_upstream(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s:
        body = get(s.url, "/v1/openai/models").json()
        (server,) = eventually(lambda: live.finished("SERVER"))
    assert server.parent is None
    version, trace_id, _span, _flags = body["upstream_headers"]["traceparent"].split("-")
    assert (version, trace_id) == ("00", f"{server.context.trace_id:032x}")


def test_client_span_carries_genai_attributes(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s:
        get(s.url, "/v1/anthropic/models?model=claude-x")
        (span,) = eventually(lambda: live.finished("CLIENT"))
    assert span.name == "list_models claude-x"
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "list_models",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-x",
        "server.address": "upstream.test",
        "gen_ai.response.model": "claude-x",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.response.finish_reasons": ("stop",),
    }


def test_unexpected_error_marks_the_span_without_its_message(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s:
        assert get(s.url, "/boom").status_code == 500
        (span,) = eventually(lambda: live.finished("SERVER"))
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.attributes["http.response.status_code"] == 500
    assert SECRET not in repr(span.to_json())
    assert not span.events


def test_attempt_left_by_an_exception_records_only_the_exception_type(live: Live) -> None:
    with pytest.raises(ConnectionError), live.telemetry.upstream_attempt(
            provider="openai", model="m", operation="chat", server_address="h"):
        raise ConnectionError(f"Authorization: Bearer {SECRET}")
    (span,) = live.finished("CLIENT")
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ConnectionError"
    assert span.status.description == "ConnectionError"
    assert "Bearer" not in span.to_json()


def test_an_unsampled_caller_trace_is_continued_upstream_but_not_exported(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s:
        body = get(s.url, "/v1/openai/models?model=m1",
                   headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"}).json()
        assert eventually(lambda: live.points("http.server.request.duration"))
    version, trace_id, span_id, flags = body["upstream_headers"]["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "00")
    assert span_id != PARENT_ID
    assert live.finished() == []
    assert live.points("gen_ai.client.operation.duration")  # metrics do not sample


def test_the_callers_tracestate_travels_upstream(live: Live) -> None:
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "vendor=abc,x=1"}
    with serve(build_app(live.telemetry)) as s:
        body = get(s.url, "/v1/openai/models", headers=headers).json()
        server, client = eventually(lambda: sorted(
            live.finished(), key=lambda sp: sp.kind is SpanKind.CLIENT) if len(
                live.finished()) == 2 else None)
    assert body["upstream_headers"]["tracestate"] == "vendor=abc,x=1"
    assert client.context.trace_state.to_header() == "vendor=abc,x=1"
    assert server.parent is not None and server.parent.is_remote


@pytest.mark.parametrize(("sampler", "argument", "sampled"), [
    ("always_off", None, False), ("traceidratio", "0", False), ("traceidratio", "1", True),
    ("parentbased_traceidratio", "0", False), ("always_on", None, True)])
def test_the_sampler_set_in_the_environment_decides(
        monkeypatch: pytest.MonkeyPatch, sampler: str, argument: str | None,
        sampled: bool) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    if argument is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", argument)
    spans = InMemorySpanExporter()
    telemetry = Telemetry(TelemetryConfig(enabled=True, span_exporter=spans))
    try:
        with serve(build_app(telemetry)) as s:
            body = get(s.url, "/v1/openai/models").json()
    finally:
        telemetry.shutdown()
    assert body["upstream_headers"]["traceparent"].endswith("-01" if sampled else "-00")
    assert len(spans.get_finished_spans()) == (2 if sampled else 0)


_SDK_SAMPLERS = {
    "always_on": ALWAYS_ON, "always_off": ALWAYS_OFF, "ratio": TraceIdRatioBased(0.3),
    "parent_ratio": ParentBasedTraceIdRatio(0.3), "parent_off": DEFAULT_OFF,
    "parent_on_new": ParentBased(ALWAYS_ON),
    "mixed": ParentBased(ALWAYS_OFF, remote_parent_sampled=TraceIdRatioBased(0.5),
                         remote_parent_not_sampled=ALWAYS_ON,
                         local_parent_not_sampled=TraceIdRatioBased(0.7)),
}


@pytest.mark.parametrize("name", sorted(_SDK_SAMPLERS))
def test_the_sdks_samplers_decide_as_when_asked(name: str) -> None:
    """The SDK's samplers are decided without asking them: every span must get the decision,
    trace state and attributes the sampler itself gives, for every kind of parent (random
    trace ids, so ratios are exercised on both sides of their bound)."""
    sampler = _SDK_SAMPLERS[name]
    tracer = Tracer([], sampler=sampler)
    base = {"gen_ai.operation.name": "chat", "server.port": 443}
    unsampled = Tracer([], sampler=ALWAYS_OFF).start("local", SERVER, {}, None)
    parents: list[Span | RemoteParent | None] = [
        None, Tracer([]).start("local", SERVER, {}, None), unsampled,
        RemoteParent(bytes.fromhex(TRACE_ID), bytes.fromhex(PARENT_ID), True, "vendor=abc"),
        RemoteParent(bytes.fromhex(TRACE_ID), bytes.fromhex(PARENT_ID), False, "x=1,y=2")]
    decisions = set()
    for parent in parents:
        for _ in range(400):
            span = tracer.start("chat m", CLIENT, {"own": 1}, parent, base)
            context = None
            if parent is not None:
                context = set_span_in_context(NonRecordingSpan(SpanContext(
                    int.from_bytes(parent.trace_id, "big"),
                    int.from_bytes(parent.span_id, "big"),
                    is_remote=isinstance(parent, RemoteParent),
                    trace_flags=TraceFlags(TraceFlags.SAMPLED if parent.sampled else 0),
                    trace_state=(TraceState.from_header([parent.trace_state])
                                 if parent.trace_state else None))))
            asked = sampler.should_sample(context, int.from_bytes(span.trace_id, "big"),
                                          "chat m", SpanKind.CLIENT, span.all_attributes())
            assert span.sampled is (asked.decision is Decision.RECORD_AND_SAMPLE)
            assert span.trace_state == (asked.trace_state.to_header() if asked.trace_state
                                        else "")
            if span.sampled:
                assert span.all_attributes() == dict(asked.attributes or {})
            assert span.base is base  # shared, as the encoder's caches need
            decisions.add((parent is None or type(parent).__name__, span.sampled))
    if name in ("ratio", "parent_ratio", "mixed"):  # both sides of a ratio's bound were met
        assert any((kind, True) in decisions and (kind, False) in decisions
                   for kind, _ in decisions)


def test_span_and_request_ids_are_new_in_a_forked_worker() -> None:
    """Ids are made hundreds at a time: a worker forked after some were made must not start
    its spans, nor name its requests, with the ids its parent is about to use."""
    tracer = Tracer([])
    first = tracer.start("before", SERVER, {}, None)  # the parent now holds unused ids
    first_request = accept_request_id(None)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out at once
        try:
            span = tracer.start("child", SERVER, {}, None)
            os.write(write, span.trace_id + span.span_id
                     + bytes.fromhex(accept_request_id(None)))
        finally:
            os._exit(0)
    os.close(write)
    child_ids = os.read(read, 40)
    os.close(read)
    os.waitpid(pid, 0)
    span = tracer.start("parent", SERVER, {}, None)
    request = accept_request_id(None)
    assert len(child_ids) == 40
    assert child_ids[:24] != span.trace_id + span.span_id
    assert child_ids[:16] != first.trace_id
    assert child_ids[24:].hex() not in (request, first_request)
    assert request != first_request


def test_span_ids_are_random_and_never_zero() -> None:
    tracer = Tracer([])
    root = tracer.start("r", SERVER, {}, None)
    spans = [tracer.start("s", CLIENT, {}, root) for _ in range(3000)]
    roots = [tracer.start("r", SERVER, {}, None) for _ in range(3000)]
    span_ids = {s.span_id for s in spans + roots}
    trace_ids = {s.trace_id for s in roots}
    assert len(span_ids) == 6000 and len(trace_ids) == 3000
    assert all(len(i) == 8 and any(i) for i in span_ids)
    assert all(len(i) == 16 and any(i) for i in trace_ids)
    assert all(s.trace_id == root.trace_id and s.parent_id == root.span_id for s in spans)
    assert all(s.trace_hex == s.trace_id.hex() for s in spans + roots)


@pytest.mark.parametrize("state", ["vendor=abc,x=1", "v=a\r\nx-injected: 1", "v=\u00e9", ""])
def test_trace_lines_are_the_headers_and_carry_only_a_printable_trace_state(
        state: str) -> None:
    """`Attempt.trace_lines` goes on the wire unchecked: it must be exactly the trace headers,
    and a trace state that is not printable ASCII (the SDK's parser never lets one through;
    checked again all the same) is left out rather than sent."""
    telemetry = Telemetry(TelemetryConfig(enabled=True, span_exporter=InMemorySpanExporter()))
    parent = Tracer(()).start("caller", SERVER, {}, None)
    parent.trace_state = state
    token = CURRENT_SPAN.set(parent)
    try:
        with telemetry.upstream_attempt(provider="p", model="m", operation="chat",
                                        server_address="h") as attempt:
            lines, headers = attempt.trace_lines, attempt.headers
    finally:
        CURRENT_SPAN.reset(token)
    assert lines == "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    assert headers["traceparent"].split("-")[1] == parent.trace_hex
    assert ("tracestate" in headers) is (state == "vendor=abc,x=1")
    assert lines.count("\r\n") == len(headers) and "injected" not in lines
    telemetry.shutdown()


class _Counting(TraceIdRatioBased):
    """A ratio sampler of its own: it must be asked for every span, as must a parent-based
    sampler delegating to it."""

    def __init__(self) -> None:
        super().__init__(1.0)
        self.asked = 0

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        self.asked += 1
        return SamplingResult(Decision.DROP if self.asked % 2 else Decision.RECORD_AND_SAMPLE)


def test_samplers_of_ones_own_are_asked_for_every_span() -> None:
    for parent_based in (False, True):
        counting = _Counting()
        tracer = Tracer([], sampler=ParentBased(counting) if parent_based else counting)
        spans = [tracer.start("s", SERVER, {}, None) for _ in range(6)]
        assert counting.asked == 6
        assert [span.sampled for span in spans] == [False, True] * 3


class _Tagging(Sampler):
    """Samples every span and gives it an attribute of its own."""

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {"sampling.tag": "kept"})

    def get_description(self) -> str:
        return "tagging"


def test_spans_a_sampler_gives_attributes_keep_each_attribute_once_and_their_own_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampler may give spans attributes of their own, and the start's attributes then move
    in with them. Requests by two methods and calls to two providers must still end with
    their own names, shared attributes and metric labels, each attribute once on the wire."""
    monkeypatch.setattr(core, "_get_from_env_or_default", _Tagging)
    reader = InMemoryMetricReader()
    telemetry = Telemetry(TelemetryConfig(enabled=True, span_exporter=InMemorySpanExporter(),
                                          metric_readers=(reader,)))
    ended: list[Span] = []
    tracer = telemetry._client.tracer
    emit = tracer.emit

    def keep(span: Span) -> None:
        ended.append(span)
        emit(span)

    tracer.emit = keep
    try:
        for method in ("GET", "POST"):
            observation = telemetry.observe_request(
                {"type": "http", "method": method, "headers": [(b"host", b"gw:8080")]})
            for provider in ("alpha", "beta"):
                with telemetry.upstream_attempt(provider, "m", "chat", "h") as attempt:
                    attempt.set_response("m", 3, 4, ["stop"])
            observation.finish(200, "/v1/things", None, 0.01)
        encoder = SpanEncoder(Resource.create({}), InstrumentationScope("gateway"))
        seen = []
        for span in ended:
            (wire,) = ExportTraceServiceRequest.FromString(
                encoder.encode([span])).resource_spans[0].scope_spans[0].spans
            keys = [item.key for item in wire.attributes]
            assert len(keys) == len(set(keys)), keys
            values = {item.key: item.value for item in wire.attributes}
            assert values["sampling.tag"].string_value == "kept"
            if wire.kind == wire.SPAN_KIND_CLIENT:
                seen.append(values["gen_ai.provider.name"].string_value)
                assert values["gen_ai.usage.input_tokens"].int_value == 3
            else:
                seen.append(wire.name)
                assert values["http.request.method"].string_value == wire.name.split()[0]
        assert seen == ["alpha", "beta", "GET /v1/things", "alpha", "beta", "POST /v1/things"]
        data = reader.get_metrics_data()
        assert data is not None
        counts = {point.attributes["gen_ai.provider.name"]: point.count
                  for resource in data.resource_metrics for scope in resource.scope_metrics
                  for metric in scope.metrics if metric.name == "gen_ai.client.operation.duration"
                  for point in metric.data.data_points}
        assert counts == {"alpha": 2, "beta": 2}
    finally:
        telemetry.shutdown()
