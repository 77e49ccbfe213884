"""Spans to an OTLP/HTTP collector: encoded straight to protobuf bytes, sent in batches.

The SDK's exporter builds a protobuf message object per span, attribute and value, and
serialises the resource (as JSON, to hash it) once per span. The gateway's spans share one
resource and scope, and their attributes repeat from request to request, so this encoder
writes the wire format directly, with the resource, the scope and repeated attributes
encoded once. The message is the one `ExportTraceServiceRequest` the SDK would send; the
sending (endpoint, headers, TLS, compression, retries from `OTEL_EXPORTER_OTLP_*`) is still
the SDK exporter's.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import msgspec
from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.environment_variables import (
    _OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER,
    _OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from gateway.telemetry.spans import INPUT_TOKENS, OUTPUT_TOKENS, Attributes, Span

log = logging.getLogger(__name__)

_DOUBLE = struct.Struct("<d")
_SMALL = [bytes([n]) for n in range(128)]
# Span.flags (field 16, fixed32): the parent's remoteness is known, and whether it is remote.
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)
# Span.start_time_unix_nano (field 7, its tag written before) and end_time_unix_nano (8).
_TIMES = struct.Struct("<QBQ")
_STATUS_UNSET = b"\x7a\x00"  # an empty Status message, as the SDK always sends one
_CACHED_ATTRIBUTES = 4096
# Attribute value types whose encoding is kept by (key, value). Not bool nor float: they
# compare equal to ints (True == 1 == 1.0) and so would share their entries.
_CACHEABLE = frozenset({str, int, tuple})


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    if 0 < value < 0x4000:  # the length of a span, most often
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0:  # int64 in two's complement, ten bytes
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _head(size: int) -> bytes:
    """The tag and length of a `spans` field of `size` bytes, and the trace id's tag (every
    span's first field); kept by size."""
    head = _HEADS.get(size)
    if head is None:
        if len(_HEADS) >= _CACHED_ATTRIBUTES:
            _HEADS.clear()
        head = _HEADS[size] = b"\x12" + _varint(size) + b"\x0a\x10"
    return head


