"""One incoming HTTP request, observed: a SERVER span and the request-duration metric."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import propagate
from starlette.types import Scope

from gateway.telemetry.histograms import Histogram, LabelKey
from gateway.telemetry.labels import http_method
from gateway.telemetry.spans import CURRENT_SPAN, SERVER, AttributeValue, Tracer, remote_parent

_MAX_LABEL_KEYS = 1024


class NoopObservation:
    """The observation when telemetry is off."""

    trace_id: str | None = None

    def finish(self, *, status: int, route: str | None, error_type: str | None,
               duration: float) -> None:
        """Nothing to record."""


NOOP_OBSERVATION = NoopObservation()


class ServerSide:
    """What every `ServerObservation` of one `Telemetry` shares."""

    def __init__(self, *, tracer: Tracer, duration: Histogram,
                 clean: Callable[[str], str]) -> None:
        self.tracer = tracer
        self.duration = duration
        self.clean = clean
        # The request headers the global propagator reads (traceparent, tracestate...).
        self.propagation_fields = frozenset(
            name.lower().encode("latin-1") for name in propagate.get_global_textmap().fields)
        self._label_keys: dict[tuple[str, int, str | None, str | None], LabelKey] = {}
        self._addresses: dict[bytes, tuple[str, int | None]] = {}

    def address(self, host: bytes) -> tuple[str, int | None]:
        """The address (redacted: it is the caller's text) and port a Host header names."""
        found = self._addresses.get(host)
        if found is None:
            text = host.decode("latin-1")
            address, sep, port = text.rpartition(":")
            if sep and port.isdigit() and not address.endswith(":"):
                found = (self.clean(address.strip("[]")), int(port))
            else:
                found = (self.clean(text.strip("[]")), None)
            if len(self._addresses) >= _MAX_LABEL_KEYS:
                self._addresses.clear()
            self._addresses[host] = found
        return found

    def label_key(self, method: str, status: int, route: str | None,
                  error_type: str | None) -> LabelKey:
        """The duration metric's attributes; every value here is already bounded."""
        values = (method, status, route, error_type)
        found = self._label_keys.get(values)
        if found is None:
            labels: list[tuple[str, AttributeValue]] = [
                ("http.request.method", method), ("http.response.status_code", status)]
            if route is not None:
                labels.append(("http.route", route))
            if error_type is not None:
                labels.append(("error.type", error_type))
            if len(self._label_keys) >= _MAX_LABEL_KEYS:
                self._label_keys.clear()
            found = self._label_keys[values] = tuple(labels)
        return found


class ServerObservation:
    """Opens the SERVER span as the current one; `finish` must run in the same task."""

    __slots__ = ("_method", "_server", "_span", "_token", "trace_id")

    def __init__(self, scope: Scope, server: ServerSide) -> None:
        self._server = server
        method = scope.get("method", "GET")
        self._method = http_method(method)
        host: bytes | None = None
        carrier: dict[str, str] | None = None
        fields = server.propagation_fields
        for name, value in scope.get("headers", ()):
            if name == b"host":
                if host is None:
                    host = value
            elif name in fields:
                carrier = carrier or {}
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        parent = remote_parent(propagate.extract(carrier)) if carrier else None
        attributes: dict[str, AttributeValue] = {
            "http.request.method": self._method,
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if self._method != method:
            attributes["http.request.method_original"] = server.clean(method)
        address, port = server.address(host) if host is not None else _listening(scope)
        if address:
            attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
        self._span = span = server.tracer.start(self._method, SERVER, attributes, parent)
        self.trace_id: str | None = span.trace_hex
        self._token = CURRENT_SPAN.set(span)

    def finish(self, *, status: int, route: str | None, error_type: str | None,
               duration: float) -> None:
        """Close the span and record the duration; `route` is a template, never a raw path."""
        try:
            CURRENT_SPAN.reset(self._token)
        except ValueError:  # finished in another context than it started: nothing to undo
            pass
        span = self._span
        attributes = span.attributes
        attributes["http.response.status_code"] = status
        if route is not None:
            attributes["http.route"] = route
            span.name = f"{self._method} {route}"
        if error_type is None and status >= 500:
            error_type = str(status)
        if error_type is not None:
            attributes["error.type"] = error_type
            span.error = error_type
        server = self._server
        server.tracer.end(span)
        server.duration.record(duration, server.label_key(self._method, status, route,
                                                          error_type), span)


def _listening(scope: Scope) -> tuple[str | None, int | None]:
    """The listening socket's host and port, when the request named no Host."""
    server = scope.get("server")
    if server:
        return str(server[0]), server[1]
    return None, None
