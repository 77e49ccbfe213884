"""Fast JSON responses and the rendering of gateway errors."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from gateway.errors import GatewayError, UpstreamError


class JSONResponse(Response):
    """A JSON response serialised with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise `content` to compact UTF-8 JSON."""
        return orjson.dumps(content)


def error_response(exc: GatewayError, body: Any = None) -> JSONResponse:
    """The HTTP answer for a gateway error: its status and Retry-After hint, with `body` (by
    default the spec's `Error` shape; the client APIs give their own)."""
    headers: dict[str, str] = {}
    if isinstance(exc, UpstreamError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(0, round(exc.retry_after)))
    return JSONResponse(exc.payload() if body is None else body, status_code=exc.status,
                        headers=headers)
