"""A tiny Starlette app behind AuthMiddleware, served on 127.0.0.1 for the auth tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from gateway.auth import AuthConfig, AuthMiddleware, Principal
from tests.support.server import serve

STREAM_CHUNKS = [f"data: chunk {n}\n\n".encode() for n in range(3)]


async def _health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _whoami(request: Request) -> JSONResponse:
    principal: Principal = request.state.auth
    return JSONResponse({
        "subject": principal.subject,
        "scopes": sorted(principal.scopes),
        "audience": principal.claims.get("aud"),
        "same_in_request_auth": request.auth is principal,
        "authorization_seen": "authorization" in request.headers,
    })


async def _stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk
            await anyio.sleep(0.05)

    return StreamingResponse(chunks(), media_type="text/event-stream")


def build_app(config: AuthConfig) -> Any:
    """The protected app; its lifespan closes the IdP client on the server's own loop."""
    http = httpx.AsyncClient()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await http.aclose()

    app = Starlette(routes=[Route("/health", _health), Route("/whoami", _whoami),
                            Route("/stream", _stream)], lifespan=lifespan)
    return AuthMiddleware(app, config=config, http=http)


@dataclass
class Gateway:
    """A served protected app and the client the test talks to it with."""

    url: str
    http: httpx.Client

    def whoami(self, token: str | None, scheme: str = "Bearer") -> httpx.Response:
        """GET the protected echo endpoint with `token` (None: no Authorization header)."""
        headers = {} if token is None else {"Authorization": f"{scheme} {token}"}
        return self.http.get(f"{self.url}/whoami", headers=headers)


@contextlib.contextmanager
def protected(config: AuthConfig, http: httpx.Client) -> Iterator[Gateway]:
    """Serve the protected app for `config` until the block exits."""
    with serve(build_app(config)) as server:
        yield Gateway(url=server.url, http=http)
