"""The telemetry object the application holds: providers, exporters and the hooks it calls."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import Protocol

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.sampling import _get_from_env_or_default
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from gateway.telemetry.attempt import NOOP_ATTEMPT, Attempt, ClientSide, UpstreamAttempt
from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.histograms import MetricsHub
from gateway.telemetry.instruments import Instruments
from gateway.telemetry.labels import LabelBudget
from gateway.telemetry.otlp import OtlpSpanSender, SpanBatcher, SpanEncoder
from gateway.telemetry.prometheus import PrometheusEndpoint
from gateway.telemetry.redaction import Redactor
from gateway.telemetry.server_span import (
    END_AT,
    NOOP_OBSERVATION,
    NoopObservation,
    ServerObservation,
    ServerSide,
)
from gateway.telemetry.spans import ExporterSink, SpanSink, Tracer

_SCOPE_NAME = "gateway"


class TelemetryHooks(Protocol):
    """What the application and the middleware call; `Telemetry` and `NoopTelemetry` fit."""

    enabled: bool

    def observe_request(self, scope: Scope) -> ServerObservation | NoopObservation:
        """Start observing one HTTP request (used by `TelemetryMiddleware`)."""
        ...

    def upstream_attempt(self, provider: str, model: str | None, operation: str,
                         server_address: str) -> AbstractContextManager[Attempt]:
        """Observe one call to a provider; see `Attempt`."""
        ...

    def metrics_routes(self) -> list[BaseRoute]:
        """Routes to add to the application (the Prometheus endpoint, when on)."""
        ...

    def shutdown(self) -> None:
        """Flush and stop exporters; call once from the lifespan."""
        ...


class NoopTelemetry:
    """Telemetry switched off: every hook returns a shared constant at once."""

    enabled = False

    def observe_request(self, scope: Scope) -> NoopObservation:
        """The do-nothing observation."""
        return NOOP_OBSERVATION

    def upstream_attempt(self, provider: str, model: str | None, operation: str,
                         server_address: str) -> AbstractContextManager[Attempt]:
        """The do-nothing attempt."""
        return NOOP_ATTEMPT

    def metrics_routes(self) -> list[BaseRoute]:
        """No scrape endpoint."""
        return []

    def shutdown(self) -> None:
        """Nothing to flush."""


class Telemetry:
    """Live telemetry: its own tracer and metric readers (the global providers stay untouched).

    Spans are recorded by `spans.Tracer` and metrics by `histograms.Histogram`, both much
    cheaper per request than the SDK's; the SDK's readers and exporters carry them out.
    """

    enabled = True

    def __init__(self, config: TelemetryConfig) -> None:
        self.config = config
        resource = _resource(config)
        scope = InstrumentationScope(_SCOPE_NAME)
        clean = Redactor(config.secrets).text
        sinks: list[SpanSink] = []
        if config.span_exporter is not None:
            sinks.append(ExporterSink(config.span_exporter, resource=resource, scope=scope))
        readers: list[MetricReader] = list(config.metric_readers)
        # A registry of our own: the process-wide default one may only hold one such reader.
        self._registry = CollectorRegistry()
        readers.append(PrometheusMetricReader(registry=self._registry))
        # Ended requests and attempts are recorded a few dozen at a time (`ServerSide.record`),
        # and whenever spans are exported or metrics collected (`record_ended`); a span
        # exporter of the tests has each recorded as it ends.
        batch = 1 if config.span_exporter is not None else END_AT
        if config.otlp_endpoint:
            sinks.append(SpanBatcher(
                OtlpSpanSender(endpoint=_signal_url(config.otlp_endpoint, "traces")),
                SpanEncoder(resource, scope), before_export=self.record_ended))
            readers.append(PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=_signal_url(config.otlp_endpoint, "metrics"))))
        self._sinks = tuple(sinks)
        tracer = Tracer(sinks, sampler=_get_from_env_or_default())
        instruments = Instruments.create()
        self._metrics = MetricsHub(instruments.all(), readers, resource=resource, scope=scope,
                                   before_collect=self.record_ended)
        self._server = ServerSide(tracer=tracer, duration=instruments.http_server_duration,
                                  clean=clean, batch=batch)
        self._client = ClientSide(
            tracer=tracer, instruments=instruments, clean=clean,
            models=LabelBudget(config.max_models_per_provider, clean=clean),
            bounded=LabelBudget(32, clean=clean), batch=batch)
        self.metrics_app = PrometheusEndpoint(self._registry)
        self._stopped = False
        # The two per-request hooks (see `TelemetryHooks`) make their objects directly: a
        # method here in between cost 3 µs of CPU a request (a Python frame and the keyword
        # arguments passed on again, twice a request; `make compare --telemetry`, 156
        # against 159 µs).
        # `observe_request(scope)`: open the SERVER span and make it current for the request.
        self.observe_request: Callable[[Scope], ServerObservation] = partial(
            ServerObservation, self._server)
        # `upstream_attempt(provider, model, operation, server_address)`: open a CLIENT
        # span for one provider call; metrics are recorded when it exits.
        self.upstream_attempt: Callable[..., AbstractContextManager[Attempt]] = partial(
            UpstreamAttempt, self._client)

    def metrics_routes(self) -> list[BaseRoute]:
        """The Prometheus endpoint at the configured path."""
        return [Route(self.config.metrics_path, self.metrics_app, methods=["GET", "HEAD"])]

    def record_ended(self) -> None:
        """Record the requests and upstream attempts that ended and wait to be (see
        `ServerSide.record`), on the calling thread."""
        self._client.record()
        self._server.record()

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        """Push every finished span and the current metrics to the exporters now."""
        self.record_ended()
        spans = all([sink.force_flush(timeout_millis) for sink in self._sinks])
        metrics = self._metrics.force_flush(timeout_millis)
        return spans and metrics

    def shutdown(self) -> None:
        """Flush, then stop every span sink and metric reader (once; later calls return)."""
        if self._stopped:
            return
        self._stopped = True
        self.record_ended()
        for sink in self._sinks:
            sink.shutdown()
        self._metrics.shutdown()


def create_telemetry(config: TelemetryConfig) -> Telemetry | NoopTelemetry:
    """Live telemetry when `config.enabled`, else the no-op one. OpenTelemetry's own switch,
    OTEL_SDK_DISABLED=true, turns it off too."""
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return Telemetry(config) if config.enabled and not disabled else NoopTelemetry()


def _resource(config: TelemetryConfig) -> Resource:
    attributes = {"service.name": config.service_name}
    if config.environment:
        attributes["deployment.environment.name"] = config.environment
    return Resource.create(attributes)


def _signal_url(base: str, signal: str) -> str | None:
    """`base` + /v1/<signal>, unless the signal's own variable is set (the exporter reads it)."""
    if os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"):
        return None
    return f"{base.rstrip('/')}/v1/{signal}"
