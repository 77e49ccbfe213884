"""ASGI middleware: request ids, the SERVER span, the duration metric and the access log."""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.telemetry.core import TelemetryHooks
from gateway.telemetry.logs import log_access
from gateway.telemetry.spans import REQUEST_IDS, refill_ids

REQUEST_ID_HEADER = b"x-request-id"
_MAX_TEMPLATES = 1024
# Visible ASCII with inner spaces allowed: safe in a header, a log line and a span.
_VALID_REQUEST_ID = re.compile(r"[!-~](?:[ -~]{0,126}[!-~])?")


def accept_request_id(value: bytes | None) -> str:
    """The caller's request id when printable and at most 128 characters, else a new one."""
    return _request_id(value)[0]


def _request_id(value: bytes | None) -> tuple[str, bool]:
    """`accept_request_id`, and whether the id is the caller's (text to redact when logged)."""
    if value is not None:
        text = value.decode("latin-1")
        if _VALID_REQUEST_ID.fullmatch(text):
            return text, True
    # 128 random bits: unique, not secret (see `spans.REQUEST_IDS`).
    try:
        return REQUEST_IDS.pop().hex(), False
    except IndexError:
        return refill_ids(REQUEST_IDS, 16).hex(), False


class TelemetryMiddleware:
    """Wraps the whole app; passes bodies through untouched and observes only `send`.

    Stores the request id in `scope["state"]["request_id"]` and reads `provider` and
    `model` from `scope["state"]` (set by routes via `request.state`) for the access log.
    """

    def __init__(self, app: ASGIApp, *, telemetry: TelemetryHooks) -> None:
        self.app = app
        self.telemetry = telemetry
        # Route templates by (method, root_path, path): the routes never change, and matching
        # them again costs more than the rest of the observation.
        self._templates: dict[tuple[str, str, str], str | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id, callers_id = _request_id(_header(scope, REQUEST_ID_HEADER))
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        path = scope.get("path", "")
        root_path = scope.get("root_path", "")
        observation = self.telemetry.observe_request(scope)
        status = 500
        ended: float | None = None
        error_type: str | None = None

        async def observe_send(message: Message) -> None:
            nonlocal status, ended
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": _with_request_id(message, request_id)}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                ended = time.perf_counter()

        try:
            await self.app(scope, receive, observe_send)
        except BaseException as exc:
            error_type = type(exc).__qualname__
            raise
        finally:
            duration = (ended or time.perf_counter()) - start
            route = (self._route(state, scope, path, root_path) if self.telemetry.enabled
                     else None)
            observation.finish(status, route, error_type, duration)
            log_access(scope.get("method"), path, status, state.get("provider"),
                       state.get("model"), round(duration * 1000, 3), request_id, callers_id,
                       observation.trace_id)

    def _route(self, state: dict[str, Any], scope: Scope, path: str,
               root_path: str) -> str | None:
        explicit = state.get("route_template")  # the request's state (`scope["state"]`)
        if isinstance(explicit, str):
            return explicit
        key = (scope.get("method", "GET"), root_path, path)
        templates = self._templates
        if key in templates:
            return templates[key]
        template = route_template(scope, {"path": path, "root_path": root_path})
        if len(templates) >= _MAX_TEMPLATES:
            templates.clear()
        templates[key] = template
        return template


def route_template(scope: Scope, entry: dict[str, str]) -> str | None:
    """The matched route's path template (`/v1/{provider}/chat`), never the raw path.

    A route may name its template explicitly in `scope["state"]["route_template"]`; otherwise
    the app's routes are matched again, through mounts, against the original path.
    """
    explicit = scope.get("state", {}).get("route_template")
    if isinstance(explicit, str):
        return explicit
    router = scope.get("router") or scope.get("app")
    routes = getattr(router, "routes", None)
    if not routes:
        return None
    probe: dict[str, Any] = {"type": "http", "method": scope.get("method", "GET"), **entry}
    return _match(routes, probe, prefix="", depth=0)


def _match(routes: list[Any], probe: dict[str, Any], prefix: str, depth: int) -> str | None:
    partial: str | None = None
    for route in routes:
        if not isinstance(route, (Route, Mount)):
            continue
        match, child = route.matches(probe)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            inner = route.routes
            if inner and depth < 8:
                found = _match(inner, {**probe, **child}, prefix + route.path, depth + 1)
                if found is not None:
                    return found
            return prefix + route.path
        if match is Match.FULL:
            return prefix + route.path
        partial = partial or prefix + route.path
    return partial


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def _with_request_id(message: Message, request_id: str) -> list[tuple[bytes, bytes]]:
    """The response's headers with the request id in place of any the app set (the id is
    printable ASCII: see `_request_id`)."""
    given = message.get("headers", ())
    # Only a name of the right length is lowered to be compared: most answers have none.
    for name, _ in given:
        if len(name) == _ID_LENGTH and name.lower() == REQUEST_ID_HEADER:
            headers = [(k, v) for k, v in given if k.lower() != REQUEST_ID_HEADER]
            break
    else:
        headers = list(given)
    headers.append((REQUEST_ID_HEADER, request_id.encode()))
    return headers


_ID_LENGTH = len(REQUEST_ID_HEADER)
