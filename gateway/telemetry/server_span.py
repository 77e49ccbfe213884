"""One incoming HTTP request, observed: a SERVER span and the request-duration metric."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.trace import (
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    format_trace_id,
    set_span_in_context,
)
from starlette.types import Scope

from gateway.telemetry.instruments import Instruments
from gateway.telemetry.labels import http_method


class NoopObservation:
    """The observation when telemetry is off."""

    trace_id: str | None = None

    def finish(self, *, status: int, route: str | None, error_type: str | None,
               duration: float) -> None:
        """Nothing to record."""


NOOP_OBSERVATION = NoopObservation()


class ServerObservation:
    """Opens the SERVER span as the current context; `finish` must run in the same task."""

    def __init__(self, scope: Scope, *, tracer: Tracer,
                 instruments: Instruments) -> None:
        self._instruments = instruments
        method = scope.get("method", "GET")
        self._method = http_method(method)
        headers = _propagation_headers(scope)
        parent = propagate.extract(headers) if headers else None
        attributes: dict[str, Any] = {
            "http.request.method": self._method,
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if self._method != method:
            attributes["http.request.method_original"] = method
        address, port = _server_address(scope)
        if address:
            attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
        self._span = tracer.start_span(self._method, context=parent, kind=SpanKind.SERVER,
                                       attributes=attributes)
        self.trace_id: str | None = format_trace_id(self._span.get_span_context().trace_id)
        self._token = otel_context.attach(set_span_in_context(self._span, parent))

    def finish(self, *, status: int, route: str | None, error_type: str | None,
               duration: float) -> None:
        """Close the span and record the duration; `route` is a template, never a raw path."""
        otel_context.detach(self._token)
        span = self._span
        labels: dict[str, Any] = {"http.request.method": self._method,
                                  "http.response.status_code": status}
        span.set_attribute("http.response.status_code", status)
        if route is not None:
            labels["http.route"] = route
            span.set_attribute("http.route", route)
            span.update_name(f"{self._method} {route}")
        if error_type is None and status >= 500:
            error_type = str(status)
        if error_type is not None:
            labels["error.type"] = error_type
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()
        self._instruments.http_server_duration.record(duration, labels)


def _propagation_headers(scope: Scope) -> dict[str, str]:
    """The request headers the configured propagator reads (traceparent, tracestate...)."""
    wanted = propagate.get_global_textmap().fields
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        if key in wanted:
            found[key] = value.decode("latin-1")
    return found


def _server_address(scope: Scope) -> tuple[str | None, int | None]:
    """Host and port the client addressed: the Host header, else the listening socket."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            address, sep, port = host.rpartition(":")
            if sep and port.isdigit() and not address.endswith(":"):
                return address.strip("[]"), int(port)
            return host.strip("[]"), None
    server = scope.get("server")
    if server:
        return str(server[0]), server[1]
    return None, None
