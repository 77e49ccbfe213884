"""Cloudflare Workers AI simulator, mounted under /client/v4/accounts/<account_id>.

GET .../ai/models/search (task filter, page/per_page), POST .../ai/run/<model with slashes>
(v4 envelope; native `{response,p}` SSE when streaming) and the OpenAI-compatible
POST .../ai/v1/chat/completions (not enveloped).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from starlette.responses import Response
from starlette.routing import Route

from tests.simulators import openai_compat
from tests.simulators.base import ProviderSimulator, RecordedRequest, Scenario, bearer_token
from tests.simulators.contracts import describe, first_violation
from tests.simulators.paging import effective_size

ACCOUNT_ROOT = "/client/v4/accounts/{account}"
MODEL_SCHEMA = "model-schema.llama-3.3-70b-instruct-fp8-fast.json"
# Newer backends answer /ai/run streams with OpenAI-style chunks (see the transcript's model).
CHUNK_STYLE_MODELS = ("@cf/google/gemma-4-26b-a4b-it",)
INVALID_INPUT_CODE = 5004  # quirks.json: 400 "5004 invalid data"


def native_frame(payload: Any) -> bytes:
    """One native Workers AI SSE frame."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


class CloudflareSimulator(ProviderSimulator):
    """api.cloudflare.com Workers AI as recorded in tests/contracts/cloudflare."""

    provider_id = "cloudflare"
    contract_dir = "cloudflare"
    default_api_key = "cf-test-token-0000000000000000"
    default_account_id = "023e105f4ecef8ad9ca31a8372d0c353"
    error_message_path = ("errors", 0, "message")
    scenarios: ClassVar[dict[str, Scenario]] = {
        "text": Scenario("run_messages", "stream.txt"),
        "tools": Scenario("run_tools"),
        "followup": Scenario("run_messages", "stream.txt"),
        "chunk_style": Scenario("run_messages", "stream-native-chunk-style.txt"),
        "compat": Scenario("openai_compat_chat", "stream-openai-compat.txt"),
    }

    def __init__(self, api_key: str | None = None, account_id: str | None = None) -> None:
        self.account_id = account_id or self.default_account_id
        super().__init__(api_key)

    def base_path(self) -> str:
        """The account root the gateway uses as its base URL."""
        return ACCOUNT_ROOT.format(account=self.account_id)

    def routes(self) -> list[Route]:
        """Models search, native run and the OpenAI-compatible chat endpoint."""
        return [
            Route(f"{ACCOUNT_ROOT}/ai/models/search", self.endpoint(self.search_models),
                  methods=["GET"]),
            Route(f"{ACCOUNT_ROOT}/ai/run/{{model:path}}", self.endpoint(self.run),
                  methods=["POST"]),
            Route(f"{ACCOUNT_ROOT}/ai/v1/chat/completions", self.endpoint(self.compat_chat),
                  methods=["POST"]),
        ]

    def check_auth(self, call: RecordedRequest) -> Response | None:
        """An unknown account does not route; then the Bearer token must match."""
        account = call.path_params.get("account")
        if account is not None and account != self.account_id:
            # Constructed: Cloudflare's "could not route" envelope for a foreign account id.
            status, body, headers = self.error_parts(404, call)
            body["errors"] = [
                {"code": 7003, "message": f"Could not route to {call.path}, perhaps your "
                                          "object identifier is invalid?"},
                {"code": 7000, "message": "No route for that URI"}]
            return self.reply_json(call, body, status, headers)
        return None if bearer_token(call) == self.api_key else self.error(401, call)

    def invalid(self, call: RecordedRequest, message: str) -> Response:
        """400 envelope for input the model's schema rejects."""
        status, body, headers = self.error_parts(400, call, message)
        body["errors"][0]["code"] = INVALID_INPUT_CODE
        return self.reply_json(call, body, status, headers)

    def render_stream(self, body: Any, call: RecordedRequest) -> list[bytes]:
        """Native frames for an enveloped body: the answer, the usage frame, [DONE]."""
        result = body["result"]
        answer: dict[str, Any] = {"response": result.get("response") or ""}
        if result.get("tool_calls"):
            answer["tool_calls"] = result["tool_calls"]
        usage = {"response": "", "usage": result["usage"]}
        return [native_frame(answer), native_frame(usage), native_frame("[DONE]")]

    def search_models(self, call: RecordedRequest) -> Response:
        """Models filtered by task, paged with page/per_page and reported in result_info."""
        example, params = self.contract.response("models_search"), call.params
        models = example.body["result"]
        if params.get("task"):
            models = [m for m in models if m["task"]["name"].lower() == params["task"].lower()]
        size = effective_size(params.get("per_page"), 20, self.page_size_cap)
        number = max(1, int(params["page"])) if params.get("page", "").isdigit() else 1
        chunk = models[(number - 1) * size:number * size]
        body = {**example.body, "result": chunk, "result_info": {
            "page": number, "per_page": size, "count": len(chunk), "total_count": len(models)}}
        return self.reply_json(call, body, 200, example.headers)

    def run(self, call: RecordedRequest) -> Response:
        """Native inference: enveloped JSON, or native SSE when `stream` is true."""
        model = call.path_params["model"]
        if self.unknown_model(model):
            return self.error(400, call)
        if not isinstance(call.body, dict):
            return self.invalid(call, "AiError: Bad input: body must be a JSON object")
        schema = self.contract.json_schema(MODEL_SCHEMA, "#/schema/input")
        violation = first_violation(schema, call.body)
        if violation is not None:
            return self.invalid(call, f"AiError: Bad input: {describe(violation)}")
        name = self.pick_scenario(call, lambda: self.classify(call.json))
        stream = call.body.get("stream") is True
        if stream and name == "text" and model in CHUNK_STYLE_MODELS:
            name = "chunk_style"
        return self.answer(call, name, stream=stream)

    def classify(self, body: dict[str, Any]) -> str:
        """followup, tools or text, from the request's shape."""
        if any(m.get("role") == "tool" for m in body.get("messages", []) if isinstance(m, dict)):
            return "followup"
        return "tools" if body.get("tools") else "text"

    def compat_chat(self, call: RecordedRequest) -> Response:
        """OpenAI-compatible chat completions (no tool-call answers in the contract)."""
        if not isinstance(call.body, dict):
            return self.invalid(call, "body must be a JSON object")
        violation = first_violation(
            self.contract.json_schema(*openai_compat.OPENAI_SCHEMA), call.body)
        if violation is not None:
            return self.invalid(call, describe(violation))
        if self.unknown_model(call.body.get("model")):
            return self.error(400, call)
        if call.body.get("stream") is not True:
            return self.answer(call, "compat", stream=False)
        transcript = self.contract.transcript(self.transcript or "stream-openai-compat.txt")
        frames = openai_compat.usage_filtered(transcript, call.body)
        headers = {**self.scenario_body("compat")[1], "content-type": self.stream_content_type}
        return self.reply_stream(call, frames, headers)
