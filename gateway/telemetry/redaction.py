"""Scrubbing credentials out of text before it leaves the process (logs, spans)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

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