_HEADS: dict[int, bytes] = {}


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """An `AnyValue` message."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, (tuple, list)):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(v)) for v in value))
    raise TypeError(f"cannot encode a {type(value).__name__} attribute")


def _attribute(item: tuple[str, Any]) -> bytes:
    """One `attributes` field of a span."""
    key, value = item
    if type(value) is int:  # token counts, on every upstream call: the short way
        head = _INT_HEADS.get(key)
        if head is None:
            head = _int_head(key)
        if head:
            number = _varint(value)
            # KeyValue = key field, then the value field: an AnyValue of one int_value.
            size = len(number)
            return b"".join((b"\x4a", _SMALL[len(head) + 2 + size], head, _SMALL[size + 1],
                             b"\x18", number))
    return _field(b"\x4a", _key_value(key, value))


# The encoded key field and the value field's tag of int attributes, by key ("" when a
# length would take more than one byte: those take the general way).
_INT_HEADS: dict[str, bytes] = {}


def _int_head(key: str) -> bytes:
    encoded = _field(b"\x0a", key.encode()) + b"\x12"
    head = encoded if len(encoded) + 2 + 10 < 0x80 else b""
    if len(_INT_HEADS) >= _CACHED_ATTRIBUTES:
        _INT_HEADS.clear()
    _INT_HEADS[key] = head
    return head


def _key_value(key: str, value: Any) -> bytes:
    """A `KeyValue` message."""
    return _field(b"\x0a", key.encode()) + _field(b"\x12", _any_value(value))


class SpanEncoder:
    """Encodes batches of spans sharing one resource and scope as an export request."""

    def __init__(self, resource: Resource, scope: InstrumentationScope) -> None:
        resource_body = b"".join(_field(b"\x0a", _key_value(k, v))
                                 for k, v in resource.attributes.items())
        self._resource = _field(b"\x0a", resource_body)
        self._resource_schema = (_field(b"\x1a", resource.schema_url.encode())
                                 if resource.schema_url else b"")
        scope_body = _field(b"\x0a", scope.name.encode()) if scope.name else b""
        if scope.version:
            scope_body += _field(b"\x12", scope.version.encode())
        self._scope = _field(b"\x0a", scope_body)
        self._scope_schema = (_field(b"\x1a", scope.schema_url.encode())
                              if scope.schema_url else b"")
        # Encoded `attributes` fields of a span by (key, value): most repeat per request.
        self._attributes: dict[tuple[str, Any], bytes] = {}
        # Encoded token-count attributes by count (see `Span`).
        self._inputs: dict[int, bytes] = {}
        self._outputs: dict[int, bytes] = {}
        # What spans ending alike share, encoded, by the id of their `Span.base` (for spans
        # without a `Span.ending`, which keeps it otherwise).
        self._shapes: dict[int, _Shape] = {}

    def encode(self, spans: Sequence[Span]) -> bytes:
        """The serialised `ExportTraceServiceRequest` carrying `spans`."""
        return self.request([self.span(span) for span in spans])

    def request(self, spans: Sequence[bytes]) -> bytes:
        """The serialised `ExportTraceServiceRequest` carrying spans encoded by `span`.

        A batch is hundreds of kilobytes: the nested messages' lengths are added up first
        and the request is joined once, rather than copied once per level of nesting.
        """
        scope_size = len(self._scope) + sum(map(len, spans)) + len(self._scope_schema)
        scope_head = b"\x12" + _varint(scope_size)
        resource_size = (len(self._resource) + len(scope_head) + scope_size
                         + len(self._resource_schema))
        return b"".join([b"\x0a", _varint(resource_size), self._resource, scope_head,
                         self._scope, *spans, self._scope_schema, self._resource_schema])

    def span(self, span: Span) -> bytes:
        """One finished span, as the `spans` field of a `ScopeSpans` message.

        Most spans are written by one `struct` call of their shape (see `_Shape`): the
        field's head, their ids, parent and times, between the parts they share with the
        spans that end alike. A span with attributes of its own (token counts among them) has
        them written after the shared attributes, then the shape's tail; a span with a trace
        state is written field by field (`_general`).
        """
        ending = span.ending
        shape: _Shape
        if ending is not None:  # a shape kept where the span's creator shares it
            shape = ending.encoded[span.remote_parent]
            if shape is None:
                shape = ending.encoded[span.remote_parent] = self._shape(span)
        else:
            shape = self._kept_shape(span)
        parent = span.parent_id
        if (span.input_tokens is None and span.output_tokens is None and not span.attributes
                and not span.trace_state):
            if parent is None:
                return shape.lone_whole(shape.lone_head, span.trace_id, b"\x12\x08",
                                        span.span_id, shape.head, span.start_ns, 0x41,
                                        span.end_ns, shape.shared_tail)
            return shape.child_whole(shape.child_head, span.trace_id, b"\x12\x08",
                                     span.span_id, b"\x22\x08", parent, shape.head,
                                     span.start_ns, 0x41, span.end_ns, shape.shared_tail)
        own = self._own(span.attributes) if span.attributes else b""
        count = span.input_tokens
        if count is not None:
            own += self._inputs.get(count) or self._count(self._inputs, INPUT_TOKENS, count)
        count = span.output_tokens
        if count is not None:
            own += self._outputs.get(count) or self._count(self._outputs, OUTPUT_TOKENS, count)
        if span.trace_state:
            return self._general(span, shape, own)
        size = shape.size + len(own)
        if parent is None:
            middle = shape.lone(span.trace_id, b"\x12\x08", span.span_id, shape.head,
                                span.start_ns, 0x41, span.end_ns, shape.shared)
        else:
            size += 10
            middle = shape.child(span.trace_id, b"\x12\x08", span.span_id, b"\x22\x08",
                                 parent, shape.head, span.start_ns, 0x41, span.end_ns,
                                 shape.shared)
        head = _HEADS.get(size)
        if head is None:
            head = _head(size)
        return b"".join((head, middle, own, shape.tail))

    def _own(self, attributes: Attributes) -> bytes:
        """A span's own attributes, encoded (each kept by key and value when it may be)."""
        cache = self._attributes
        pieces = []
        for item in attributes.items():
            encoded = cache.get(item) if type(item[1]) in _CACHEABLE else None
            if encoded is None:
                encoded = self._attribute(item)
            pieces.append(encoded)
        return b"".join(pieces)

    @staticmethod
    def _general(span: Span, shape: _Shape, own: bytes) -> bytes:
        """`span` field by field: the way for a trace state (which follows the span id)."""
        state = _field(b"\x1a", span.trace_state.encode())
        parent = span.parent_id
        size = shape.size + len(state) + len(own) + (0 if parent is None else 10)
        return b"".join((
            _head(size), span.trace_id, b"\x12\x08", span.span_id, state,
            b"" if parent is None else b"\x22\x08" + parent, shape.head,
            _TIMES.pack(span.start_ns, 0x41, span.end_ns), shape.shared, own, shape.tail))

    def _kept_shape(self, span: Span) -> _Shape:
        """The shape of a span without a `Span.ending`, kept here by the id of its base."""
        base = span.base
        found = self._shapes.get(id(base))
        if (found is None or found.base is not base or found.name is not span.name
                or found.error is not span.error or found.kind != span.kind
                or found.remote is not span.remote_parent):
            if len(self._shapes) >= _CACHED_ATTRIBUTES:
                self._shapes.clear()
            found = self._shapes[id(base)] = self._shape(span)
        return found

    def _shape(self, span: Span) -> _Shape:
        """What `span` shares with the spans that end alike, encoded. (`span` keeps it in its
        `Span.ending`; otherwise it is kept by the span's base, which it holds, so that the
        base's id stays unique.)"""
        base = span.base
        name = _field(b"\x2a", span.name.encode()) if span.name else b""
        # The name and kind fields, and the tag of the start time's (which follows them).
        head = name + bytes((0x30, span.kind, 0x39))
        shared = b"".join(map(_attribute, base.items()))
        status = (_STATUS_UNSET if span.error is None else
                  _field(b"\x7a", _field(b"\x12", span.error.encode()) + b"\x18\x02"))
        tail = status + (_FLAGS_REMOTE if span.remote_parent else _FLAGS_LOCAL)
        # The ids' fields (18 and 10 bytes) and the times' (18), then the shared parts.
        size = 18 + 10 + len(head) + 17 + len(shared) + len(tail)
        lone_head = _head(size)
        child_head = _head(size + 10)
        # The trace id, the span id's tag and the id, [its parent's tag and the parent,] the
        # head, the times (the end's tag between them) and the shared attributes [and tail].
        ids = "16s2s8s"
        rest = f"{len(head)}sQBQ"
        whole = len(shared) + len(tail)
        return _Shape(base, span.name, span.error, span.kind, span.remote_parent, head,
                      shared, tail, shared + tail, size, lone_head, child_head,
                      struct.Struct(f"<{ids}{rest}{len(shared)}s").pack,
                      struct.Struct(f"<{ids}2s8s{rest}{len(shared)}s").pack,
                      struct.Struct(f"<{len(lone_head)}s{ids}{rest}{whole}s").pack,
                      struct.Struct(f"<{len(child_head)}s{ids}2s8s{rest}{whole}s").pack)

    @staticmethod
    def _count(cache: dict[int, bytes], key: str, count: int) -> bytes:
        """A token count's attribute, encoded and kept (in `cache`, by count)."""
        encoded = _attribute((key, count))
        if len(cache) >= _CACHED_ATTRIBUTES:
            cache.clear()
        cache[count] = encoded
        return encoded

    def _attribute(self, item: tuple[str, Any]) -> bytes:
        """A span's own attribute, encoded and, when its value type allows, kept."""
        encoded = _attribute(item)
        if type(item[1]) in _CACHEABLE:
            if len(self._attributes) >= _CACHED_ATTRIBUTES:
                self._attributes.clear()
            self._attributes[item] = encoded
        return encoded


