"""Scrubbing credentials out of text before it leaves the process (logs, spans)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

REDACTED = "[REDACTED]"

# Names whose value is a credential, in `name=value`, `name: value`, JSON and repr forms.
_NAMED_VALUE = re.compile(
    r"""(?ix)
    (?<![A-Za-z0-9_-])
    (
      (?:x-api-key|x-goog-api-key|api[_-]?key|apikey|key|access[_-]?token|refresh[_-]?token
        |id[_-]?token|token|client[_-]?secret|secret|password|passwd|authorization)
      ["']?\s*[=:]\s*["']?
    )
    (?:(?:bearer|basic)\s+)?+
    (?!\[REDACTED)
    [^\s"'&,;)}\]]+
    """
)
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+(?!\[REDACTED)[A-Za-z0-9._~+/=-]{4,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
# Well-known provider key shapes, caught even when they appear without a name.
_KEY_SHAPES = re.compile(
    r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}|gsk_[A-Za-z0-9]{20,})"
)
# What every pattern above needs somewhere in a text to match: a text without any of these
# (the usual case) is returned as it is, without running each pattern over it.
_MAYBE_CREDENTIAL = (r"(?i:key|token|secret|passw|authorization|bearer|basic|eyj|sk-|aiza"
                     r"|gsk_)")


CLEAN_TEXTS_KEPT = 4096
CLEAN_TEXT_MAX_LENGTH = 256


class Redactor:
    """Replaces configured secret values and credential-looking substrings with a marker."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        # One alternation, longest first, so a secret containing another is removed whole.
        self._literal = re.compile("|".join(map(re.escape, values))) if values else None
        self._maybe = re.compile("|".join([_MAYBE_CREDENTIAL, *map(re.escape, values)]))
        # Short texts seen to be clean (paths, model and provider names repeat per request).
        self._clean: set[str] = set()

    def text(self, value: str) -> str:
        """The value with every secret and credential pattern replaced."""
        if value in self._clean:
            return value
        if not self._maybe.search(value):
            if len(value) <= CLEAN_TEXT_MAX_LENGTH:
                if len(self._clean) >= CLEAN_TEXTS_KEPT:
                    self._clean.clear()
                self._clean.add(value)
            return value
        if self._literal is not None:
            value = self._literal.sub(REDACTED, value)
        value = _JWT.sub(REDACTED, value)
        value = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
        value = _NAMED_VALUE.sub(lambda m: m.group(1) + REDACTED, value)
        return _KEY_SHAPES.sub(REDACTED, value)

    def value(self, value: Any) -> Any:
        """Redact strings, recursing into lists, tuples and dicts; other values pass."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        return value


class RedactingSpanExporter(SpanExporter):
    """Wraps an exporter; spans carrying a secret in any string are copied scrubbed."""

    def __init__(self, inner: SpanExporter, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export through the wrapped exporter, after scrubbing."""
        return self._inner.export([self._scrub(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self._inner.force_flush(timeout_millis)

    def _scrub(self, span: ReadableSpan) -> ReadableSpan:
        redact = self._redactor.value
        attributes = dict(span.attributes or {})
        clean_attributes = redact(attributes)
        events = [Event(e.name, redact(dict(e.attributes or {})), e.timestamp) for e in span.events]
        description = span.status.description
        clean_description = redact(description)
        unchanged = clean_attributes == attributes and clean_description == description and all(
            dict(a.attributes or {}) == dict(b.attributes or {})
            for a, b in zip(events, span.events, strict=True)
        )
        if unchanged:
            return span
        return ReadableSpan(
            name=redact(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=clean_attributes,
            events=events,
            links=span.links,
            kind=span.kind,
            status=Status(span.status.status_code, clean_description),
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
