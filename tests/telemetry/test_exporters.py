"""Export over real HTTP: the Prometheus scrape endpoint and an OTLP/HTTP receiver."""

from __future__ import annotations

import gzip
import random
import threading
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.telemetry import Telemetry, TelemetryConfig
from gateway.telemetry.otlp import (
    ENCODE_AT,
    OtlpSpanSender,
    SpanBatcher,
    SpanEncoder,
    _plain_http,
)
from gateway.telemetry.spans import (
    CLIENT,
    SERVER,
    Ending,
    RemoteParent,
    Span,
    Tracer,
    to_readable,
)
from tests.hardening.process import gateway_process
from tests.support.server import serve
from tests.telemetry.conftest import KeptSender, Live, build_app, eventually


def test_prometheus_endpoint_serves_recorded_metrics(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s, httpx.Client(base_url=s.url,
                                                             trust_env=False) as c:
        c.get("/v1/openai/models?model=gpt-x")
        eventually(lambda: live.points("http.server.request.duration"))
        r = c.get("/metrics")
        head = c.head("/metrics")
        post = c.post("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'target_info{' in text and 'service_name="gateway-test"' in text
    duration = [line for line in text.splitlines()
                if line.startswith("http_server_request_duration_seconds_count{")]
    assert len(duration) == 1
    assert 'http_route="/v1/{provider}/models"' in duration[0]
    assert 'http_response_status_code="200"' in duration[0]
    assert duration[0].endswith(" 1.0")
    assert "openai/models" not in text  # raw paths never become labels
    assert 'gen_ai_token_type="input"' in text
    assert "gen_ai_client_operation_duration_seconds_bucket{" in text
    assert head.status_code == 200 and head.content == b""
    assert post.status_code == 405


def test_prometheus_endpoint_speaks_openmetrics_when_asked(live: Live) -> None:
    with serve(build_app(live.telemetry)) as s:
        r = httpx.get(f"{s.url}/metrics", trust_env=False,
                      headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


class Receiver:
    """A tiny OTLP/HTTP collector keeping every body it is sent, per signal."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {"traces": [], "metrics": []}
        self.lock = threading.Lock()
        self.app = Starlette(routes=[Route("/v1/{signal}", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        with self.lock:
            self.bodies.setdefault(request.path_params["signal"], []).append(body)
        return Response(b"", media_type="application/x-protobuf")

    def span_names(self) -> dict[str, list[object]]:
        """Every span received so far, by name."""
        with self.lock:
            bodies = list(self.bodies["traces"])
        found: dict[str, list[object]] = {}
        for body in bodies:
            for resource in ExportTraceServiceRequest.FromString(body).resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        found.setdefault(span.name, []).append(span)
        return found


def test_otlp_http_receiver_gets_spans_and_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    receiver = Receiver()
    with serve(receiver.app) as collector:
        telemetry = Telemetry(TelemetryConfig(enabled=True, service_name="gateway-otlp",
                                              otlp_endpoint=collector.url + "/"))
        try:
            with serve(build_app(telemetry)) as s:
                r = httpx.get(f"{s.url}/v1/openai/models?model=m1", trust_env=False)
                assert r.status_code == 200
        finally:
            telemetry.shutdown()  # the lifespan's flush: batched spans and metrics go out
    traces = [ExportTraceServiceRequest.FromString(b) for b in receiver.bodies["traces"]]
    spans = {span.name: (resource, span) for t in traces for resource in t.resource_spans
             for scope in resource.scope_spans for span in scope.spans}
    resource, server = spans["GET /v1/{provider}/models"]
    assert {"list_models m1", "GET /v1/{provider}/models"} <= set(spans)
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "gateway-otlp"
    _, client = spans["list_models m1"]
    assert client.parent_span_id == server.span_id and client.trace_id == server.trace_id
    metrics = [ExportMetricsServiceRequest.FromString(b) for b in receiver.bodies["metrics"]]
    names = {m.name for req in metrics for rm in req.resource_metrics
             for sm in rm.scope_metrics for m in sm.metrics}
    assert {"http.server.request.duration", "gen_ai.client.operation.duration",
            "gen_ai.client.token.usage"} <= names


def test_spans_are_encoded_exactly_as_the_sdk_encodes_them() -> None:
    resource = Resource.create({"service.name": "enc", "replica": 3, "ratio": 1.5, "ok": True})
    scope = InstrumentationScope("gateway")
    tracer = Tracer([])
    caller = RemoteParent(bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736"),
                          bytes.fromhex("00f067aa0ba902b7"), True,
                          "vendor=1,other=x")
    server = tracer.start("GET /x/{y}", SERVER, {"http.request.method": "GET",
                                                 "server.port": 8080}, caller)
    client = tracer.start("chat m", CLIENT, {
        "gen_ai.request.model": "m", "negative": -3, "large": 2**40, "ratio": 0.25,
        "flag": False, "gen_ai.response.finish_reasons": ("stop", "length"), "empty": ""},
        server)
    client.error = "upstream_timeout"
    root = tracer.start("", SERVER, {}, None)
    for span in (client, server, root):
        tracer.end(span)
    spans = [server, client, root]
    expected = encode_spans([to_readable(s, resource=resource, scope=scope)
                             for s in spans]).SerializeToString()
    encoder = SpanEncoder(resource, scope)
    assert encoder.encode(spans) == expected
    assert encoder.encode(spans) == expected  # again, from the encoder's cache


def test_spans_with_shared_attributes_are_encoded_as_the_sdk_encodes_them() -> None:
    """A span's shared attributes (`Span.base`) are encoded once per dictionary; each span
    still carries them, followed by its own, exactly as the SDK would send them."""
    resource = Resource.create({"service.name": "enc"})
    scope = InstrumentationScope("gateway")
    tracer = Tracer([])
    shared = {"gen_ai.operation.name": "chat", "server.port": 443, "ok": True}
    other = {"gen_ai.operation.name": "embeddings"}
    spans = []
    for tokens, base in ((3, shared), (4, shared), (3, other), (5, shared)):
        span = tracer.start("chat m", CLIENT, {"gen_ai.usage.output_tokens": tokens}, None,
                            base)
        tracer.end(span)
        spans.append(span)
    expected = encode_spans([to_readable(s, resource=resource, scope=scope)
                             for s in spans]).SerializeToString()
    encoder = SpanEncoder(resource, scope)
    assert encoder.encode(spans) == expected
    assert encoder.request([encoder.span(s) for s in spans]) == expected
    readable = to_readable(spans[0], resource=resource, scope=scope)
    assert dict(readable.attributes or {}) == {**shared, "gen_ai.usage.output_tokens": 3}


def test_random_spans_are_encoded_as_the_sdk_encodes_them() -> None:
    """Seeded random spans of every shape the encoder tells apart: with and without a
    parent (local or remote) and trace state, errors, shared and own attributes of each
    value type, and sizes on both sides of one- and two-byte lengths; each in a batch of
    its own and all together, twice (the second time from the encoder's caches). Token counts
    (`Span.input_tokens`, `output_tokens`) are written after the span's own attributes; half
    the spans keep their shared parts in an `Ending` shared by the spans that end alike."""
    rng = random.Random(6)
    resource = Resource.create({"service.name": "enc"})
    scope = InstrumentationScope("gateway")
    tracer = Tracer([])
    bases = [{}, {"gen_ai.operation.name": "chat"},
             {"http.request.method": "POST", "server.port": 8080, "url.scheme": "http"}]
    values = [0, 1, 127, 128, 16_383, 16_384, -1, 2**62, True, False, 0.5, "", "x", "é",
              ("stop",), ("stop", "length")]
    spans = []
    endings: dict[tuple[str, int, str | None, int], Ending] = {}
    for _ in range(300):
        parent = rng.choice([None, None, RemoteParent(rng.randbytes(16), rng.randbytes(8),
                                                      True, rng.choice(["", "k=v"]))])
        if spans and rng.random() < 0.4:
            parent = rng.choice(spans)
        own = {f"a{n}": rng.choice(values) for n in range(rng.choice([0, 0, 1, 2, 5]))}
        if rng.random() < 0.3:  # ints of every size, under short and long keys
            own[rng.choice(["gen_ai.request.seed", "k" * rng.choice([100, 110, 120])])] = (
                rng.randrange(-2**63, 2**63) if rng.random() < 0.3
                else rng.randrange(2**rng.randint(1, 63)))
        if rng.random() < 0.1:  # long enough for a length of two or three bytes
            own["text"] = "t" * rng.choice([60, 120, 200, 16_400])
        span = tracer.start(rng.choice(["", "GET", "chat m" * rng.randint(1, 30)]),
                            rng.choice([SERVER, CLIENT]), own, parent, rng.choice(bases))
        span.error = rng.choice([None, None, "500", "TimeoutError"])
        if rng.random() < 0.5:  # token counts, set as the upstream attempt sets them
            span.input_tokens = rng.choice([0, 12, 127, 128, 16_384, 2**40, -1])
            span.output_tokens = rng.choice([None, 0, 7, 300])
        if rng.random() < 0.5:  # spans that end alike share an Ending, remote parent or not
            span.ending = endings.setdefault(
                (span.name, span.kind, span.error, id(span.base)), Ending())
        tracer.end(span)
        spans.append(span)
    encoder = SpanEncoder(resource, scope)
    for _ in range(2):
        for span in spans:
            expected = encode_spans([to_readable(span, resource=resource,
                                                 scope=scope)]).SerializeToString()
            assert encoder.encode([span]) == expected
    expected = encode_spans([to_readable(s, resource=resource, scope=scope)
                             for s in spans]).SerializeToString()
    assert encoder.encode(spans) == expected


def test_the_batcher_encodes_ended_spans_together_and_exports_every_one() -> None:
    """Ended spans wait as they are until `ENCODE_AT` have ended, are then encoded together
    on the thread that ended them, and a flush exports those encoded and those still
    waiting, each once."""
    sender = KeptSender()
    encoded_on: list[str] = []

    class Encoder(SpanEncoder):
        def span(self, span: Span) -> bytes:
            encoded_on.append(threading.current_thread().name)
            return super().span(span)

    resource = Resource.create({"service.name": "enc"})
    scope = InstrumentationScope("gateway")
    encoder = Encoder(resource, scope)
    batcher = SpanBatcher(sender, encoder,  # type: ignore[arg-type]
                          schedule_delay_millis=60_000)
    tracer = Tracer([batcher])
    spans = []
    for number in range(ENCODE_AT * 2 + 5):
        span = tracer.start(f"GET /{number}", SERVER, {"http.response.status_code": 200}, None)
        tracer.end(span)
        spans.append(span)
        if number == 0:  # the first span starts the export thread, encoded at once
            assert len(encoded_on) == 1
        elif number < ENCODE_AT:
            assert len(encoded_on) == 1
    assert len(encoded_on) == 1 + ENCODE_AT * 2  # the last five still wait
    assert set(encoded_on) == {threading.current_thread().name}
    assert batcher.force_flush()
    batcher.shutdown()
    assert len(encoded_on) == len(spans)
    assert b"".join(sender.sent) == SpanEncoder(resource, scope).encode(spans)
    assert len(sender.sent) == 1


def test_forked_workers_export_their_spans_while_they_run(tmp_path: Path) -> None:
    receiver = Receiver()
    with serve(receiver.app) as collector:
        env = {"ENABLE_TELEMETRY": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
               "SERVER_WORKERS": "2", "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with gateway_process(env, tmp_path) as gw:
            for _ in range(10):
                assert httpx.get(f"{gw.url}/health", timeout=10).status_code == 200
            # The workers were forked after start-up: each must run its own export thread.
            health = eventually(lambda: len(receiver.span_names().get("GET /health", [])) >= 10,
                                timeout=10)
    assert health


def test_otel_sdk_disabled_switches_telemetry_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenTelemetry's own switch is honoured even with ENABLE_TELEMETRY on."""
    from gateway.telemetry.core import NoopTelemetry, create_telemetry

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert isinstance(create_telemetry(TelemetryConfig(enabled=True)), NoopTelemetry)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    live = create_telemetry(TelemetryConfig(enabled=True))
    assert not isinstance(live, NoopTelemetry)
    live.shutdown()


_PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                    "no_proxy", "NETRC", "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
                    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _one_span_request() -> bytes:
    tracer = Tracer([])
    span = tracer.start("GET /", SERVER, {}, None)
    tracer.end(span)
    return SpanEncoder(Resource.create({"service.name": "send"}),
                       InstrumentationScope("gateway")).encode([span])


def test_a_plain_http_collector_gets_spans_over_urllib3_and_a_proxied_one_as_the_sdk_sends(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Spans go to a plain-HTTP collector through the SDK's urllib3 transport (cheaper per
    export than `requests`). When the environment names a proxy for the collector, they go
    through it, as the SDK's own exporter sends them: here the collector's name resolves
    nowhere, so only the proxy (a receiver taking absolute-form requests) can deliver them."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    payload = _one_span_request()
    receiver = Receiver()
    with serve(receiver.app) as collector:
        direct = OtlpSpanSender(endpoint=f"{collector.url}/v1/traces")
        assert isinstance(direct._client._transport, Urllib3HTTPTransport)
        assert direct.send(payload)
        monkeypatch.setenv("HTTP_PROXY", collector.url)
        proxied = OtlpSpanSender(endpoint="http://collector.invalid:4318/v1/traces")
        assert not isinstance(proxied._client._transport, Urllib3HTTPTransport)
        assert proxied.send(payload)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        bypassing = OtlpSpanSender(endpoint=f"{collector.url}/v1/traces")
        assert isinstance(bypassing._client._transport, Urllib3HTTPTransport)
        assert bypassing.send(payload)
        for sender in (direct, proxied, bypassing):
            sender.shutdown()
    assert receiver.bodies["traces"] == [payload] * 3


@pytest.mark.parametrize(("endpoint", "environment", "netrc", "plain"), [
    ("http://collector:4318/v1/traces", {}, False, True),
    ("HTTP://collector:4318/v1/traces", {}, False, True),
    ("https://collector:4318/v1/traces", {}, False, False),
    ("", {}, False, False),
    ("http://collector:4318/v1/traces", {"http_proxy": "http://proxy:3128"}, False, False),
    ("http://collector:4318/v1/traces", {"ALL_PROXY": "http://proxy:3128"}, False, False),
    ("http://collector:4318/v1/traces",
     {"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "other,collector"}, False, True),
    ("http://collector:4318/v1/traces", {"HTTPS_PROXY": "http://proxy:3128"}, False, True),
    ("http://collector:4318/v1/traces", {}, True, False),
    ("http://collector:4318/v1/traces", {"NETRC": "/somewhere/netrc"}, False, False),
    ("http://collector:4318/v1/traces",
     {"OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER": "mine"}, False, False),
    ("http://collector:4318/v1/traces",
     {"OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER": "mine"}, False, False),
])
def test_the_urllib3_transport_is_taken_only_where_requests_would_add_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str,
        environment: dict[str, str], netrc: bool, plain: bool) -> None:
    for name in (*_PROXY_VARIABLES, "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if netrc:
        (tmp_path / ".netrc").write_text("machine collector login user password secret\n")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert _plain_http(endpoint) is plain
