"""Fast JSON responses and the rendering of gateway errors."""

from __future__ import annotations

from collections.abc import Mapping, Sized
from typing import Any

import orjson
from starlette.responses import Response

from gateway.errors import GatewayError, UpstreamError

# Header pairs as Starlette writes them (name lowered, both latin-1), kept by (name, value):
# answers repeat the same few (x-cache, the provider and model that served them).
_RAW_PAIRS: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_RAW_PAIRS_KEPT = 1024
_JSON_TYPE = (b"content-type", b"application/json")


def _raw_pair(item: tuple[str, str]) -> tuple[bytes, bytes]:
    name, value = item
    pair = (name.lower().encode("latin-1"), value.encode("latin-1"))
    if len(_RAW_PAIRS) >= _RAW_PAIRS_KEPT:
        _RAW_PAIRS.clear()
    _RAW_PAIRS[item] = pair
    return pair


def raw_headers(headers: Mapping[str, str] | None, kind: tuple[bytes, bytes],
                body: Sized | None, status: int) -> list[tuple[bytes, bytes]]:
    """Starlette's `Response.raw_headers` for these headers, with `kind` as the content-type
    line and `body`'s length unless the headers name them, from kept bytes: each header is
    lowered and encoded once, not for every answer."""
    raw: list[tuple[bytes, bytes]] = []
    length = typed = True
    if headers:
        for item in headers.items():
            pair = _RAW_PAIRS.get(item) or _raw_pair(item)
            raw.append(pair)
            name = pair[0]
            if name == b"content-length":
                length = False
            elif name == b"content-type":
                typed = False
    if body is not None and length and not (status < 200 or status in (204, 304)):
        raw.append((b"content-length", b"%d" % len(body)))
    if typed:
        raw.append(kind)
    return raw


class JSONResponse(Response):
    """A JSON response serialised with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise `content` to compact UTF-8 JSON."""
        return orjson.dumps(content)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        """Starlette's `raw_headers`, the same list, through `raw_headers` (16,000
        instructions an answer with three headers, against 4,000)."""
        if self.media_type != JSONResponse.media_type:
            super().init_headers(headers)
            return
        self.raw_headers = raw_headers(headers, _JSON_TYPE, self.body, self.status_code)


def error_response(exc: GatewayError, body: Any = None) -> JSONResponse:
    """The HTTP answer for a gateway error: its status and Retry-After hint, with `body` (by
    default the spec's `Error` shape; the client APIs give their own)."""
    headers: dict[str, str] = {}
    if isinstance(exc, UpstreamError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(0, round(exc.retry_after)))
    return JSONResponse(exc.payload() if body is None else body, status_code=exc.status,
                        headers=headers)
