"""The chat routes served directly, in front of Starlette's router and exception layers.

Every chat request crosses Starlette's error middleware, its exception middleware, a
route-by-route match and two more wrappers of `send` before reaching its endpoint; together
they cost about as much CPU as the endpoint's own work outside the HTTP client. The three
POST routes that carry the traffic (`/v1/chat/completions`, `/v1/messages`,
`/llms/{provider}/generate`) are matched here with one dictionary lookup and their
endpoints called the way Starlette would, with the same `Request`; each of them answers its
own errors in its API's shape (`gateway.routes.streaming.client_api`). Anything else
(other paths, other methods, a trailing slash, a mounted root path) goes to Starlette
unchanged, so 404, 405 and redirects are still Starlette's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
_LLMS = "/llms/"
_GENERATE = "/generate"


class DirectRoutes:
    """Serves `exact` POST paths and `/llms/{provider}/generate` itself; the rest goes to `app`.

    `app` is the Starlette application: requests served here still see it as
    `request.app` (for `app.state`), and their route template is recorded in the request
    state for telemetry, as Starlette's router would have matched it.
    """

    def __init__(self, app: ASGIApp, *, exact: Mapping[str, Endpoint],
                 generate: Endpoint) -> None:
        self.app = app
        self.exact = dict(exact)
        self.generate = generate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            endpoint = self.exact.get(path)
            template = path
            if endpoint is None and path.startswith(_LLMS) and path.endswith(_GENERATE):
                provider = path[len(_LLMS):-len(_GENERATE)]
                if provider and "/" not in provider:
                    endpoint = self.generate
                    template = "/llms/{provider}/generate"
                    scope["path_params"] = {"provider": provider}
            if endpoint is not None:
                scope["app"] = self.app
                scope.setdefault("state", {})["route_template"] = template
                # The endpoints answer their own errors, in their API's shape (`client_api`).
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
