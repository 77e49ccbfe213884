"""Google Gemini simulator (gateway provider id `google`, contract directory `gemini`).

GET /v1beta/models pages with pageSize/pageToken; POST /v1beta/models/{model}:generateContent
and :streamGenerateContent (CRLF SSE with ?alt=sse, an incrementally written JSON array
without it). The key comes as ?key= or x-goog-api-key; a wrong key is 400 API_KEY_INVALID.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from starlette.responses import Response
from starlette.routing import Route

from tests.simulators.base import ProviderSimulator, RecordedRequest, Scenario
from tests.simulators.contracts import (
    CONTRACTS_DIR,
    JSON_ARRAY_FRAME_END,
    describe,
    first_violation,
)
from tests.simulators.paging import PageTokens, effective_size

ROLES = ("user", "model")
# google.rpc status names per HTTP status (quirks.json: "INVALID_ARGUMENT (also ...)").
RPC_STATUS: dict[str, str] = {
    code: text.split()[0] for code, text in json.loads(
        (CONTRACTS_DIR / "quirks.json").read_text())["gemini"]["status_codes"].items()}
ARRAY_TRANSCRIPT = "stream-json-array-no-alt.txt"


def sse_frame(body: Any) -> bytes:
    """One Gemini SSE frame (CRLF framing)."""
    return f"data: {json.dumps(body)}\r\n\r\n".encode()


class GoogleSimulator(ProviderSimulator):
    """generativelanguage.googleapis.com as recorded in tests/contracts/gemini."""

    provider_id = "google"
    contract_dir = "gemini"
    default_api_key = "AIzaSyTEST0000000000000000000000000000"
    default_page_size_cap = 3  # the contract's first page holds three models
    scenarios: ClassVar[dict[str, Scenario]] = {
        "text": Scenario("generate_basic", "stream.txt"),
        "tools": Scenario("generate_function_call"),
        "followup": Scenario("generate_basic", "stream.txt"),
        "max_tokens": Scenario("generate_max_tokens", replays=("generate_multiturn_safety",)),
        "blocked": Scenario("generate_prompt_blocked"),
    }
    # generate_max_tokens stopped after 3 candidate tokens.
    max_tokens_limit = 3

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__(api_key)
        first_page = self.contract.response("list_models_page1").body
        self.page_tokens = PageTokens({len(first_page["models"]): first_page["nextPageToken"]})

    def routes(self) -> list[Route]:
        """Models list, model lookup and the two generate methods."""
        return [
            Route("/v1beta/models", self.endpoint(self.list_models), methods=["GET"]),
            Route("/v1beta/models/{target:path}", self.endpoint(self.get_model), methods=["GET"]),
            Route("/v1beta/models/{target:path}", self.endpoint(self.generate), methods=["POST"]),
        ]

    def check_auth(self, call: RecordedRequest) -> Response | None:
        """?key= or x-goog-api-key; missing is 403, wrong is 400 API_KEY_INVALID."""
        key = call.params.get("key") or call.headers.get("x-goog-api-key")
        if not key:
            return self.error(403, call)
        return None if key == self.api_key else self.error(400, call)

    def error_parts(self, status: int, call: RecordedRequest,
                    message: str | None = None) -> tuple[int, Any, dict[str, str]]:
        """google.rpc.Status errors; wrapped in an array on a non-SSE stream."""
        status, body, headers = super().error_parts(status, call)
        if message is not None:
            body = {"error": {"code": status, "message": message,
                              "status": RPC_STATUS.get(str(status), "UNKNOWN")}}
        if self.is_array_stream(call):
            body = [body]
        return status, body, headers

    def adapt_error(self, body: Any, status: int) -> Any:
        """Set the code and rpc status name for `status`; other details do not carry over."""
        return {"error": {"code": status, "message": body["error"]["message"],
                          "status": RPC_STATUS.get(str(status), "UNKNOWN")}}

    def is_array_stream(self, call: RecordedRequest) -> bool:
        """A streamGenerateContent call without alt=sse (answered as one JSON array)."""
        return (call.path.endswith(":streamGenerateContent")
                and call.params.get("alt") != "sse")

    def frame_end_for(self, file_name: str) -> re.Pattern[bytes]:
        """The JSON-array transcript splits between elements; SSE ones at blank lines."""
        return JSON_ARRAY_FRAME_END if file_name == ARRAY_TRANSCRIPT else self.frame_end

    def render_stream(self, body: Any, call: RecordedRequest) -> list[bytes]:
        """A single frame holding the whole answer (SSE or one-element array)."""
        if self.is_array_stream(call):
            return [b"[" + json.dumps(body, indent=2).encode() + b"]"]
        return [sse_frame(body)]

    def midstream_error(self, call: RecordedRequest) -> bytes | None:
        """An SSE frame carrying the 500 INTERNAL status; the array form is just cut."""
        if self.is_array_stream(call):
            return None
        return sse_frame(self.contract.response("error_500_internal").body)

    def all_models(self) -> list[dict[str, Any]]:
        """The contract's model pages joined in order."""
        pages = ("list_models_page1", "list_models_last_page")
        return [m for name in pages for m in self.contract.response(name).body["models"]]

    def list_models(self, call: RecordedRequest) -> Response:
        """One page of models; nextPageToken only while more remain."""
        models, params = self.all_models(), call.params
        size = effective_size(params.get("pageSize"), 50, self.page_size_cap)
        offset: int | None = 0
        if params.get("pageToken"):
            offset = self.page_tokens.offset(params["pageToken"])
        if offset is None:
            return self.error(400, call, "Invalid page token.")
        body: dict[str, Any] = {"models": models[offset:offset + size]}
        if offset + size < len(models):
            body["nextPageToken"] = self.page_tokens.token(offset + size)
        return self.reply_json(call, body, 200, self.contract.response("list_models_page1").headers)

    def get_model(self, call: RecordedRequest) -> Response:
        """One Model by id."""
        name = "models/" + call.path_params["target"]
        found = [m for m in self.all_models() if m["name"] == name]
        if not found:
            return self.error(404, call)
        return self.reply_json(call, found[0], 200,
                               self.contract.response("list_models_page1").headers)

    def validate(self, model: str, body: Any) -> str | None:
        """Why generateContent would answer 400 INVALID_ARGUMENT, or None."""
        if not isinstance(body, dict):
            return "Invalid JSON payload received."
        # The proto's required `model` travels in the URL, not in the JSON body.
        violation = first_violation(
            self.contract.json_schema("schema.json", "#/$defs/GenerateContentRequest"),
            {**body, "model": f"models/{model}"})
        if violation is not None:
            return describe(violation)
        if not body["contents"]:
            return "* GenerateContentRequest.contents: contents is not specified"
        for index, content in enumerate(body["contents"]):
            if content.get("role", "user") not in ROLES:
                return (f"* GenerateContentRequest.contents[{index}].role: "
                        "Please use a valid role: user, model.")
        return None

    def generate(self, call: RecordedRequest) -> Response:
        """generateContent or streamGenerateContent."""
        model, _, method = call.path_params["target"].rpartition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            return self.error(404, call)
        problem = self.validate(model, call.body)
        if problem is not None:
            return self.error(400, call, problem)
        if self.unknown_model(model):
            return self.error(404, call)
        name = self.pick_scenario(call, lambda: self.classify(call.json))
        if method == "generateContent":
            return self.answer(call, name, stream=False)
        if not self.is_array_stream(call):
            return self.answer(call, name, stream=True)
        file_name = ARRAY_TRANSCRIPT if self.scenarios[name].stream == "stream.txt" else None
        headers = self.scenario_body(name)[1]
        return self.reply_stream(call, self.scenario_frames(name, call, file_name), headers)

    def classify(self, body: dict[str, Any]) -> str:
        """followup, tools, max_tokens or text, from the request's shape."""
        parts = [p for c in body["contents"] for p in c.get("parts", [])]
        if any("functionResponse" in p for p in parts):
            return "followup"
        if body.get("tools"):
            return "tools"
        limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
        if isinstance(limit, int) and limit <= self.max_tokens_limit:
            return "max_tokens"
        return "text"
