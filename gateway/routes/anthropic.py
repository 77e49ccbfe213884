"""Anthropic's messages API over every provider: `POST /v1/messages`.

Models are named `provider/model`. The SDK's `x-api-key` and `anthropic-version` headers are
accepted and ignored: the gateway's own auth is separate, and the upstream gets the gateway's
configured credentials. Every error is answered in Anthropic's error shape.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.dialects import anthropic_front
from gateway.errors import GatewayError
from gateway.responses import JSONResponse
from gateway.routes import dispatch
from gateway.routes.llms import read_json
from gateway.routes.streaming import EventStreamResponse, client_api


def error_body(exc: GatewayError) -> dict[str, Any]:
    """A gateway error in Anthropic's shape."""
    return anthropic_front.render_error(exc.status, exc.message, exc.code)


@client_api(error_body)
async def messages(request: Request) -> Response:
    """A message from the provider named in `model`, whole or as Anthropic's event stream."""
    chat = anthropic_front.parse_request(await read_json(request))
    asked_for = chat.model
    if chat.stream:
        streamed = await dispatch.stream(request, chat, requested_model=asked_for)
        assert streamed.batches is not None
        encoder = anthropic_front.StreamEncoder(id=anthropic_front.new_message_id(),
                                                model=asked_for)
        return EventStreamResponse(streamed.batches, encoder, headers=dispatch.headers(streamed))
    routed = await dispatch.complete(request, chat, requested_model=asked_for)
    routed.answer.model = asked_for
    return JSONResponse(anthropic_front.render_response(routed.answer),
                        headers=dispatch.headers(routed))
