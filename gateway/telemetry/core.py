"""The telemetry object the application holds: providers, exporters and the hooks it calls."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import Protocol

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from gateway.telemetry.attempt import NOOP_ATTEMPT, Attempt, UpstreamAttempt
from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.instruments import Instruments
from gateway.telemetry.labels import LabelBudget
from gateway.telemetry.prometheus import PrometheusEndpoint
from gateway.telemetry.redaction import RedactingSpanExporter, Redactor
from gateway.telemetry.server_span import NOOP_OBSERVATION, NoopObservation, ServerObservation

_SCOPE_NAME = "gateway"


class TelemetryHooks(Protocol):
    """What the application and the middleware call; `Telemetry` and `NoopTelemetry` fit."""

    enabled: bool

    def observe_request(self, scope: Scope) -> ServerObservation | NoopObservation:
        """Start observing one HTTP request (used by `TelemetryMiddleware`)."""
        ...

    def upstream_attempt(self, *, provider: str, model: str | None, operation: str,
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

    def upstream_attempt(self, *, provider: str, model: str | None, operation: str,
                         server_address: str) -> AbstractContextManager[Attempt]:
        """The do-nothing attempt."""
        return NOOP_ATTEMPT

    def metrics_routes(self) -> list[BaseRoute]:
        """No scrape endpoint."""
        return []

    def shutdown(self) -> None:
        """Nothing to flush."""


class Telemetry:
    """Live telemetry: its own tracer and meter providers (the global ones stay untouched)."""

    enabled = True

    def __init__(self, config: TelemetryConfig) -> None:
        self.config = config
        resource = _resource(config)
        redactor = Redactor(config.secrets)
        self._tracer_provider = TracerProvider(resource=resource)
        if config.span_exporter is not None:
            self._tracer_provider.add_span_processor(
                SimpleSpanProcessor(RedactingSpanExporter(config.span_exporter, redactor)))
        readers: list[MetricReader] = list(config.metric_readers)
        # A registry of our own: the process-wide default one may only hold one such reader.
        self._registry = CollectorRegistry()
        readers.append(PrometheusMetricReader(registry=self._registry))
        if config.otlp_endpoint:
            self._tracer_provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(
                OTLPSpanExporter(endpoint=_signal_url(config.otlp_endpoint, "traces")),
                redactor)))
            readers.append(PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=_signal_url(config.otlp_endpoint, "metrics"))))
        self._meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        self._tracer = self._tracer_provider.get_tracer(_SCOPE_NAME)
        self._instruments = Instruments.create(self._meter_provider.get_meter(_SCOPE_NAME))
        self._models = LabelBudget(config.max_models_per_provider)
        self._bounded = LabelBudget(32)
        self.metrics_app = PrometheusEndpoint(self._registry)

    def observe_request(self, scope: Scope) -> ServerObservation:
        """Open the SERVER span for `scope` and make it current for the request."""
        return ServerObservation(scope, tracer=self._tracer, instruments=self._instruments)

    def upstream_attempt(self, *, provider: str, model: str | None, operation: str,
                         server_address: str) -> AbstractContextManager[Attempt]:
        """Open a CLIENT span for one provider call; metrics are recorded when it exits."""
        return UpstreamAttempt(tracer=self._tracer, instruments=self._instruments,
                               models=self._models, bounded=self._bounded, provider=provider,
                               model=model, operation=operation,
                               server_address=server_address)

    def metrics_routes(self) -> list[BaseRoute]:
        """The Prometheus endpoint at the configured path."""
        return [Route(self.config.metrics_path, self.metrics_app, methods=["GET", "HEAD"])]

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        """Push every finished span and the current metrics to the exporters now."""
        spans = self._tracer_provider.force_flush(timeout_millis)
        metrics = self._meter_provider.force_flush(timeout_millis)
        return bool(spans and metrics)

    def shutdown(self) -> None:
        """Flush, then stop every processor and reader."""
        self._tracer_provider.shutdown()
        self._meter_provider.shutdown()


def create_telemetry(config: TelemetryConfig) -> Telemetry | NoopTelemetry:
    """Live telemetry when `config.enabled`, else the no-op one."""
    return Telemetry(config) if config.enabled else NoopTelemetry()


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
