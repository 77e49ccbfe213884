"""OpenAI's API over every provider: `GET /v1/models` and `POST /v1/chat/completions`.

Models are named `provider/model`. Every error is answered in OpenAI's error shape, so the
OpenAI SDKs raise the exception class that matches the status.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.dialects import openai_front
from gateway.errors import GatewayError
from gateway.responses import JSONResponse
from gateway.routes import dispatch
from gateway.routes.llms import list_each, read_json
from gateway.routes.streaming import (
    EventStreamResponse,
    client_api,
    field_of,
)


def error_body(exc: GatewayError) -> dict[str, Any]:
    """A gateway error in OpenAI's shape, naming the offending parameter when known."""
    return openai_front.render_error(exc.status, exc.message, exc.code, param=field_of(exc))


@client_api(error_body)
async def list_models(request: Request) -> Response:
    """Every configured provider's models as one OpenAI list; failing providers are left out."""
    entries = await list_each(request.app.state.gateway)
    data = [
        {"id": f"{entry['provider']}/{model['id']}", "object": "model",
         "created": model.get("created", 0), "owned_by": entry["provider"]}
        for entry in entries if "error" not in entry
        for model in entry["models"]
    ]
    return JSONResponse({"object": "list", "data": data})


@client_api(error_body)
async def chat_completions(request: Request) -> Response:
    """A chat completion from the provider named in `model`, whole or streamed."""
    body = await read_json(request)
    chat = openai_front.parse_request(body)
    asked_for = chat.model
    created = int(time.time())
    if chat.stream:
        include_usage = openai_front.stream_include_usage(body)
        streamed = await dispatch.stream(request, chat, requested_model=asked_for)
        assert streamed.batches is not None
        encoder = openai_front.StreamEncoder(
            id=openai_front.new_completion_id(), model=asked_for, created=created,
            include_usage=include_usage)
        return EventStreamResponse(streamed.batches, encoder, headers=dispatch.headers(streamed))
    routed = await dispatch.complete(request, chat, requested_model=asked_for)
    routed.answer.model = asked_for
    return JSONResponse(openai_front.render_response(routed.answer, created=created),
                        headers=dispatch.headers(routed))