class _Shape(msgspec.Struct, gc=False):
    """See `SpanEncoder._shape`. (A Struct: its fields are read for every span, and a
    NamedTuple's cost twice as much to read.)"""

    base: dict[str, Any]
    name: str
    error: str | None
    kind: int
    remote: bool
    head: bytes  # the name and kind fields, and the start time's tag
    shared: bytes  # the shared attributes
    tail: bytes  # the status and flags fields
    shared_tail: bytes  # both
    size: int  # the span's encoded size without its parent and what is its own
    lone_head: bytes  # the `spans` field's tag and length, and the trace id's tag: no parent
    child_head: bytes  # the same for a span with a parent
    # Writers of a span's ids, times and shared attributes, without and with a parent; then
    # of a whole `spans` field, head to tail, without and with (for spans with nothing of
    # their own).
    lone: Callable[..., bytes]
    child: Callable[..., bytes]
    lone_whole: Callable[..., bytes]
    child_whole: Callable[..., bytes]


class OtlpSpanSender(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter, sending payloads already encoded.

    To a plain-HTTP collector (the usual one, beside the gateway or in its cluster) it sends
    through the SDK's own urllib3 transport instead of its default, `requests`, which spends
    about 0.4 ms more CPU on every export (its session merges proxy and netrc settings from
    the environment per request): 0.76 against 0.40 ms an export of 2,048 spans, and in the
    gateway under load the export thread's CPU fell from about 2.1 to 1.3 µs a request.
    What `requests` could add is checked once, here (`_plain_http`): a collector over HTTPS
    (requests' certificate bundle and variables), a proxy from the environment, a netrc file
    or a credential-provider session keep the SDK's default transport, so the exporter then
    behaves exactly as the SDK's does.
    """

    def __init__(self, endpoint: str | None = None) -> None:
        url = endpoint or os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or ""
        if _plain_http(url):
            super().__init__(endpoint=endpoint, _transport=Urllib3HTTPTransport())
        else:
            super().__init__(endpoint=endpoint)

    def send(self, payload: bytes) -> bool:
        """POST one encoded export request; False when it was not accepted."""
        if self._shutdown:
            return False
        return self._client.export(payload).success


def _plain_http(url: str) -> bool:
    """Whether `requests` would surely send to `url` just as urllib3 does: plain HTTP, no
    credential-provider session, no proxy from the environment (unless `NO_PROXY` names the
    host) and no netrc file. When in doubt, no."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        return False
    if any(os.environ.get(name) for name in (
            _OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER,
            _OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER, "NETRC")):
        return False
    proxies = getproxies()
    if (proxies.get("http") or proxies.get("all")) and not proxy_bypass(parts.hostname):
        return False
    try:
        home = Path.home()
    except (KeyError, RuntimeError):  # no home directory: no netrc file for requests either
        return True
    return not ((home / ".netrc").exists() or (home / "_netrc").exists())


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


# Four times the SDK's defaults (512 and 2048): an export request costs about a millisecond
# of CPU whatever its size, a cost the gateway's two spans per request would pay every 256
# requests with the SDK's batches.
DEFAULT_BATCH_SIZE = 2048
DEFAULT_QUEUE_SIZE = 8192
ENCODE_AT = 64
"""Ended spans that wait to be encoded together (see `SpanBatcher`)."""


class SpanBatcher:
    """Encodes finished spans a few dozen at a time and queues them; a daemon thread sends
    them in batches.

    Ended spans wait, as they are, until `ENCODE_AT` have ended; the caller's thread then
    encodes them one after another. The instructions are the same as encoding each span as
    it ends, but a run of them finds the encoder's code and caches warm: in the gateway under
    load this took 7 µs of CPU a request less (166 against 159 µs, telemetry on). What then
    waits for the export thread is about 340 bytes a span rather than the span's objects
    (which would otherwise outlive thousands of requests); the thread encodes whatever has
    not been yet, joins a batch's pieces and sends them.

    Spans leave when `max_export_batch_size` are waiting or `schedule_delay_millis` after
    the previous export; the `OTEL_BSP_*` variables set these (and the queue size) as for
    the SDK's batch processor. When `max_queue_size` spans wait, the oldest are dropped.
    The thread starts with the first span, so a process forked after start-up gets its own.
    """

    def __init__(self, sender: OtlpSpanSender, encoder: SpanEncoder, *,
                 schedule_delay_millis: int | None = None,
                 max_export_batch_size: int | None = None,
                 max_queue_size: int | None = None,
                 before_export: Callable[[], None] | None = None) -> None:
        self._sender = sender
        self._encoder = encoder
        self._delay = (schedule_delay_millis or _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000)) / 1e3
        self._batch = (max_export_batch_size
                       or _env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DEFAULT_BATCH_SIZE))
        queue_size = max_queue_size or _env_int("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE_SIZE)
        self._batch = min(self._batch, queue_size)
        self._queue: deque[bytes] = deque(maxlen=queue_size)
        self._ended: deque[Span] = deque()  # not encoded yet
        self._dropped = 0
        self._stopped = False
        # Called before each export, on the exporting thread: hands over spans that ended but
        # wait to be recorded (`Telemetry.record_ended`).
        self._before_export = before_export
        self._reset()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._reset)

            def reset_in_child() -> None:
                reset = ref()
                if reset is not None:
                    reset()

            os.register_at_fork(after_in_child=reset_in_child)

    def _reset(self) -> None:
        """Start afresh (also in a forked child, where the parent's thread does not run)."""
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._queue.clear()
        self._ended.clear()
        self._encode_at = 1  # the first span starts the thread

    def emit(self, span: Span) -> None:
        """Queue `span` for export (encoded with the next `ENCODE_AT`)."""
        ended = self._ended
        ended.append(span)
        if len(ended) >= self._encode_at:
            self._encode()

    def _encode(self) -> None:
        """Encode the ended spans into the export queue (on either thread: each span is
        taken once), dropping the oldest when it is full; wake the thread for a full batch."""
        ended = self._ended
        encode = self._encoder.span
        queue = self._queue
        assert queue.maxlen is not None
        overflow = len(queue) + len(ended) - queue.maxlen
        if overflow > 0:
            self._dropped += overflow
        try:
            for _ in range(len(ended)):
                queue.append(encode(ended.popleft()))
        except IndexError:  # the other thread took the rest
            pass
        if self._thread is None and queue:  # the first span, not a flush before any
            self._start()
            self._encode_at = ENCODE_AT
        if len(queue) >= self._batch and not self._wake.is_set():
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every queued span now, on the calling thread."""
        if self._stopped:
            return False
        self._export()
        return True

    def shutdown(self) -> None:
        """Export what is queued, stop the thread and the sender."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        self._export()
        self._sender.shutdown()  # type: ignore[no-untyped-call]

    def _start(self) -> None:
        # Spans may be handed over on two threads at once (a metric reader's records what
        # waits, `Telemetry.record_ended`): one of them starts the thread.
        with self._start_lock:
            if self._stopped or self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="gateway-span-export",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._delay)
            self._wake.clear()
            if self._stopped:
                return
            self._export()

    def _export(self) -> None:
        with self._export_lock:
            if self._before_export is not None:
                try:
                    self._before_export()
                except Exception:  # spans ended but not handed over must not stop exports
                    log.exception("recording ended spans failed")
            self._encode()
            if self._dropped:
                log.warning("span queue full: dropped %d spans", self._dropped)
                self._dropped = 0
            queue = self._queue
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), self._batch))]
                try:
                    if not self._sender.send(self._encoder.request(batch)):
                        log.warning("the collector did not accept %d spans", len(batch))
                except Exception:  # an export failure must never stop later exports
                    log.exception("exporting %d spans failed", len(batch))
