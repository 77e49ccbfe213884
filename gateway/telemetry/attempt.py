"""One call to a provider, observed: a CLIENT span plus GenAI metrics, recorded after exit."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from gateway.telemetry.histograms import FOLD_AT, Series
from gateway.telemetry.instruments import Instruments
from gateway.telemetry.labels import LabelBudget
from gateway.telemetry.server_span import END_AT
from gateway.telemetry.spans import (
    CLIENT,
    CURRENT_SPAN,
    NO_ATTRIBUTES,
    NO_BASE,
    Attributes,
    AttributeValue,
    Ending,
    Span,
    Tracer,
)

_MAX_LABEL_KEYS = 4096

Finished = tuple[Span, "Started", str | None, tuple[str, ...], str | None, float,
                 float | None]
"""An ended attempt waiting to be recorded: its span (ended), how it started, the response
model, the finish reasons, the error type, the duration and the time to the first token."""


class Attempt(Protocol):
    """What the upstream client reports about one provider call."""

    @property
    def headers(self) -> dict[str, str]:
        """Trace-context headers to add to the upstream request (a fresh dict)."""
        ...

    @property
    def trace_lines(self) -> str:
        """The same headers as lines of an HTTP/1.1 head, each ending in CRLF ("" for none):
        safe to send as they are (`client.Client.request`'s `lines`)."""
        ...

    def set_response(self, model: str | None, input_tokens: int | None,
                     output_tokens: int | None, finish_reasons: list[str]) -> None:
        """Record what the provider answered."""
        ...

    def set_error(self, error_type: str) -> None:
        """Mark the call failed with a short, bounded error type (never a message)."""
        ...

    def first_token(self) -> None:
        """Note the arrival of the first streamed token (later calls are ignored)."""
        ...


class NoopAttempt:
    """The attempt when telemetry is off: every method returns at once."""

    trace_lines = ""

    @property
    def headers(self) -> dict[str, str]:
        """No headers; a new dict so callers may add to it."""
        return {}

    def set_response(self, model: str | None, input_tokens: int | None,
                     output_tokens: int | None, finish_reasons: list[str]) -> None:
        """Ignore the response."""

    def set_error(self, error_type: str) -> None:
        """Ignore the error."""

    def first_token(self) -> None:
        """Ignore the first token."""

    def __enter__(self) -> NoopAttempt:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None


NOOP_ATTEMPT = NoopAttempt()


@dataclass(frozen=True, slots=True)
class AttemptSeries:
    """The metric series of one attempt's attributes: durations, tokens by token type."""

    duration: Series
    first_token: Series
    input_tokens: Series
    output_tokens: Series

    def fold(self) -> None:
        """Fold every series' queue (`ClientSide.record` queues an attempt's values
        on them directly, each with its span, and calls this every `FOLD_AT` attempts:
        every attempt queues a duration, so no queue here grows longer than that one)."""
        for series in (self.duration, self.first_token, self.input_tokens,
                       self.output_tokens):
            series.fold()


@dataclass(frozen=True, slots=True)
class Started:
    """How attempts that start alike start (see `ClientSide.started`)."""

    name: str  # the span's
    attributes: Attributes  # the span's shared attributes (`Span.base`), redacted
    provider: str  # the raw values, for the metric labels (`ClientSide.ended`)
    operation: str
    model: str | None


@dataclass(frozen=True, slots=True)
class Ended:
    """How attempts that started alike ended (see `ClientSide.ended`)."""

    started: Started  # ids are only compared while it lives
    attributes: Attributes
    error: str | None
    series: AttemptSeries
    ending: Ending = field(default_factory=Ending)  # for the span sinks (`Span.ending`)


class ClientSide:
    """What every `UpstreamAttempt` of one `Telemetry` shares."""

    def __init__(self, *, tracer: Tracer, instruments: Instruments, models: LabelBudget,
                 bounded: LabelBudget, clean: Callable[[str], str], batch: int = END_AT) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.clean = clean
        self._models = models
        self._bounded = bounded
        self.starts: dict[tuple[str, str, str, str | None], Started] = {}
        self.ends: dict[tuple[int, bool, str | None, tuple[str, ...], str | None], Ended] = {}
        # Ended attempts not yet recorded, and how many wait before they are (see `record`).
        self.finished: deque[Finished] = deque()
        self.batch = batch
        self.end_at = 1  # the first is recorded at once: its span starts the exporter's thread

    def record(self) -> None:
        """Record the attempts that ended since the last call: their spans' shared end
        attributes and export, and their values queued on the metric series. As
        `ServerSide.record` (the same reasons, and may run on any thread)."""
        finished = self.finished
        ends = self.ends
        emit = self.tracer.emit
        try:
            for _ in range(len(finished)):
                (span, started, response_model, finish_reasons, error_type, duration,
                 first_token) = finished.popleft()
                # How calls like this one ended, looked up here (`ended` makes it on a miss).
                base = span.base
                key = (id(started), base is NO_BASE, response_model, finish_reasons,
                       error_type)
                ended = ends.get(key)
                if ended is None or ended.started is not started:
                    ended = self.ended(key, started, base, response_model, finish_reasons,
                                       error_type)
                span.base = ended.attributes
                span.error = ended.error
                span.ending = ended.ending
                if span.sampled:
                    emit(span)
                # The values queued on their series (see `Series.add`), written out.
                series = ended.series
                durations = series.duration.pending
                durations.append((duration, span))
                if first_token is not None:
                    series.first_token.pending.append((first_token, span))
                count = span.input_tokens
                if count is not None:
                    series.input_tokens.pending.append((count, span))
                count = span.output_tokens
                if count is not None:
                    series.output_tokens.pending.append((count, span))
                if len(durations) >= FOLD_AT:
                    series.fold()
        except IndexError:  # another thread took the rest
            pass
        self.end_at = self.batch

    def started(self, key: tuple[str, str, str, str | None], operation: str, provider: str,
                server_address: str, model: str | None) -> Started:
        """The span name and the attributes known when a call starts (redacted), shared by
        the calls that start alike (see `Span.base`); made and kept in `starts` under `key`,
        where `UpstreamAttempt` looks first."""
        clean = self.clean
        name = clean(operation)
        attributes: Attributes = {
            "gen_ai.operation.name": name,
            "gen_ai.provider.name": clean(provider),
            "server.address": clean(server_address),
        }
        if model is not None:
            request_model = attributes["gen_ai.request.model"] = clean(model)
            if model:
                name = f"{name} {request_model}"
        if len(self.starts) >= _MAX_LABEL_KEYS:
            self.starts.clear()
        found = self.starts[key] = Started(name, attributes, provider, operation, model)
        return found

    def ended(self, key: tuple[int, bool, str | None, tuple[str, ...], str | None],
              started: Started, base: Attributes, response_model: str | None,
              finish_reasons: tuple[str, ...], error_type: str | None) -> Ended:
        """What a call that started as `started` ended with: shared attributes (its span's
        `base` and the answer's, redacted), the span's error and the metric attributes; made
        and kept in `ends` under `key`, where `record` looks first. `base`
        is the start's attributes, or `spans.NO_BASE` when the sampler gave the span
        attributes of its own (the start's among them)."""
        clean = self.clean
        attributes = dict(base)
        if response_model is not None:
            attributes["gen_ai.response.model"] = clean(response_model)
        if finish_reasons:
            attributes["gen_ai.response.finish_reasons"] = tuple(map(clean, finish_reasons))
        error = None
        if error_type is not None:
            error = attributes["error.type"] = clean(error_type)
        series = self._series(started.provider, started.operation, started.model,
                              response_model, error_type)
        if len(self.ends) >= _MAX_LABEL_KEYS:
            self.ends.clear()
        found = self.ends[key] = Ended(started, attributes, error, series)
        return found

    def _series(self, provider: str, operation: str, request_model: str | None,
                response_model: str | None, error_type: str | None) -> AttemptSeries:
        """The metric series for these raw values, their attributes each bounded by its
        budget and redacted (a budget keeps its decisions, so the same values get the same
        labels)."""
        models = self._models
        usage: list[tuple[str, AttributeValue]] = [
            ("gen_ai.operation.name", self._bounded.value("operation", operation) or ""),
            ("gen_ai.provider.name", models.group(provider)),
        ]
        for name, model in (("gen_ai.request.model", request_model),
                            ("gen_ai.response.model", response_model)):
            label = models.value(provider, model)
            if label is not None:
                usage.append((name, label))
        duration = list(usage)
        if error_type is not None:
            duration.append(("error.type", self._bounded.value("error.type", error_type) or ""))
        instruments = self.instruments
        return AttemptSeries(
            duration=instruments.client_operation_duration.series(tuple(duration)),
            first_token=instruments.server_time_to_first_token.series(tuple(duration)),
            input_tokens=instruments.client_token_usage.series(
                (*usage, ("gen_ai.token.type", "input"))),
            output_tokens=instruments.client_token_usage.series(
                (*usage, ("gen_ai.token.type", "output"))))


class UpstreamAttempt:
    """A live attempt; use as a context manager around the whole call, stream included.

    Its CLIENT span is a child of the request's SERVER span. It is never made the current
    span: the call may span many suspensions of a streaming generator, and has no children.
    Every text attribute is redacted as it is set (models and finish reasons come from
    callers and providers).
    """

    __slots__ = ("_client", "_error_type", "_finish_reasons", "_first_token_s",
                 "_response_model", "_span", "_start", "_started", "trace_lines")

    def __init__(self, client: ClientSide, provider: str, model: str | None, operation: str,
                 server_address: str) -> None:
        self._client = client
        self._response_model: str | None = None
        self._finish_reasons: tuple[str, ...] = ()
        self._error_type: str | None = None
        self._first_token_s: float | None = None
        self._start = time.perf_counter()
        # How calls like this one start, looked up here (`ClientSide.started` makes it on a
        # miss), as how they end is in `__exit__`: a frame less a request.
        key = (operation, provider, server_address, model)
        started = client.starts.get(key)
        if started is None:
            started = client.started(key, operation, provider, server_address, model)
        self._started = started
        self._span = span = client.tracer.start(started.name, CLIENT, NO_ATTRIBUTES,
                                                CURRENT_SPAN.get(), started.attributes)
        # The trace context as head lines: the ids are hex, and a trace state comes from the
        # SDK's parser (which keeps only W3C's printable ASCII) and is checked again here.
        self.trace_lines = (f"traceparent: 00-{span.trace_hex}-{span.span_id.hex()}-"
                            f"{'01' if span.sampled else '00'}\r\n")
        state = span.trace_state
        if state and state.isascii() and state.isprintable():
            self.trace_lines += f"tracestate: {state}\r\n"

    @property
    def headers(self) -> dict[str, str]:
        """`traceparent` (and `tracestate`) naming this attempt's span, as in `trace_lines`;
        a fresh dict."""
        return dict(line.split(": ", 1) for line in self.trace_lines.splitlines())

    def set_response(self, model: str | None, input_tokens: int | None,
                     output_tokens: int | None, finish_reasons: list[str]) -> None:
        """Record the response model, token counts and finish reasons on the span."""
        self._response_model = model
        self._finish_reasons = tuple(finish_reasons)
        span = self._span
        span.input_tokens = input_tokens
        span.output_tokens = output_tokens

    def set_error(self, error_type: str) -> None:
        """Mark the attempt failed; `error_type` is a class name or code, never a message."""
        self._error_type = error_type

    def first_token(self) -> None:
        """Remember when the first token arrived, once."""
        if self._first_token_s is None:
            self._first_token_s = time.perf_counter() - self._start

    def __enter__(self) -> UpstreamAttempt:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        duration = time.perf_counter() - self._start
        if exc_type is not None and self._error_type is None:
            # The class name only: exception messages may quote credentials or prompts.
            self._error_type = exc_type.__qualname__
        span = self._span
        span.end_ns = time.time_ns()
        # Recorded with the next attempts that end (`ClientSide.record`).
        client = self._client
        finished = client.finished
        finished.append((span, self._started, self._response_model, self._finish_reasons,
                         self._error_type, duration, self._first_token_s))
        if len(finished) >= client.end_at:
            client.record()
