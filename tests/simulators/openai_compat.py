"""The OpenAI chat-completions protocol, shared by OpenAI, Groq and the compat endpoints.

`OpenAICompatSimulator` is parameterised by path prefix, contract directory and transcripts;
the free functions are reused by the Ollama and Cloudflare OpenAI-compatible endpoints.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from starlette.responses import Response
from starlette.routing import Route

from tests.simulators.base import ProviderSimulator, RecordedRequest, Scenario, bearer_token
from tests.simulators.contracts import first_violation, split_frames

OPENAI_SCHEMA = ("../openai/openapi.trimmed.yaml",
                 "#/components/schemas/CreateChatCompletionRequest")


def has_tool_results(body: dict[str, Any]) -> bool:
    """Whether the conversation already carries a tool result (a follow-up turn)."""
    return any(isinstance(m, dict) and m.get("role") == "tool" for m in body.get("messages", []))


def requested_max_tokens(body: dict[str, Any]) -> int | None:
    """The output-token limit, under either of its names."""
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) else None


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether a streamed answer should end with a usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def classify_chat(body: dict[str, Any], length_limit: int | None) -> str:
    """followup, tools, length (max tokens too small for the answer) or text."""
    if has_tool_results(body):
        return "followup"
    if body.get("tools"):
        return "tools"
    limit = requested_max_tokens(body)
    if length_limit is not None and limit is not None and limit <= length_limit:
        return "length"
    return "text"


def sse(payload: Any) -> bytes:
    """One data-only SSE frame."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def drop_usage_frames(frames: list[bytes]) -> list[bytes]:
    """Remove the trailing `choices: []` usage chunk (sent only with include_usage)."""
    return [f for f in frames if b'"choices":[]' not in f]


def usage_filtered(transcript: bytes, body: dict[str, Any]) -> list[bytes]:
    """An OpenAI-style transcript's frames, minus the usage chunk unless it was asked for."""
    frames = split_frames(transcript)
    return frames if wants_usage(body) else drop_usage_frames(frames)


