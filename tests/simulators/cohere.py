"""Cohere simulator: GET /v1/models (page_size/page_token, endpoint filter) and POST /v2/chat."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from starlette.responses import Response
from starlette.routing import Route

from tests.simulators.base import ProviderSimulator, RecordedRequest, Scenario, bearer_token
from tests.simulators.contracts import describe, first_violation
from tests.simulators.paging import PageTokens, effective_size, page

CHAT_SCHEMA = "#/paths/~1v2~1chat/post/requestBody/content/application~1json/schema"


def event(payload: dict[str, Any]) -> bytes:
    """One `event:` + `data:` frame named after the payload's type."""
    data = json.dumps(payload, separators=(",", ":"))
    return f"event: {payload['type']}\ndata: {data}\n\n".encode()


def chat_events(body: dict[str, Any]) -> list[bytes]:
    """A ChatResponse body as the v2 chat event stream, ending with [DONE]."""
    message = body["message"]
    empty = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    frames = [event({"type": "message-start", "id": body["id"], "delta": {"message": empty}})]
    if message.get("tool_plan"):
        frames.append(event({"type": "tool-plan-delta",
                             "delta": {"message": {"tool_plan": message["tool_plan"]}}}))
    texts = [c for c in message.get("content", []) if c.get("type") == "text"]
    for index, content in enumerate(texts):
        start = {"content": {"type": "text", "text": ""}}
        frames += [
            event({"type": "content-start", "index": index, "delta": {"message": start}}),
            event({"type": "content-delta", "index": index,
                   "delta": {"message": {"content": {"text": content["text"]}}}}),
            event({"type": "content-end", "index": index})]
    for index, call in enumerate(message.get("tool_calls", [])):
        opening = {**call, "function": {**call["function"], "arguments": ""}}
        arguments = {"function": {"arguments": call["function"]["arguments"]}}
        frames += [
            event({"type": "tool-call-start", "index": index,
                   "delta": {"message": {"tool_calls": opening}}}),
            event({"type": "tool-call-delta", "index": index,
                   "delta": {"message": {"tool_calls": arguments}}}),
            event({"type": "tool-call-end", "index": index})]
    frames.append(event({"type": "message-end", "delta": {
        "finish_reason": body["finish_reason"], "usage": body["usage"]}}))
    return [*frames, b"data: [DONE]\n\n"]


class CohereSimulator(ProviderSimulator):
    """api.cohere.com as recorded in tests/contracts/cohere."""

    provider_id = "cohere"
    contract_dir = "cohere"
    default_api_key = "co-test-0000000000000000"
    error_message_path = ("message",)
    default_page_size_cap = 2  # the contract's page holds two models and a next token
    scenarios: ClassVar[dict[str, Scenario]] = {
        "text": Scenario("chat_basic", "stream.txt"),
        "tools": Scenario("chat_tools", "stream-tool-calls.txt"),
        "followup": Scenario("chat_basic", "stream.txt"),
        "max_tokens": Scenario("chat_max_tokens"),
    }
    # chat_max_tokens stopped after 3 output tokens.
    max_tokens_limit = 3

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__(api_key)
        first_page = self.contract.response("list_models").body
        self.page_tokens = PageTokens({len(first_page["models"]): first_page["next_page_token"]})

    def routes(self) -> list[Route]:
        """Models list, model lookup and v2 chat."""
        return [
            Route("/v1/models", self.endpoint(self.list_models), methods=["GET"]),
            Route("/v1/models/{model:path}", self.endpoint(self.get_model), methods=["GET"]),
            Route("/v2/chat", self.endpoint(self.chat), methods=["POST"]),
        ]

    def check_auth(self, call: RecordedRequest) -> Response | None:
        """Bearer key; missing and wrong keys get their own 401 messages."""
        token = bearer_token(call)
        if token is None:
            return self.reply_example(call, "error_401_missing_key")
        return None if token == self.api_key else self.reply_example(call, "error_401_invalid_key")

    def render_stream(self, body: Any, call: RecordedRequest) -> list[bytes]:
        """The v2 chat events for a body without a transcript."""
        return chat_events(body)

    def list_models(self, call: RecordedRequest) -> Response:
        """One page; next_page_token whenever the page came back full."""
        example, params = self.contract.response("list_models"), call.params
        models = example.body["models"]
        if params.get("endpoint"):
            models = [m for m in models if params["endpoint"] in m["endpoints"]]
        size = effective_size(params.get("page_size"), 20, self.page_size_cap)
        offset: int | None = 0
        if params.get("page_token"):
            offset = self.page_tokens.offset(params["page_token"])
        if offset is None:
            return self.error(400, call, "invalid request: page_token is invalid")
        chunk, next_offset = page(models, offset, size)
        body: dict[str, Any] = {"models": chunk}
        if next_offset is not None:
            body["next_page_token"] = self.page_tokens.token(next_offset)
        return self.reply_json(call, body, 200, example.headers)

    def get_model(self, call: RecordedRequest) -> Response:
        """One model by name."""
        name = call.path_params["model"]
        example = self.contract.response("get_model")
        found = [m for m in self.contract.response("list_models").body["models"]
                 if m["name"] == name]
        if example.body["name"] == name:
            found = [example.body]
        if not found:
            return self.error(404, call)
        return self.reply_json(call, found[0], 200, example.headers)

    def chat(self, call: RecordedRequest) -> Response:
        """A ChatResponse, or its event stream."""
        if not isinstance(call.body, dict):
            return self.error(400, call, "invalid request: body must be a JSON object")
        violation = first_violation(
            self.contract.json_schema("openapi.trimmed.yaml", CHAT_SCHEMA), call.body)
        if violation is not None:
            return self.error(400, call, f"invalid request: {describe(violation)}")
        if self.unknown_model(call.body.get("model")):
            return self.error(404, call)
        name = self.pick_scenario(call, lambda: self.classify(call.json))
        return self.answer(call, name, stream=call.body.get("stream") is True)

    def classify(self, body: dict[str, Any]) -> str:
        """followup, tools, max_tokens or text, from the request's shape."""
        if any(m.get("role") == "tool" for m in body["messages"] if isinstance(m, dict)):
            return "followup"
        if body.get("tools"):
            return "tools"
        limit = body.get("max_tokens")
        if isinstance(limit, int) and limit <= self.max_tokens_limit:
            return "max_tokens"
        return "text"
