"""One call to a provider, observed: a CLIENT span plus GenAI metrics recorded on exit."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Protocol

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.telemetry.instruments import Instruments
from gateway.telemetry.labels import LabelBudget

# Only trace context goes upstream: the caller's baggage is theirs, not the provider's.
_UPSTREAM_PROPAGATOR = TraceContextTextMapPropagator()


class Attempt(Protocol):
    """What the upstream client reports about one provider call."""

    @property
    def headers(self) -> dict[str, str]:
        """Trace-context headers to add to the upstream request (a fresh dict)."""
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


class UpstreamAttempt:
    """A live attempt; use as a context manager around the whole call, stream included.

    The span is never made the current one: the call may span many suspensions of a
    streaming generator, and it needs no children.
    """

    def __init__(self, *, tracer: Tracer, instruments: Instruments, models: LabelBudget,
                 bounded: LabelBudget, provider: str, model: str | None, operation: str,
                 server_address: str) -> None:
        self._instruments = instruments
        self._models = models
        self._bounded = bounded
        self._provider = provider
        self._request_model = model
        self._operation = operation
        self._response_model: str | None = None
        self._tokens: tuple[int | None, int | None] = (None, None)
        self._error_type: str | None = None
        self._first_token_s: float | None = None
        self._start = time.perf_counter()
        attributes = {"gen_ai.operation.name": operation, "gen_ai.provider.name": provider,
                      "server.address": server_address}
        if model is not None:
            attributes["gen_ai.request.model"] = model
        name = f"{operation} {model}" if model else operation
        self._span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        self._headers: dict[str, str] = {}
        _UPSTREAM_PROPAGATOR.inject(self._headers, context=set_span_in_context(self._span))

    @property
    def headers(self) -> dict[str, str]:
        """`traceparent` (and `tracestate`) naming this attempt's span; a fresh dict."""
        return dict(self._headers)

    def set_response(self, model: str | None, input_tokens: int | None,
                     output_tokens: int | None, finish_reasons: list[str]) -> None:
        """Record the response model, token counts and finish reasons on the span."""
        self._response_model = model
        self._tokens = (input_tokens, output_tokens)
        span = self._span
        if model is not None:
            span.set_attribute("gen_ai.response.model", model)
        if input_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        if output_tokens is not None:
            span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if finish_reasons:
            span.set_attribute("gen_ai.response.finish_reasons", list(finish_reasons))

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
        if exc_type is not None and self._error_type is None:
            # The class name only: exception messages may quote credentials or prompts.
            self._error_type = exc_type.__qualname__
        self._finish(time.perf_counter() - self._start)

    def _finish(self, duration: float) -> None:
        if self._error_type is not None:
            self._span.set_attribute("error.type", self._error_type)
            self._span.set_status(Status(StatusCode.ERROR, self._error_type))
        self._span.end()
        labels = self._labels()
        instruments = self._instruments
        instruments.client_operation_duration.record(duration, labels)
        instruments.server_request_duration.record(duration, labels)
        if self._first_token_s is not None:
            instruments.server_time_to_first_token.record(self._first_token_s, labels)
        usage = {k: v for k, v in labels.items() if k != "error.type"}
        for token_type, count in zip(("input", "output"), self._tokens, strict=True):
            if count is not None:
                instruments.client_token_usage.record(
                    count, {**usage, "gen_ai.token.type": token_type})

    def _labels(self) -> dict[str, Any]:
        provider = self._models.group(self._provider)
        labels: dict[str, Any] = {
            "gen_ai.operation.name": self._bounded.value("operation", self._operation),
            "gen_ai.provider.name": provider,
        }
        request_model = self._models.value(provider, self._request_model)
        if request_model is not None:
            labels["gen_ai.request.model"] = request_model
        response_model = self._models.value(provider, self._response_model)
        if response_model is not None:
            labels["gen_ai.response.model"] = response_model
        if self._error_type is not None:
            labels["error.type"] = self._bounded.value("error.type", self._error_type)
        return labels
