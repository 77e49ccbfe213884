"""Errors raised below the routes, answered in the shape the caller's API expects.

The client APIs answer every error in their SDK's own shape (see `gateway.routes.openai` and
`gateway.routes.anthropic`), so an SDK raises its matching exception. Middleware that refuses
a request before it reaches a route picks the same shape from the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.dialects import anthropic_front, openai_front
from gateway.errors import GatewayError
from gateway.responses import JSONResponse

_ANTHROPIC_PREFIX = "/v1/messages"
_OPENAI_PREFIX = "/v1/"


def error_body_for(path: str, exc: GatewayError) -> dict[str, Any]:
    """`exc` in Anthropic's shape under /v1/messages, OpenAI's under /v1/, else the native one."""
    if path == _ANTHROPIC_PREFIX or path.startswith(_ANTHROPIC_PREFIX + "/"):
        return anthropic_front.render_error(exc.status, exc.message, exc.code)
    if path.startswith(_OPENAI_PREFIX):
        return openai_front.render_error(exc.status, exc.message, exc.code)
    return exc.payload()


def error_response_for(path: str, exc: GatewayError,
                       headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The HTTP answer for `exc` on `path`, with `headers` added."""
    return JSONResponse(error_body_for(path, exc), status_code=exc.status,
                        headers=dict(headers or {}))
