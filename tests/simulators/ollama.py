"""Ollama simulator: native /api/* (NDJSON streams by default) and OpenAI-compatible /v1/*.

No authentication. Unknown models answer 404 "not found, try pulling it first", as a local
server does for a model that was never pulled.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.simulators import openai_compat
from tests.simulators.base import ProviderSimulator, RecordedRequest, Scenario
from tests.simulators.contracts import (
    NDJSON_FRAME_END,
    SSE_FRAME_END,
    describe,
    first_violation,
    split_frames,
)

SCHEMA = "openapi.trimmed.yaml"
COMPAT_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


def ndjson(payload: dict[str, Any]) -> bytes:
    """One NDJSON line."""
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


class OllamaSimulator(ProviderSimulator):
    """A local Ollama server as recorded in tests/contracts/ollama."""

    provider_id = "ollama"
    contract_dir = "ollama"
    default_api_key = ""
    stream_content_type = "application/x-ndjson"
    frame_end = NDJSON_FRAME_END
    error_message_path = ("error",)
    scenarios: ClassVar[dict[str, Scenario]] = {
        "text": Scenario("chat_no_stream", "stream-chat.ndjson.txt"),
        "tools": Scenario("chat_tools"),
        "followup": Scenario("chat_no_stream", "stream-chat.ndjson.txt"),
        "generate": Scenario("generate_no_stream", "stream-generate.ndjson.txt"),
        "generate_length": Scenario("generate_length"),
        "compat": Scenario("openai_compat_chat", "stream-openai-compat.txt"),
    }
    # generate_length stopped after 5 tokens.
    num_predict_limit = 5

    def routes(self) -> list[Route]:
        """Native and OpenAI-compatible endpoints."""
        return [
            Route("/", self.endpoint(self.root), methods=["GET", "HEAD"]),
            Route("/api/tags", self.endpoint(self.tags), methods=["GET"]),
            Route("/api/version", self.endpoint(self.version), methods=["GET"]),
            Route("/api/chat", self.endpoint(self.chat), methods=["POST"]),
            Route("/api/generate", self.endpoint(self.generate), methods=["POST"]),
            Route("/v1/models", self.endpoint(self.compat_models), methods=["GET"]),
            Route("/v1/chat/completions", self.endpoint(self.compat_chat), methods=["POST"]),
        ]

    def check_auth(self, call: RecordedRequest) -> Response | None:
        """A local server takes no credentials."""
        return None

    def is_compat(self, call: RecordedRequest) -> bool:
        """Whether the call went to the OpenAI-compatible surface."""
        return call.path.startswith("/v1/")

    def error_prefix(self, call: RecordedRequest) -> str:
        """OpenAI-shaped errors on /v1, plain {error: str} on /api."""
        return "openai_compat_error" if self.is_compat(call) else "error"

    def message_path(self, call: RecordedRequest) -> tuple[str | int, ...]:
        """`error.message` on /v1, `error` on /api."""
        return ("error", "message") if self.is_compat(call) else ("error",)

    def adapt_error(self, body: Any, status: int) -> Any:
        """OpenAI-compat errors name their type after the status."""
        if isinstance(body.get("error"), dict):
            body["error"]["type"] = COMPAT_TYPES.get(status, "api_error")
        return body

    def frame_end_for(self, file_name: str) -> re.Pattern[bytes]:
        """NDJSON transcripts split at newlines, the compat one at blank lines."""
        return NDJSON_FRAME_END if file_name.endswith(".ndjson.txt") else SSE_FRAME_END

    def midstream_error(self, call: RecordedRequest) -> bytes | None:
        """The `{"error": ...}` line of the contract's failed stream; compat streams are cut."""
        if self.is_compat(call):
            return None
        return split_frames(self.contract.transcript("stream-error.ndjson.txt"),
                            NDJSON_FRAME_END)[-1]

    def render_stream(self, body: Any, call: RecordedRequest) -> list[bytes]:
        """The answer in one NDJSON line, then the done:true line with the metrics."""
        head = {"model": body["model"], "created_at": body["created_at"]}
        if "message" in body:
            first = {**head, "message": body["message"], "done": False}
            last = {**body, "message": {"role": "assistant", "content": ""}}
        else:
            first = {**head, "response": body["response"], "done": False}
            last = {**body, "response": ""}
        return [ndjson(first), ndjson(last)]

    def model_problem(self, call: RecordedRequest) -> Response | None:
        """400 without a model, 404 for a model that was never pulled."""
        model = call.json.get("model")
        if not model:
            return self.error(400, call, "model is required")
        name = model if ":" in model else f"{model}:latest"
        pulled = [m["name"] for m in self.contract.response("tags").body["models"]]
        if name not in pulled or self.unknown_model(model):
            return self.error(404, call, f'model "{model}" not found, try pulling it first')
        return None

    def root(self, call: RecordedRequest) -> Response:
        """The liveness text a local server answers on /."""
        return PlainTextResponse("Ollama is running")

    def tags(self, call: RecordedRequest) -> Response:
        """The pulled models."""
        return self.reply_example(call, "tags")

    def version(self, call: RecordedRequest) -> Response:
        """The server version."""
        return self.reply_example(call, "version")

    def compat_models(self, call: RecordedRequest) -> Response:
        """The pulled models in OpenAI's list shape."""
        return self.reply_example(call, "openai_compat_models")

    def native(self, call: RecordedRequest, ref: str, classify: str) -> Response:
        """Shared /api/chat and /api/generate handling: validate, then answer."""
        if not isinstance(call.body, dict):
            return self.error(400, call, "invalid request body")
        violation = first_violation(self.contract.json_schema(SCHEMA, ref), call.body)
        if violation is not None:
            return self.error(400, call, describe(violation))
        problem = self.model_problem(call)
        if problem is not None:
            return problem
        name = self.pick_scenario(call, lambda: classify)
        return self.answer(call, name, stream=call.body.get("stream", True) is not False)

    def chat(self, call: RecordedRequest) -> Response:
        """/api/chat: streams NDJSON unless "stream": false."""
        body = call.json
        messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
        name = "text"
        if any(m.get("role") == "tool" for m in messages):
            name = "followup"
        elif body.get("tools"):
            name = "tools"
        return self.native(call, "#/components/schemas/ChatRequest", name)

    def generate(self, call: RecordedRequest) -> Response:
        """/api/generate: streams NDJSON unless "stream": false."""
        limit = (call.json.get("options") or {}).get("num_predict")
        short = isinstance(limit, int) and 0 < limit <= self.num_predict_limit
        name = "generate_length" if short else "generate"
        return self.native(call, "#/components/schemas/GenerateRequest", name)

    def compat_chat(self, call: RecordedRequest) -> Response:
        """/v1/chat/completions in OpenAI's shape (no tool-call answers in the contract)."""
        if not isinstance(call.body, dict):
            return self.error(400, call, "invalid request body")
        violation = first_violation(
            self.contract.json_schema(*openai_compat.OPENAI_SCHEMA), call.body)
        if violation is not None:
            return self.error(400, call, describe(violation))
        problem = self.model_problem(call)
        if problem is not None:
            return problem
        if call.body.get("stream") is not True:
            return self.answer(call, "compat", stream=False)
        transcript = self.contract.transcript(self.transcript or "stream-openai-compat.txt")
        frames = openai_compat.usage_filtered(transcript, call.body)
        headers = {**self.scenario_body("compat")[1], "content-type": "text/event-stream"}
        return self.reply_stream(call, frames, headers)
