"""Spans recorded without the SDK's per-span machinery.

The gateway opens two spans per request with a handful of attributes each. The SDK's
`Tracer` spends 20-30 µs on each (sampler objects, span-limit bookkeeping, locks, span
processors), and its OTLP exporter as much again encoding it. A `Span` here is a plain
record; finished, sampled spans go to sinks: `otlp.SpanBatcher` encodes them straight to
the OTLP wire format, and `ExporterSink` hands any SDK `SpanExporter` the same
`ReadableSpan` the SDK would have built.

Sampling follows the SDK's default, `parentbased_always_on`; another `OTEL_TRACES_SAMPLER`
is honoured: the SDK's own samplers (always on or off, trace-id ratio, parent-based over
those) are decided here exactly as they decide, any other by asking it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from time import time_ns
from typing import Any, NamedTuple, Protocol

import msgspec
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import (
    DEFAULT_ON,
    Decision,
    ParentBased,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    get_current_span,
    set_span_in_context,
)

# OTLP's SpanKind numbers.
SERVER = 2
CLIENT = 3
_KINDS = {SERVER: SpanKind.SERVER, CLIENT: SpanKind.CLIENT}

AttributeValue = str | bool | int | float | tuple[str, ...]
Attributes = dict[str, AttributeValue]

# Random ids, made a few hundred at a time by one `os.urandom` call: popped as spans start,
# and as requests without an id of their own get one (`REQUEST_IDS`, see `middleware`). A
# system call per id would cost more than the rest of the span; made by `random` (a Mersenne
# Twister, then its integer converted to bytes) they cost about 3,000 instructions a request
# more with telemetry on (`make instructions`).
_IDS_PER_REFILL = 512
_SPAN_IDS: list[bytes] = []
_TRACE_IDS: list[bytes] = []
REQUEST_IDS: list[bytes] = []


def refill_ids(ids: list[bytes], size: int) -> bytes:
    """Fill `ids` with new random ids of `size` bytes (never all zeros, which are invalid)
    and take one."""
    total = size * _IDS_PER_REFILL
    ids += _SPLIT[size](os.urandom(total))
    zero = bytes(size)
    if zero in ids:
        ids[:] = [each for each in ids if each != zero]
    return ids.pop() if ids else refill_ids(ids, size)


_SPLIT = {size: struct.Struct(f"{size}s" * _IDS_PER_REFILL).unpack for size in (8, 16)}


def _forget_ids() -> None:
    """In a forked child: the ids the parent made are the parent's."""
    _SPAN_IDS.clear()
    _TRACE_IDS.clear()
    REQUEST_IDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_ids)

NO_BASE: Attributes = {}
"""A span without shared attributes (never added to)."""

NO_ATTRIBUTES: Attributes = {}
"""A span without attributes of its own (never added to)."""

INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"


class RemoteParent(NamedTuple):
    """The caller's span, as the propagation headers named it (ids as on the wire)."""

    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    sampled: bool
    trace_state: str  # the W3C tracestate header value, "" when none


class Ending:
    """What spans that end alike share, for sinks to keep what they derive from it: spans
    holding the same `Ending` (`Span.ending`) have the same name, kind, error and `base`."""

    __slots__ = ("encoded",)

    def __init__(self) -> None:
        # `otlp.SpanEncoder`'s encoding of what they share: with a local parent or none, and
        # with a remote parent (so indexed by `Span.remote_parent`).
        self.encoded: list[Any] = [None, None]


class Span(msgspec.Struct, gc=False):
    """One operation: ids, timing, attributes and, when it failed, a short error type.

    Ids are kept as the bytes the wire carries (16 for the trace, 8 for a span): encoding
    them and writing them in hex for `traceparent` is then a copy, not a conversion.

    A span's attributes are `base`, a dictionary its creator shares between the spans that
    start alike (and never changes, so sinks may keep what they derive from it), followed by
    its own `attributes`, then the token counts of a model call (`INPUT_TOKENS` and
    `OUTPUT_TOKENS`) when set; none of these name the same attribute. `all_attributes()` has
    them all. (The counts are fields rather than own attributes because nearly every CLIENT
    span has them: a span then needs no dictionary of its own, and the encoder writes them
    without looking them up.)

    A msgspec Struct: two are made per request, and one is made in C for a third of what a
    slotted class's `__init__` costs. It holds only strings, numbers, bytes and dictionaries
    of those, so the cycle collector need not track it. `Tracer.start` makes them.
    """

    name: str
    kind: int
    attributes: Attributes
    base: Attributes
    trace_id: bytes
    trace_hex: str  # the trace id in hex, formatted once per trace
    span_id: bytes
    parent_id: bytes | None
    remote_parent: bool
    sampled: bool
    trace_state: str
    start_ns: int
    end_ns: int = 0
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    ending: Ending | None = None  # set when the span ends, by a creator that shares them

    def all_attributes(self) -> Attributes:
        """The shared attributes, the span's own, then the token counts (a new dictionary)."""
        attributes = {**self.base, **self.attributes}
        if self.input_tokens is not None:
            attributes[INPUT_TOKENS] = self.input_tokens
        if self.output_tokens is not None:
            attributes[OUTPUT_TOKENS] = self.output_tokens
        return attributes


