"""Traces, metrics and structured logs for the gateway.

The application builds one `Telemetry` (or `NoopTelemetry`) with `create_telemetry`,
wraps itself in `TelemetryMiddleware`, adds `telemetry.metrics_routes()`, wraps each
provider call in `telemetry.upstream_attempt(...)`, and calls `telemetry.shutdown()`
when the lifespan ends. `configure_logging` runs once at start-up, telemetry or not.

The per-request work is kept small: spans (`spans`) and histograms (`histograms`) are
recorded by this package rather than by the SDK's tracer and instruments, and leave through
the SDK's exporters and metric readers (spans encoded by `otlp` a few dozen at a time, and
sent in batches off the event loop).
"""

from gateway.telemetry.attempt import Attempt
from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.core import NoopTelemetry, Telemetry, TelemetryHooks, create_telemetry
from gateway.telemetry.logs import ACCESS_LOGGER, configure_logging, log_access
from gateway.telemetry.middleware import TelemetryMiddleware, accept_request_id
from gateway.telemetry.redaction import Redactor

__all__ = [
    "ACCESS_LOGGER",
    "Attempt",
    "NoopTelemetry",
    "Redactor",
    "Telemetry",
    "TelemetryConfig",
    "TelemetryHooks",
    "TelemetryMiddleware",
    "accept_request_id",
    "configure_logging",
    "create_telemetry",
    "log_access",
]
