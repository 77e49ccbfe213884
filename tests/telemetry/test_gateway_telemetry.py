"""Telemetry through the whole gateway: spans, metrics, trace propagation, Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.app import AppHooks, create_app
from generated.settings import Settings
from tests.simulators.base import ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.server import RunningServer, serve
from tests.telemetry.conftest import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@dataclass
class Observed:
    """A gateway with live telemetry and the in-memory ends of its pipelines."""

    server: RunningServer
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def metric_points(self, name: str) -> list[dict[str, object]]:
        data = self.reader.get_metrics_data()
        found: list[dict[str, object]] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found += [dict(p.attributes or {}) for p in metric.data.data_points]
        return found


@pytest.fixture
def observed(simulators: dict[str, ProviderSimulator]) -> Iterator[Observed]:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    env = gateway_env(simulators) | {"ENABLE_TELEMETRY": "true", "ROUTING_RETRIES": "0"}
    app = create_app(Settings.from_env(env),
                     hooks=AppHooks(span_exporter=spans, metric_readers=(reader,)))
    with serve(app) as server:
        yield Observed(server, spans, reader)


def test_a_generate_call_is_a_server_span_with_a_client_span_per_attempt(
        observed: Observed, anthropic_sim: ProviderSimulator) -> None:
    r = httpx.post(f"{observed.server.url}/llms/anthropic/generate", timeout=10,
                   headers={"traceparent": TRACEPARENT},
                   json={"model": "claude-sonnet-4-20250514",
                         "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    spans = eventually(lambda: [s for s in observed.spans.get_finished_spans()
                                if s.kind.name == "SERVER"])
    server = spans[0]
    client = next(s for s in observed.spans.get_finished_spans() if s.kind.name == "CLIENT")
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert client.context.trace_id == server.context.trace_id
    attrs = dict(client.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == "claude-sonnet-4-20250514"
    assert attrs["gen_ai.response.model"] == "claude-sonnet-4-20250514"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("stop",)
    assert attrs["server.address"].startswith("127.0.0.1")
    # The provider received the trace context of the CLIENT span, not the caller's headers.
    sent = anthropic_sim.requests[-1].headers["traceparent"]
    assert sent == f"00-{TRACE_ID}-{client.context.span_id:016x}-01"
    usage = observed.metric_points("gen_ai.client.token.usage")
    assert {p["gen_ai.token.type"] for p in usage} == {"input", "output"}
    assert all(p["gen_ai.provider.name"] == "anthropic" for p in usage)
    assert observed.metric_points("gen_ai.client.operation.duration")
    assert eventually(lambda: observed.metric_points("http.server.request.duration"))


def test_streams_record_time_to_first_token(observed: Observed) -> None:
    with httpx.stream("POST", f"{observed.server.url}/v1/chat/completions", timeout=10,
                      json={"model": "openai/gpt-4o-mini", "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status_code == 200
        assert b"[DONE]" in b"".join(r.iter_bytes())
    assert eventually(lambda: observed.metric_points("gen_ai.server.time_to_first_token"))


def test_upstream_failures_carry_an_error_type(observed: Observed,
                                               openai_sim: ProviderSimulator) -> None:
    openai_sim.fail_next(500)
    r = httpx.post(f"{observed.server.url}/llms/openai/generate", timeout=10,
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 502
    client = eventually(lambda: [s for s in observed.spans.get_finished_spans()
                                 if s.kind.name == "CLIENT"])
    assert dict(client[0].attributes or {})["error.type"]


def test_prometheus_endpoint_serves_the_gateway_metrics(observed: Observed) -> None:
    httpx.post(f"{observed.server.url}/llms/openai/generate", timeout=10,
               json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    text = eventually(lambda: (lambda t: t if "gen_ai_client_token_usage" in t else "")(
        httpx.get(f"{observed.server.url}/metrics").text))
    assert "gen_ai_client_token_usage" in text
    assert "http_server_request_duration" in text


def test_trace_context_reaches_the_provider_on_every_kind_of_call(
        observed: Observed, openai_sim: ProviderSimulator) -> None:
    """Streamed, whole and model-list calls each send their CLIENT span's traceparent and the
    caller's tracestate on the wire."""
    headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=abc,x=1"}
    url = observed.server.url
    with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=10, headers=headers,
                      json={"model": "openai/gpt-4o-mini", "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert b"[DONE]" in b"".join(r.iter_bytes())
    assert httpx.post(f"{url}/v1/chat/completions", timeout=10, headers=headers,
                      json={"model": "openai/gpt-4o-mini",
                            "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    assert httpx.get(f"{url}/llms/openai", timeout=10, headers=headers).status_code == 200
    sent = openai_sim.requests[-3:]
    assert len(sent) == 3
    span_ids = set()
    for request in sent:
        assert request.headers["tracestate"] == "vendor=abc,x=1"
        version, trace, span, flags = request.headers["traceparent"].split("-")
        assert (version, trace, flags) == ("00", TRACE_ID, "01")
        span_ids.add(span)
    def finished() -> set[str]:
        return {f"{s.context.span_id:016x}" for s in observed.spans.get_finished_spans()
                if s.kind.name == "CLIENT"}

    assert len(span_ids) == 3 and span_ids <= eventually(lambda: span_ids <= finished()
                                                        and finished())
