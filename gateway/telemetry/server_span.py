"""One incoming HTTP request, observed: a SERVER span and the request-duration metric."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import time_ns
from typing import Any

from opentelemetry import propagate
from starlette.types import Scope

from gateway.telemetry.histograms import FOLD_AT, Histogram, Series
from gateway.telemetry.labels import http_method
from gateway.telemetry.spans import (
    CURRENT_SPAN,
    NO_ATTRIBUTES,
    SERVER,
    Attributes,
    AttributeValue,
    Ending,
    Span,
    Tracer,
    remote_parent,
)

_MAX_LABEL_KEYS = 1024

END_AT = 64
"""Ended requests (and upstream attempts) that wait to be recorded together: see
`ServerSide.record`."""

Finished = tuple[Span, str, int, str | None, str | None, float]
"""An ended request waiting to be recorded: its span (ended), the method's label, the status,
the route, the error type and the duration in seconds."""


class NoopObservation:
    """The observation when telemetry is off."""

    trace_id: str | None = None

    def finish(self, status: int, route: str | None, error_type: str | None,
               duration: float) -> None:
        """Nothing to record."""


NOOP_OBSERVATION = NoopObservation()


class ServerSide:
    """What every `ServerObservation` of one `Telemetry` shares."""

    def __init__(self, *, tracer: Tracer, duration: Histogram,
                 clean: Callable[[str], str], batch: int = END_AT) -> None:
        self.tracer = tracer
        self.duration = duration
        self.clean = clean
        # The request headers an observation reads: Host, and those the global propagator
        # reads (traceparent, tracestate...).
        self.read_fields = frozenset({b"host", *(
            name.lower().encode("latin-1") for name in propagate.get_global_textmap().fields)})
        self.ends: dict[tuple[int, str, int, str | None, str | None], ServerEnd] = {}
        self.bases: dict[tuple[str, str, str, Any], tuple[str, Attributes]] = {}
        # Ended requests not yet recorded, and how many wait before they are (see `record`).
        self.finished: deque[Finished] = deque()
        self.batch = batch
        self.end_at = 1  # the first is recorded at once: its span starts the exporter's thread

    def record(self) -> None:
        """Record the requests that ended since the last call: name and export their spans,
        and queue their durations on the metric's series.

        A request's end only stamps its span and queues it (`ServerObservation.finish`), as an
        upstream attempt's does (`ClientSide.record`); every `end_at` ends the loop's thread
        records them all, one after another, as `otlp.SpanBatcher` encodes spans. The
        instructions are about the same, but in a run they find their code and data in the
        caches. Timed in the gateway under load (64 connections, telemetry on), the two ends
        of a request took 7.8 µs when each recorded itself, and 6.6 µs queued and recorded
        in runs (2.7 queuing, 3.9 recording); the same code in a loop of its own takes about
        3. Readers and the span exporter call this (through `Telemetry.record_ended`) before
        they collect, so nothing waits longer than their schedule. It may run on any thread:
        each end is taken once.
        """
        finished = self.finished
        ends = self.ends
        emit = self.tracer.emit
        try:
            for _ in range(len(finished)):
                span, method, status, route, error_type, duration = finished.popleft()
                if error_type is None and status >= 500:
                    error_type = str(status)
                # How requests like this one ended, looked up here (`ended` makes it on a
                # miss). The method is in the key as spans whose sampler gave them attributes
                # of their own share one empty base (`spans.NO_BASE`).
                base = span.base
                key = (id(base), method, status, route, error_type)
                ended = ends.get(key)
                if ended is None or ended.base is not base:
                    ended = self.ended(key, base, method, status, route, error_type)
                span.name = ended.name
                span.base = ended.attributes
                span.error = error_type
                span.ending = ended.ending
                if span.sampled:
                    emit(span)
                pending = ended.duration.pending  # `Series.add`, written out
                pending.append((duration, span))
                if len(pending) >= FOLD_AT:
                    ended.duration.fold()
        except IndexError:  # another thread took the rest
            pass
        self.end_at = self.batch

    def based(self, key: tuple[str, str, str, Any], scope: Scope, method: str,
              host: bytes | None) -> tuple[str, Attributes]:
        """The method's label and the attributes known when a request starts, shared by the
        requests that start alike (see `Span.base`); made and kept in `bases` under `key`
        (the method, scheme, HTTP version and Host, or else the listening address), where
        `ServerObservation` looks first."""
        label = http_method(method)
        attributes: Attributes = {"http.request.method": label, "url.scheme": key[1],
                                  "network.protocol.version": key[2]}
        if label != method:
            attributes["http.request.method_original"] = self.clean(method)
        address, port = self._address(host) if host is not None else _listening(scope)
        if address:
            attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
        if len(self.bases) >= _MAX_LABEL_KEYS:
            self.bases.clear()
        found = self.bases[key] = (label, attributes)
        return found

    def _address(self, host: bytes) -> tuple[str, int | None]:
        """The address (redacted: it is the caller's text) and port a Host header names."""
        text = host.decode("latin-1")
        address, sep, port = text.rpartition(":")
        if sep and port.isdigit() and not address.endswith(":"):
            return self.clean(address.strip("[]")), int(port)
        return self.clean(text.strip("[]")), None

    def ended(self, key: tuple[int, str, int, str | None, str | None], base: Attributes,
              method: str, status: int, route: str | None, error_type: str | None) -> ServerEnd:
        """How requests that started with `base` (for `method`, its label) ended: the
        span's name and shared attributes, and the duration metric's attributes; made and
        kept in `ends` under `key`, where `record` looks first. Every value
        here is already bounded."""
        attributes = {**base, "http.response.status_code": status}
        labels: list[tuple[str, AttributeValue]] = [
            ("http.request.method", method), ("http.response.status_code", status)]
        name = method
        if route is not None:
            attributes["http.route"] = route
            labels.append(("http.route", route))
            name = f"{method} {route}"
        if error_type is not None:
            attributes["error.type"] = error_type
            labels.append(("error.type", error_type))
        if len(self.ends) >= _MAX_LABEL_KEYS:
            self.ends.clear()
        found = self.ends[key] = ServerEnd(base, name, attributes,
                                            self.duration.series(tuple(labels)))
        return found


@dataclass(frozen=True, slots=True)
class ServerEnd:
    """See `ServerSide.ended`."""

    base: Attributes  # what the request started with: ids are only compared while it lives
    name: str
    attributes: Attributes
    duration: Series  # the duration metric's series
    ending: Ending = field(default_factory=Ending)  # for the span sinks (`Span.ending`)


class ServerObservation:
    """Opens the SERVER span as the current one; `finish` must run in the same task."""

    __slots__ = ("_method", "_server", "_span", "_token", "trace_id")

    def __init__(self, server: ServerSide, scope: Scope) -> None:
        self._server = server
        host: bytes | None = None
        carrier: dict[str, str] | None = None
        fields = server.read_fields
        for name, value in scope.get("headers", ()):
            if name in fields:  # one test for most headers
                if name == b"host":
                    if host is None:
                        host = value
                else:
                    carrier = carrier or {}
                    carrier[name.decode("latin-1")] = value.decode("latin-1")
        parent = remote_parent(propagate.extract(carrier)) if carrier else None
        # How requests like this one start, looked up here (`ServerSide.based` makes it on
        # a miss): a frame less a request.
        method = scope.get("method", "GET")
        key = (method, scope.get("scheme", "http"), scope.get("http_version", "1.1"),
               host if host is not None else scope.get("server"))
        self._method, base = server.bases.get(key) or server.based(key, scope, method, host)
        self._span = span = server.tracer.start(self._method, SERVER, NO_ATTRIBUTES, parent,
                                                base)
        self.trace_id: str | None = span.trace_hex
        self._token = CURRENT_SPAN.set(span)

    def finish(self, status: int, route: str | None, error_type: str | None,
               duration: float) -> None:
        """End the span; it and the duration are recorded with the next requests that end
        (`ServerSide.record`). `route` is a template, never a raw path."""
        try:
            CURRENT_SPAN.reset(self._token)
        except ValueError:  # finished in another context than it started: nothing to undo
            pass
        span = self._span
        span.end_ns = time_ns()
        server = self._server
        finished = server.finished
        finished.append((span, self._method, status, route, error_type, duration))
        if len(finished) >= server.end_at:
            server.record()


def _listening(scope: Scope) -> tuple[str | None, int | None]:
    """The listening socket's host and port, when the request named no Host."""
    server = scope.get("server")
    if server:
        return str(server[0]), server[1]
    return None, None
