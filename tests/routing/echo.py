"""An OpenAI-compatible upstream whose answer is the request it received.

The answer's text is the request body as canonical JSON (without the stream flags), so a test
can tell exactly which request an answer — fresh or cached — was produced for.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

IGNORED = ("stream", "stream_options")


def echo_text(body: dict[str, Any]) -> str:
    """The text the echo server answers `body` with."""
    return json.dumps({k: v for k, v in body.items() if k not in IGNORED}, sort_keys=True)


class EchoUpstream:
    """The app and a count of the chat calls it answered."""

    def __init__(self) -> None:
        self.calls = 0
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
        ])

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": "echo-1", "object": "model", "owned_by": "echo", "created": 0}]})

    async def chat(self, request: Request) -> Response:
        self.calls += 1
        body = await request.json()
        text = echo_text(body)
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not body.get("stream"):
            return JSONResponse({
                "id": f"echo-{self.calls}", "object": "chat.completion", "created": 0,
                "model": body["model"], "usage": usage,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}]})

        def chunk(delta: dict[str, Any], finish: str | None = None,
                  with_usage: bool = False) -> bytes:
            payload: dict[str, Any] = {
                "id": f"echo-{self.calls}", "object": "chat.completion.chunk", "created": 0,
                "model": body["model"],
                "choices": [] if with_usage else [
                    {"index": 0, "delta": delta, "finish_reason": finish}]}
            if with_usage:
                payload["usage"] = usage
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        half = len(text) // 2
        frames = [chunk({"role": "assistant", "content": text[:half]}),
                  chunk({"content": text[half:]}), chunk({}, "stop"),
                  chunk({}, with_usage=True), b"data: [DONE]\n\n"]
        return StreamingResponse(iter(frames), media_type="text/event-stream")