CURRENT_SPAN: ContextVar[Span | None] = ContextVar("gateway_current_span", default=None)
"""The request's SERVER span, parent of the upstream attempts made while serving it."""


class SpanSink(Protocol):
    """Where finished, sampled spans go."""

    def emit(self, span: Span) -> None:
        """Take one finished span (called on the event loop: must not block)."""
        ...

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export whatever is pending now."""
        ...

    def shutdown(self) -> None:
        """Export what is pending and stop."""
        ...


class Tracer:
    """Starts and ends spans; ended, sampled ones are handed to every sink."""

    def __init__(self, sinks: Sequence[SpanSink], sampler: Sampler = DEFAULT_ON) -> None:
        emits = tuple(sink.emit for sink in sinks)
        # Hands one ended, sampled span to every sink (`end` does this; the per-request hooks
        # end their spans themselves: see `ServerSide.record`).
        self.emit = emits[0] if len(emits) == 1 else _fan_out(emits)
        self._sampler = None if sampler is DEFAULT_ON else sampler
        self._decide = None if self._sampler is None else _decider(sampler)

    def start(self, name: str, kind: int, attributes: Attributes,
              parent: Span | RemoteParent | None, base: Attributes = NO_BASE) -> Span:
        """A started span; `attributes` becomes the span's own (no copy), `base` is shared
        (see `Span`). Two are started per request: the usual case is written out here."""
        if self._sampler is not None:
            return self._start_sampled(name, kind, attributes, parent, base)
        try:
            span_id = _SPAN_IDS.pop()
        except IndexError:
            span_id = refill_ids(_SPAN_IDS, 8)
        if parent is None:
            try:
                trace_id = _TRACE_IDS.pop()
            except IndexError:
                trace_id = refill_ids(_TRACE_IDS, 16)
            return Span(name, kind, attributes, base, trace_id, trace_id.hex(), span_id, None,
                        False, True, "", time_ns())
        if type(parent) is Span:
            return Span(name, kind, attributes, base, parent.trace_id, parent.trace_hex,
                        span_id, parent.span_id, False, parent.sampled, parent.trace_state,
                        time_ns())
        return Span(name, kind, attributes, base, parent.trace_id, parent.trace_id.hex(),
                    span_id, parent.span_id, True, parent.sampled, parent.trace_state,
                    time_ns())

    def end(self, span: Span) -> None:
        """Stamp the end time and export the span if it is sampled."""
        span.end_ns = time_ns()
        if span.sampled:
            self.emit(span)

    def _start_sampled(self, name: str, kind: int, attributes: Attributes,
                       parent: Span | RemoteParent | None, base: Attributes) -> Span:
        assert self._sampler is not None
        span = _UNSAMPLED.start(name, kind, attributes, parent, base)
        if self._decide is not None:  # one of the SDK's samplers, decided here (`_decider`)
            span.sampled = self._decide(parent, span.trace_id)
            return span
        context = None
        if parent is not None:
            context = set_span_in_context(NonRecordingSpan(_span_context(
                parent.trace_id, parent.span_id, parent.sampled, parent.trace_state,
                remote=isinstance(parent, RemoteParent))))
        result = self._sampler.should_sample(context, _int(span.trace_id), name, _KINDS[kind],
                                             span.all_attributes())
        span.sampled = result.decision is Decision.RECORD_AND_SAMPLE
        if result.attributes:  # they may replace shared ones: the span keeps its own copy
            span.attributes = {**span.all_attributes(), **result.attributes}
            span.base = NO_BASE
        span.trace_state = result.trace_state.to_header() if result.trace_state else ""
        return span


Decide = Callable[["Span | RemoteParent | None", bytes], bool]
"""Whether a span starting under this parent, in the trace with this id, is sampled."""


def _decider(sampler: Sampler) -> Decide | None:
    """`sampler`'s decision, made without it, when it is one of the SDK's own samplers (or a
    subclass that decides as they do); None for any other, which is asked for each span.

    The SDK's samplers give a sampled span the attributes it started with and the parent's
    trace state, which is what the span already has; asking them costs more than the rest of
    a span's start (a context, a span context and a result object for every span) and copies
    the span's shared attributes into its own. Their settings are read once, here (from
    their private attributes: a release of the SDK without them is asked, as any sampler).
    """
    decides = type(sampler).should_sample
    if decides is StaticSampler.should_sample:
        decision = getattr(sampler, "_decision", None)
        if decision is None:
            return None
        sampled = decision is Decision.RECORD_AND_SAMPLE
        return (lambda parent, trace_id: True) if sampled else (lambda parent, trace_id: False)
    if decides is TraceIdRatioBased.should_sample:
        assert isinstance(sampler, TraceIdRatioBased)
        bound = sampler.bound  # the low 64 bits of the trace id are below it: sampled
        if sampler.TRACE_ID_LIMIT != (1 << 64) - 1:
            return None
        return lambda parent, trace_id: int.from_bytes(trace_id[8:], "big") < bound
    if decides is ParentBased.should_sample:
        found = [_decider(each) if isinstance(each, Sampler) else None
                 for each in (getattr(sampler, name, None) for name in _DELEGATES)]
        delegates = [each for each in found if each is not None]
        if len(delegates) < len(found):  # a delegate that must be asked
            return None
        root, remote_sampled, remote_unsampled, local_sampled, local_unsampled = delegates

        def parent_based(parent: Span | RemoteParent | None, trace_id: bytes) -> bool:
            if parent is None:
                return root(parent, trace_id)
            if type(parent) is RemoteParent:
                chosen = remote_sampled if parent.sampled else remote_unsampled
            else:
                chosen = local_sampled if parent.sampled else local_unsampled
            return chosen(parent, trace_id)
        return parent_based
    return None


_DELEGATES = ("_root", "_remote_parent_sampled", "_remote_parent_not_sampled",
              "_local_parent_sampled", "_local_parent_not_sampled")
"""A `ParentBased` sampler's delegates: with no parent, then by the parent's kind and flag."""


def _fan_out(emits: tuple[Callable[[Span], None], ...]) -> Callable[[Span], None]:
    def emit(span: Span) -> None:
        for each in emits:
            each(span)
    return emit


_UNSAMPLED = Tracer(())
"""Makes the spans a sampler then decides on (every field but the sampling decision)."""


def to_readable(span: Span, *, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    """The SDK's view of a finished span, as its own `Tracer` would have made it."""
    parent = None
    if span.parent_id is not None:
        parent = _span_context(span.trace_id, span.parent_id, span.sampled, span.trace_state,
                               remote=span.remote_parent)
    status = (Status(StatusCode.UNSET) if span.error is None
              else Status(StatusCode.ERROR, span.error))
    return ReadableSpan(
        name=span.name,
        context=_span_context(span.trace_id, span.span_id, span.sampled, span.trace_state,
                              remote=False),
        parent=parent, resource=resource, attributes=span.all_attributes(),
        kind=_KINDS[span.kind], status=status, start_time=span.start_ns,
        end_time=span.end_ns, instrumentation_scope=scope)


