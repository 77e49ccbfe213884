"""What every provider simulator shares: recording, fault injection, scenarios and replies.

A provider module subclasses `ProviderSimulator`, lists its routes and scenarios, and says how
the provider authenticates, shapes errors and renders streams. Everything here is generic.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import parse_qsl

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.simulators.contracts import SSE_FRAME_END, Contract, split_frames
from tests.simulators.wire import WireResponse, truncate_first_payload

T = TypeVar("T")
Handler = Callable[["RecordedRequest"], Response]
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class RecordedRequest:
    """One request as the simulator received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    path_params: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, str]:
        """The query string as a dict (last value wins)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    @property
    def json(self) -> dict[str, Any]:
        """The body when it is a JSON object, else an empty dict."""
        return self.body if isinstance(self.body, dict) else {}


@dataclass(frozen=True)
class Scenario:
    """A canned answer: a responses.json body and/or a stream transcript file.

    `replays` names requests.json examples that select this scenario when sent verbatim.
    A missing body falls back to the 'text' scenario's; a missing transcript is rendered
    from the body in the provider's framing.
    """

    body: str | None
    stream: str | None = None
    replays: tuple[str, ...] = ()


@dataclass
class InjectedError:
    """An error answer queued by `fail_next`."""

    status: int
    body: Any
    headers: dict[str, str]


class Armed(Generic[T]):
    """A fault value that fires a limited (or, with None, unlimited) number of times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None
        self._remaining: int | None = 0

    def arm(self, value: T, times: int | None) -> None:
        """Fire `value` on the next `times` uses (None: until disarmed)."""
        with self._lock:
            self._value, self._remaining = value, times

    def disarm(self) -> None:
        """Stop firing."""
        with self._lock:
            self._value, self._remaining = None, 0

    def take(self) -> T | None:
        """The armed value, counting one use; None when not armed."""
        with self._lock:
            if self._remaining == 0 or self._value is None:
                return None
            if self._remaining is not None:
                self._remaining -= 1
            return self._value


