"""Anthropic simulator: GET /v1/models (after_id/before_id paging) and POST /v1/messages."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from starlette.responses import Response
from starlette.routing import Route

from tests.simulators.base import ProviderSimulator, RecordedRequest, Scenario, bearer_token
from tests.simulators.contracts import CONTRACTS_DIR, first_violation, split_frames
from tests.simulators.paging import effective_size

ROLES = ("user", "assistant")
# The error type Anthropic uses for each status (quirks.json status_codes).
ERROR_TYPES: dict[str, str] = json.loads((CONTRACTS_DIR / "quirks.json").read_text())[
    "anthropic"]["status_codes"]


def event(payload: dict[str, Any]) -> bytes:
    """One `event:` + `data:` SSE frame, named after the payload's type."""
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def block_events(index: int, block: dict[str, Any]) -> list[bytes]:
    """content_block_start / _delta / _stop for one content block of a Message."""
    kind = block["type"]
    start: dict[str, Any]
    if kind == "text":
        start, deltas = {"type": "text", "text": ""}, [
            {"type": "text_delta", "text": block["text"]}]
    elif kind == "thinking":
        start, deltas = {"type": "thinking", "thinking": "", "signature": ""}, [
            {"type": "thinking_delta", "thinking": block["thinking"]},
            {"type": "signature_delta", "signature": block["signature"]}]
    else:
        start = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
    frames = [event({"type": "content_block_start", "index": index, "content_block": start})]
    frames += [event({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
    return [*frames, event({"type": "content_block_stop", "index": index})]


def message_events(message: dict[str, Any]) -> list[bytes]:
    """A Message body as the event sequence the Messages API streams."""
    usage = dict(message["usage"])
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}
    frames = [event({"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        frames += block_events(index, block)
    frames.append(event({"type": "message_delta",
                         "delta": {"stop_reason": message["stop_reason"],
                                   "stop_sequence": message["stop_sequence"]},
                         "usage": {"output_tokens": usage["output_tokens"]}}))
    return [*frames, event({"type": "message_stop"})]


class AnthropicSimulator(ProviderSimulator):
    """api.anthropic.com as recorded in tests/contracts/anthropic."""

    provider_id = "anthropic"
    contract_dir = "anthropic"
    default_api_key = "sk-ant-api03-test"
    stream_content_type = "text/event-stream; charset=utf-8"
    default_page_size_cap = 2  # the contract pages hold two models each
    scenarios: ClassVar[dict[str, Scenario]] = {
        "text": Scenario("messages_basic", "stream-recorded-padded.txt"),
        "hello": Scenario(None, "stream.txt", replays=("messages_stream",)),
        "tools": Scenario("messages_tools", "stream-tool-use.txt"),
        "followup": Scenario("messages_basic", "stream-recorded-padded.txt"),
        "thinking": Scenario("messages_extended_thinking"),
        "max_tokens": Scenario("messages_max_tokens"),
    }
    # messages_max_tokens produced 5 output tokens: a smaller budget truncates the answer.
    max_tokens_limit = 5

    def routes(self) -> list[Route]:
        """Models list, model lookup and messages."""
        return [
            Route("/v1/models", self.endpoint(self.list_models), methods=["GET"]),
            Route("/v1/models/{model:path}", self.endpoint(self.get_model), methods=["GET"]),
            Route("/v1/messages", self.endpoint(self.messages), methods=["POST"]),
        ]

    def check_auth(self, call: RecordedRequest) -> Response | None:
        """The key (x-api-key, or Bearer as SDK 2.x sends it) and anthropic-version."""
        if self.api_key not in (call.headers.get("x-api-key"), bearer_token(call)):
            return self.error(401, call)
        if not call.headers.get("anthropic-version"):
            return self.reply_example(call, "error_400_missing_version_header")
        return None

    def adapt_error(self, body: Any, status: int) -> Any:
        """Pick the error type Anthropic uses for `status`."""
        body["error"]["type"] = ERROR_TYPES.get(str(status), "api_error")
        return body

    def midstream_error(self, call: RecordedRequest) -> bytes | None:
        """The `event: error` frame of the contract's failed stream."""
        return split_frames(self.contract.transcript("stream-error-midstream.txt"))[-1]

    def render_stream(self, body: Any, call: RecordedRequest) -> list[bytes]:
        """The Message streamed as message_start ... message_stop."""
        return message_events(body)

    def all_models(self) -> list[dict[str, Any]]:
        """The contract's model pages joined in order."""
        pages = ("list_models_page1", "list_models_page2")
        return [m for name in pages for m in self.contract.response(name).body["data"]]

    def list_models(self, call: RecordedRequest) -> Response:
        """One page: `limit` models after `after_id` or before `before_id`."""
        models, params = self.all_models(), call.params
        ids = [m["id"] for m in models]
        size = effective_size(params.get("limit"), 20, self.page_size_cap)
        cursor = params.get("after_id") or params.get("before_id")
        if cursor is not None and cursor not in ids:
            return self.error(400, call, f"Invalid cursor: {cursor}")
        if "after_id" in params:
            start = ids.index(params["after_id"]) + 1
            chunk, has_more = models[start:start + size], start + size < len(models)
        elif "before_id" in params:
            end = ids.index(params["before_id"])
            chunk, has_more = models[max(0, end - size):end], end - size > 0
        else:
            chunk, has_more = models[:size], size < len(models)
        body = {"data": chunk, "has_more": has_more,
                "first_id": chunk[0]["id"] if chunk else None,
                "last_id": chunk[-1]["id"] if chunk else None}
        return self.reply_json(call, body, 200, self.contract.response("list_models_page1").headers)

    def get_model(self, call: RecordedRequest) -> Response:
        """One ModelInfo by id."""
        found = [m for m in self.all_models() if m["id"] == call.path_params["model"]]
        if not found:
            return self.error(404, call, f"model: {call.path_params['model']}")
        return self.reply_json(call, found[0], 200,
                               self.contract.response("list_models_page1").headers)

    def validate(self, body: Any) -> str | None:
        """Why the Messages API would answer 400 invalid_request_error, or None."""
        if not isinstance(body, dict):
            return "There was an issue with your request body: it must be a JSON object."
        violation = first_violation(
            self.contract.json_schema("schema.json", "#/$defs/MessageCreateParamsBase"), body)
        if violation is not None:
            where, message = violation
            if message.endswith("is a required property"):
                return f"{message.split(chr(39))[1]}: Field required"
            return f"{where}: {message}" if where else message
        if not body["messages"]:
            return "messages: at least one message is required"
        for index, message in enumerate(body["messages"]):
            if message["role"] not in ROLES:
                return (f"messages.{index}.role: Input should be 'user' or 'assistant'; use the "
                        "top-level `system` parameter for a system prompt")
        return None

    def messages(self, call: RecordedRequest) -> Response:
        """A Message, or its event stream."""
        problem = self.validate(call.body)
        if problem is not None:
            return self.error(400, call, problem)
        if self.unknown_model(call.body.get("model")):
            return self.error(404, call, f"model: {call.body['model']}")
        name = self.pick_scenario(call, lambda: self.classify(call.json))
        return self.answer(call, name, stream=call.body.get("stream") is True)

    def classify(self, body: dict[str, Any]) -> str:
        """followup, tools, thinking, max_tokens or text, from the request's shape."""
        blocks = [b for m in body["messages"] if isinstance(m.get("content"), list)
                  for b in m["content"]]
        if any(b.get("type") == "tool_result" for b in blocks):
            return "followup"
        if body.get("tools"):
            return "tools"
        if (body.get("thinking") or {}).get("type") == "enabled":
            return "thinking"
        if body["max_tokens"] <= self.max_tokens_limit:
            return "max_tokens"
        return "text"
