"""Telemetry settings: what the gateway emits and where it sends it."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter


@dataclass(frozen=True)
class TelemetryConfig:
    """Settings for `create_telemetry`; the last two fields are test hooks.

    `otlp_endpoint` is the OTLP/HTTP base URL (the exporter appends /v1/traces and
    /v1/metrics). `span_exporter` replaces batching with synchronous export so tests can
    read spans at once; `metric_readers` are added next to the Prometheus reader.
    """

    enabled: bool = False
    service_name: str = "llm-gateway"
    metrics_path: str = "/metrics"
    otlp_endpoint: str | None = None
    environment: str | None = None
    # Values scrubbed from span attributes and metric labels as they are set (logs get
    # theirs from configure_logging); kept out of repr so the config can be logged safely.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # Distinct model names per provider that may become metric labels; the rest are "other".
    max_models_per_provider: int = 50
    span_exporter: SpanExporter | None = field(default=None, compare=False)
    metric_readers: tuple[MetricReader, ...] = field(default=(), compare=False)
