"""Page a contract model list for real: offsets, opaque cursor tokens and page numbers."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


def effective_size(requested: str | None, default: int, cap: int | None) -> int:
    """The page size to serve: the requested (or default) size, clamped to the cap."""
    try:
        size = int(requested) if requested else default
    except ValueError:
        size = default
    size = max(1, size)
    return min(size, cap) if cap else size


def page(items: Sequence[T], offset: int, size: int) -> tuple[list[T], int | None]:
    """`size` items from `offset`, and the next offset when this page was full (else None).

    "A full page means there may be more" is how the cursor APIs in the contracts behave: the
    recorded first pages carry a next cursor, and the list ends with a short or empty page.
    """
    chunk = list(items[offset:offset + size])
    return chunk, (offset + size if len(chunk) == size else None)


class PageTokens:
    """Opaque page tokens; the contract's own tokens are kept for the offsets they stand for."""

    def __init__(self, known: Mapping[int, str] | None = None) -> None:
        self._by_offset = dict(known or {})
        self._by_token = {token: offset for offset, token in self._by_offset.items()}

    def token(self, offset: int) -> str:
        """The token that resumes listing at `offset`."""
        if offset in self._by_offset:
            return self._by_offset[offset]
        raw = json.dumps({"offset": offset}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def offset(self, token: str) -> int | None:
        """The offset a token stands for, or None when the token is not one of ours."""
        if token in self._by_token:
            return self._by_token[token]
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (ValueError, binascii.Error):
            return None
        value = decoded.get("offset") if isinstance(decoded, dict) else None
        return value if isinstance(value, int) and value >= 0 else None
