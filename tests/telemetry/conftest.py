"""Fixtures: live telemetry with in-memory exporters, and a small Starlette app that uses it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Mount, Route

from gateway.telemetry import Telemetry, TelemetryConfig, TelemetryHooks, TelemetryMiddleware

SECRET = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Live:
    """A live `Telemetry` and the in-memory ends of its pipelines."""

    telemetry: Telemetry
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self, kind_name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, optionally only those of one kind (SERVER, CLIENT)."""
        spans = list(self.spans.get_finished_spans())
        return [s for s in spans if kind_name is None or s.kind.name == kind_name]

    def points(self, metric: str) -> list[HistogramDataPoint]:
        """Every histogram data point recorded for `metric` so far."""
        return histogram_points(self.reader).get(metric, [])


def histogram_points(reader: InMemoryMetricReader) -> dict[str, list[HistogramDataPoint]]:
    """Every histogram data point `reader` collects now, by metric name."""
    data = reader.get_metrics_data()
    found: dict[str, list[HistogramDataPoint]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for m in scope.metrics:
                found.setdefault(m.name, []).extend(
                    p for p in m.data.data_points if isinstance(p, HistogramDataPoint))
    return found


@pytest.fixture
def live() -> Iterator[Live]:
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    telemetry = Telemetry(TelemetryConfig(
        enabled=True, service_name="gateway-test", secrets=(SECRET,), max_models_per_provider=3,
        span_exporter=spans, metric_readers=(reader,)))
    yield Live(telemetry, spans, reader)
    telemetry.shutdown()


class KeptSender:
    """Takes the place of `otlp.OtlpSpanSender`: keeps every payload it is given."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, payload: bytes) -> bool:
        self.sent.append(payload)
        return True

    def shutdown(self) -> None:
        pass


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll `check` until it returns something truthy; the server finishes after the body."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.01)


@dataclass
class StreamGate:
    """Lets a test hold the streaming route between its first and second chunk."""

    release: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    timed_out: bool = False


def build_app(telemetry: TelemetryHooks, gate: StreamGate | None = None) -> TelemetryMiddleware:
    """A stand-in for the gateway: a provider route, a stream, a failure, a mount."""
    gate = gate or StreamGate()

    async def models(request: Request) -> JSONResponse:
        provider = request.path_params["provider"]
        request.state.provider = provider
        request.state.model = request.query_params.get("model")
        with telemetry.upstream_attempt(provider=provider, model=request.state.model,
                                        operation="list_models",
                                        server_address="upstream.test") as attempt:
            attempt.set_response(request.state.model, 11, 7, ["stop"])
            return JSONResponse({"upstream_headers": attempt.headers,
                                 "request_id": request.state.request_id})

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> Any:
            yield b"first\n"
            gate.timed_out = not await anyio.to_thread.run_sync(gate.release.wait, 5.0)
            yield b"second\n"
            gate.finished.set()

        return StreamingResponse(chunks(), media_type="text/plain")

    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError(f"upstream refused key {SECRET}")

    async def inner(request: Request) -> JSONResponse:
        return JSONResponse({"item": request.path_params["item"]})

    routes = [
        Route("/v1/{provider}/models", models),
        Route("/stream", stream),
        Route("/boom", boom),
        Mount("/admin/{tenant}", routes=[Route("/items/{item}", inner)]),
        *telemetry.metrics_routes(),
    ]
    # Outermost, around Starlette's own error middleware, so 500s carry the id and are timed.
    return TelemetryMiddleware(Starlette(routes=routes), telemetry=telemetry)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was after a test that configures logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