class ExporterSink:
    """Exports each span at once through an SDK `SpanExporter` (the tests' hook)."""

    def __init__(self, exporter: SpanExporter, *, resource: Resource,
                 scope: InstrumentationScope) -> None:
        self._exporter = exporter
        self._resource = resource
        self._scope = scope

    def emit(self, span: Span) -> None:
        """Export `span` now."""
        self._exporter.export([to_readable(span, resource=self._resource, scope=self._scope)])

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the exporter."""
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Shut the exporter down."""
        self._exporter.shutdown()


def remote_parent(context: Context) -> RemoteParent | None:
    """The valid remote span in an OpenTelemetry context (as `propagate.extract` returns)."""
    found = get_current_span(context).get_span_context()
    if not found.is_valid:
        return None
    return RemoteParent(found.trace_id.to_bytes(16, "big"), found.span_id.to_bytes(8, "big"),
                        found.trace_flags.sampled,
                        found.trace_state.to_header() if found.trace_state else "")


def _int(wire_id: bytes) -> int:
    """An id as the SDK holds it."""
    return int.from_bytes(wire_id, "big")


def _span_context(trace_id: bytes, span_id: bytes, sampled: bool, trace_state: str, *,
                  remote: bool) -> SpanContext:
    return SpanContext(_int(trace_id), _int(span_id), is_remote=remote,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0),
                       trace_state=TraceState.from_header([trace_state]) if trace_state
                       else None)