class ProviderSimulator:
    """A Starlette app speaking one provider's wire protocol from its vendored contract."""

    provider_id: ClassVar[str]
    contract_dir: ClassVar[str]
    default_api_key: ClassVar[str]
    scenarios: ClassVar[dict[str, Scenario]] = {}
    stream_content_type: ClassVar[str] = "text/event-stream"
    frame_end: ClassVar[re.Pattern[bytes]] = SSE_FRAME_END
    error_message_path: ClassVar[tuple[str | int, ...]] = ("error", "message")
    default_page_size_cap: ClassVar[int | None] = None
    # Model ids containing this answer like an unknown model (the contracts' own example).
    unknown_model_marker: ClassVar[str] = "does-not-exist"
    default_hang_timeout: ClassVar[float] = 30.0

    def __init__(self, api_key: str | None = None) -> None:
        self.contract = Contract(self.contract_dir)
        self.api_key = api_key or self.default_api_key
        self.origin = ""  # scheme://host:port of the running server, set by whoever serves it
        self.requests: list[RecordedRequest] = []
        self.delay = 0.0
        self.chunk_delay = 0.0
        self.hang_timeout = self.default_hang_timeout
        self.scenario: str | None = None
        self.transcript: str | None = None
        self.page_size_cap = self.default_page_size_cap
        self._errors: list[InjectedError] = []
        self._errors_lock = threading.Lock()
        self._hang: Armed[bool] = Armed()
        self._hang_epoch = 0  # bumped by reset() to release every hung request
        self._malformed: Armed[bool] = Armed()
        self._reset_after: Armed[int] = Armed()
        self._stream_error_after: Armed[int] = Armed()
        # Streams whose client went away before the last frame (the gateway cancelled them).
        self.streams_cancelled = 0
        fallback = Route("/{path:path}", self.endpoint(self.unknown_route), methods=ALL_METHODS)
        self.app = Starlette(routes=[*self.routes(), fallback])

    @property
    def url(self) -> str:
        """The base URL to configure in the gateway for this provider."""
        assert self.origin, f"{self.provider_id} simulator is not being served"
        return self.origin + self.base_path()

    # ----- what a provider module supplies -------------------------------------------------

    def routes(self) -> list[Route]:
        """The provider's routes, each wrapped with `endpoint`."""
        raise NotImplementedError

    def base_path(self) -> str:
        """The path after host:port that the gateway uses as this provider's base URL."""
        return ""

    def check_auth(self, call: RecordedRequest) -> Response | None:
        """An error response when the credentials are wrong or missing, else None."""
        raise NotImplementedError

    def render_stream(self, body: Any, call: RecordedRequest) -> list[bytes]:
        """Frames for a scenario that has a body but no contract transcript."""
        raise NotImplementedError

    def midstream_error(self, call: RecordedRequest) -> bytes | None:
        """The provider's in-stream error frame; None means the stream is just cut short."""
        return None

    def adapt_error(self, body: Any, status: int) -> Any:
        """Fit an error template from another status to `status` (codes inside the body)."""
        return body

    def error_prefix(self, call: RecordedRequest) -> str:
        """Name prefix of the responses.json error examples that apply to `call`."""
        return "error"

    def message_path(self, call: RecordedRequest) -> tuple[str | int, ...]:
        """Where the error message sits in this provider's error body."""
        return self.error_message_path

    # ----- the test-facing controls --------------------------------------------------------

    def fail_next(self, status: int, body: Any = None, headers: Mapping[str, str] | None = None,
                  times: int = 1) -> None:
        """Answer the next `times` requests with `status` in the provider's own error shape."""
        with self._errors_lock:
            for _ in range(times):
                self._errors.append(InjectedError(status, body, dict(headers or {})))

    def hang(self, times: int | None = None) -> None:
        """Hold the next `times` requests (None: all) unanswered until `reset()` or
        `hang_timeout`; the wait is bounded, and a released request is answered normally."""
        self._hang.arm(True, times)

    def malformed_json(self, times: int = 1) -> None:
        """Answer 200 with the JSON (or the first stream payload) cut in half."""
        self._malformed.arm(True, times)

    def reset_midstream(self, n: int, times: int = 1) -> None:
        """Drop the connection after `n` body chunks (a non-stream body counts as 2 chunks)."""
        self._reset_after.arm(n, times)

    def stream_error_after(self, n: int, times: int = 1) -> None:
        """After `n` stream events, emit the provider's mid-stream error form and stop."""
        self._stream_error_after.arm(n, times)

    def reset(self) -> None:
        """Forget recordings and faults, release hung requests, restore the defaults."""
        with self._errors_lock:
            self._errors.clear()
        for armed in (self._hang, self._malformed, self._reset_after, self._stream_error_after):
            armed.disarm()
        self._hang_epoch += 1
        self.requests.clear()
        self.streams_cancelled = 0
        self.delay = self.chunk_delay = 0.0
        self.hang_timeout = self.default_hang_timeout
        self.scenario = self.transcript = None
        self.page_size_cap = self.default_page_size_cap

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request (fails loudly when there was none)."""
        assert self.requests, f"{self.provider_id} simulator received no request"
        return self.requests[-1]

    # ----- request handling ----------------------------------------------------------------

    def endpoint(self, handler: Handler) -> Callable[[Request], Any]:
        """Wrap a handler: record, hang, delay, injected errors, auth, then answer."""

        async def run(request: Request) -> Response:
            """Serve one request through the fault pipeline."""
            call = await self._record(request)
            if not await self._wait_while_hung(request):
                return Response(status_code=499)
            if self.delay:
                await anyio.sleep(self.delay)
            injected = self._next_error()
            if injected is not None:
                return self._injected_error(injected, call)
            return self.check_auth(call) or handler(call)

        return run

    async def _record(self, request: Request) -> RecordedRequest:
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        call = RecordedRequest(request.method, request.url.path, request.url.query,
                               dict(request.headers), body, raw, dict(request.path_params))
        self.requests.append(call)
        return call

    async def _wait_while_hung(self, request: Request) -> bool:
        """Block while a hang is armed; False when the client gave up meanwhile."""
        if not self._hang.take():
            return True
        epoch, deadline = self._hang_epoch, time.monotonic() + self.hang_timeout
        while self._hang_epoch == epoch and time.monotonic() < deadline:
            if await request.is_disconnected():
                return False
            await anyio.sleep(0.02)
        return True

    def _next_error(self) -> InjectedError | None:
        with self._errors_lock:
            return self._errors.pop(0) if self._errors else None

    def _injected_error(self, injected: InjectedError, call: RecordedRequest) -> Response:
        if injected.body is None:
            status, body, headers = self.error_parts(injected.status, call)
            return self.reply_json(call, body, status, {**headers, **injected.headers})
        if isinstance(injected.body, (bytes, str)):
            raw = injected.body.encode() if isinstance(injected.body, str) else injected.body
            headers = {"content-type": "application/json", **injected.headers}
            return self._wire(call, injected.status, headers, [raw], stream=False)
        return self.reply_json(call, injected.body, injected.status, injected.headers)

    def unknown_route(self, call: RecordedRequest) -> Response:
        """Paths the provider does not serve."""
        return self.error(404, call, f"Unknown path {call.method} {call.path}")

    # ----- errors --------------------------------------------------------------------------

    def error_parts(self, status: int, call: RecordedRequest,
                    message: str | None = None) -> tuple[int, Any, dict[str, str]]:
        """Status, body and headers of the provider's error for `status`, from the contract."""
        prefix = self.error_prefix(call)
        examples = self.contract.errors(status, prefix)
        if examples:
            body, headers = examples[0].body, examples[0].headers
        else:
            template = self.contract.any_error(prefix)
            body = self.adapt_error(template.body, status)
            headers = {k: v for k, v in template.headers.items() if k == "content-type"}
        if message is not None:
            set_path(body, self.message_path(call), message)
        return status, body, headers

    def error(self, status: int, call: RecordedRequest, message: str | None = None) -> Response:
        """A ready error response in the provider's shape."""
        status, body, headers = self.error_parts(status, call, message)
        return self.reply_json(call, body, status, headers)

    def reply_example(self, call: RecordedRequest, name: str) -> Response:
        """Answer with the responses.json example `name` exactly."""
        example = self.contract.response(name)
        return self.reply_json(call, example.body, example.status, example.headers)

    def unknown_model(self, model: Any) -> bool:
        """Whether `model` names a model this provider would not find."""
        return isinstance(model, str) and self.unknown_model_marker in model

    # ----- scenarios -----------------------------------------------------------------------

    def pick_scenario(self, call: RecordedRequest, classify: Callable[[], str]) -> str:
        """The forced scenario, else a verbatim contract replay, else `classify()`."""
        if self.scenario is not None:
            return self.scenario
        for name, scenario in self.scenarios.items():
            for example_name in scenario.replays:
                example = self.contract.request(example_name)
                if example.raw.get("path") == call.path and example.body == call.body:
                    return name
        return classify()

    def scenario_body(self, name: str) -> tuple[Any, dict[str, str]]:
        """The contract body and headers answering scenario `name`."""
        example_name = self.scenarios[name].body or self.scenarios["text"].body
        assert example_name is not None, f"{self.provider_id}: scenario {name} has no body"
        example = self.contract.response(example_name)
        return example.body, example.headers

    def scenario_frames(self, name: str, call: RecordedRequest,
                        file_name: str | None = None) -> list[bytes]:
        """Stream frames: the forced or given transcript, or one rendered from the body."""
        file_name = self.transcript or file_name or self.scenarios[name].stream
        if file_name is not None:
            return split_frames(self.contract.transcript(file_name), self.frame_end_for(file_name))
        return self.render_stream(self.scenario_body(name)[0], call)

    def frame_end_for(self, file_name: str) -> re.Pattern[bytes]:
        """How the transcript `file_name` is cut into frames."""
        return self.frame_end

    def answer(self, call: RecordedRequest, name: str, stream: bool,
               file_name: str | None = None) -> Response:
        """Reply with scenario `name`, as JSON or as a stream."""
        body, headers = self.scenario_body(name)
        if not stream:
            return self.reply_json(call, body, 200, headers)
        headers = {**headers, "content-type": self.stream_content_type}
        return self.reply_stream(call, self.scenario_frames(name, call, file_name), headers)

    # ----- replies -------------------------------------------------------------------------

    def reply_json(self, call: RecordedRequest, body: Any, status: int = 200,
                   headers: Mapping[str, str] | None = None) -> Response:
        """A JSON body, subject to the malformed and reset faults."""
        all_headers = {"content-type": "application/json", **(headers or {})}
        return self._wire(call, status, all_headers, [json.dumps(body).encode()], stream=False)

    def reply_stream(self, call: RecordedRequest, frames: list[bytes],
                     headers: Mapping[str, str]) -> Response:
        """A stream written frame by frame, subject to every wire fault."""
        n = self._stream_error_after.take()
        if n is not None:
            tail = self.midstream_error(call)
            frames = frames[:n] + ([tail] if tail is not None else [])
        return self._wire(call, 200, dict(headers), frames, stream=True)

    def _wire(self, call: RecordedRequest, status: int, headers: dict[str, str],
              frames: list[bytes], stream: bool) -> Response:
        if self._malformed.take():
            frames = truncate_first_payload(frames)
        cut = self._reset_after.take()
        if not stream and cut is not None and frames:
            whole = frames[0]
            frames, cut = [whole[: len(whole) // 2], whole[len(whole) // 2:]], min(cut, 1)
        return WireResponse(status, headers, frames, chunk_delay=self.chunk_delay if stream else 0,
                            on_cancel=self._stream_cancelled if stream else None,
                            cut_after=cut, content_length=not stream)

    def _stream_cancelled(self) -> None:
        """Count a stream abandoned by its client (WireResponse's `on_cancel`)."""
        self.streams_cancelled += 1


def set_path(body: Any, path: tuple[str | int, ...], value: Any) -> None:
    """Set `value` at a key/index path inside nested dicts and lists."""
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def bearer_token(call: RecordedRequest) -> str | None:
    """The token of an `Authorization: Bearer` header, if any."""
    value = call.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