def render_chunks(body: dict[str, Any], include_usage: bool) -> list[bytes]:
    """Stream a chat.completion body as chat.completion.chunk frames, ending with [DONE]."""
    head: dict[str, Any] = {
        k: body[k] for k in ("id", "created", "model", "system_fingerprint") if k in body}
    head["object"] = "chat.completion.chunk"
    choice = body["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        """One chunk frame carrying `delta`."""
        return sse({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish}]})

    frames = [chunk({"role": "assistant", "content": ""})]
    if message.get("content"):
        frames.append(chunk({"content": message["content"]}))
    for index, call in enumerate(message.get("tool_calls") or []):
        frames.append(chunk({"tool_calls": [{"index": index, **call}]}))
    frames.append(chunk({}, choice["finish_reason"]))
    if include_usage and "usage" in body:
        frames.append(sse({**head, "choices": [], "usage": body["usage"]}))
    return [*frames, sse("[DONE]")]


class OpenAICompatSimulator(ProviderSimulator):
    """OpenAI-style models and chat-completions endpoints under a path prefix."""

    prefix: ClassVar[str] = "/v1"
    stream_content_type = "text/event-stream; charset=utf-8"
    # scenario -> (transcript when include_usage, transcript without it or None to filter)
    transcripts: ClassVar[dict[str, tuple[str, str | None]]] = {}
    length_limit: ClassVar[int | None] = None
    unsupported_params: ClassVar[tuple[str, ...]] = ()
    extension_schema: ClassVar[tuple[str, str] | None] = None

    def routes(self) -> list[Route]:
        """Models list, model lookup and chat completions."""
        return [
            Route(f"{self.prefix}/models", self.endpoint(self.list_models), methods=["GET"]),
            Route(f"{self.prefix}/models/{{model:path}}", self.endpoint(self.get_model),
                  methods=["GET"]),
            Route(f"{self.prefix}/chat/completions", self.endpoint(self.chat), methods=["POST"]),
        ]

    def check_auth(self, call: RecordedRequest) -> Response | None:
        """Bearer key, else 401 invalid_api_key."""
        return None if bearer_token(call) == self.api_key else self.error(401, call)

    def render_stream(self, body: Any, call: RecordedRequest) -> list[bytes]:
        """OpenAI chunks built from the scenario's body."""
        return render_chunks(body, wants_usage(call.json))

    def list_models(self, call: RecordedRequest) -> Response:
        """The contract model list (OpenAI does not page it)."""
        example = self.contract.response("list_models")
        return self.reply_json(call, example.body, 200, example.headers)

    def get_model(self, call: RecordedRequest) -> Response:
        """One model: from the list, or the contract's retrieve example."""
        model = call.path_params["model"]
        example = self.contract.response("list_models")
        found = [m for m in example.body["data"] if m["id"] == model]
        retrieve = self.contract.responses.get("retrieve_model")
        if retrieve is not None and retrieve.body["id"] == model:
            found = [retrieve.body]
        if not found:
            return self.error(404, call)
        return self.reply_json(call, found[0], 200, example.headers)

    def validate(self, body: dict[str, Any]) -> tuple[str, str] | None:
        """The first reason (parameter, message) the provider would reject this body for."""
        for name in self.unsupported_params:
            if name in body:
                return name, f"property '{name}' is unsupported"
        core = {k: v for k, v in body.items() if k not in self._extension_keys()}
        problem = first_violation(self.contract.json_schema(*OPENAI_SCHEMA), core)
        if problem is None and self.extension_schema is not None:
            problem = first_violation(self.contract.json_schema(*self.extension_schema), body)
        return problem

    def _extension_keys(self) -> set[str]:
        if self.extension_schema is None:
            return set()
        file_name, ref = self.extension_schema
        doc = self.contract.document(file_name)
        return set(doc["$defs"][ref.rsplit("/", 1)[-1]].get("properties", {}))

    def chat(self, call: RecordedRequest) -> Response:
        """A chat completion: contract body, or transcript when streaming."""
        if not isinstance(call.body, dict):
            return self.error(400, call, "We could not parse the JSON body of your request.")
        problem = self.validate(call.body)
        if problem is not None:
            return self.invalid_request(call, *problem)
        if self.unknown_model(call.body.get("model")):
            return self.error(404, call)
        name = self.pick_scenario(call, lambda: classify_chat(call.json, self.length_limit))
        if not call.body.get("stream"):
            return self.answer(call, name, stream=False)
        return self.reply_stream(call, self.chat_frames(name, call), self.stream_headers(name))

    def invalid_request(self, call: RecordedRequest, param: str, message: str) -> Response:
        """400 invalid_request_error naming the offending parameter where the shape has one."""
        status, body, headers = self.error_parts(400, call, message)
        if "param" in body["error"]:
            body["error"].update(param=param or None, code=None)
        return self.reply_json(call, body, status, headers)

    def stream_headers(self, name: str) -> dict[str, str]:
        """The scenario's contract headers with the SSE content type."""
        return {**self.scenario_body(name)[1], "content-type": self.stream_content_type}

    def chat_frames(self, name: str, call: RecordedRequest) -> list[bytes]:
        """The transcript variant matching include_usage, or rendered chunks."""
        usage = wants_usage(call.json)
        key = "text" if name == "followup" else name
        if self.transcript is not None or key not in self.transcripts:
            return self.scenario_frames(name, call)
        with_usage, without_usage = self.transcripts[key]
        if usage or without_usage is not None:
            return self.scenario_frames(name, call, with_usage if usage else without_usage)
        return usage_filtered(self.contract.transcript(with_usage), call.json)


def default_scenarios(length_body: str | None = None) -> dict[str, Scenario]:
    """The scenario table most OpenAI-style contracts share."""
    table = {
        "text": Scenario("chat_basic"),
        "tools": Scenario("chat_tools"),
        "followup": Scenario("chat_basic"),
    }
    if length_body is not None:
        table["length"] = Scenario(length_body)
    return table
