"""The floors: the least a Python ASGI proxy can do, to measure the gateway against.

`python -m bench.floors CLIENT PORT UPSTREAM` serves one Starlette route on uvicorn
(uvloop + httptools, one worker, no access log, as the gateway is served) that forwards the
body to UPSTREAM's chat-completions path and relays the answer, streamed when the upstream
streams. CLIENT is `httpx` (one shared AsyncClient), `httpx-aiohttp` (httpx's API over an
aiohttp transport) or `aiohttp` (one shared ClientSession). No validation, no translation.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

PATH = "/v1/chat/completions"
Handler = Callable[[Request], Awaitable[Response]]


def _forward_headers(request: Request) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if "authorization" in request.headers:
        headers["authorization"] = request.headers["authorization"]
    return headers


def httpx_handler(client: httpx.AsyncClient, upstream: str) -> Handler:
    """Relay through one shared httpx.AsyncClient."""
    async def relay(request: Request) -> Response:
        body = await request.body()
        sent = client.build_request("POST", upstream + PATH, content=body,
                                    headers=_forward_headers(request))
        answer = await client.send(sent, stream=True)
        media = answer.headers.get("content-type", "application/json")
        if media.startswith("text/event-stream"):
            return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code,
                                     media_type=media, background=BackgroundTask(answer.aclose))
        content = await answer.aread()
        await answer.aclose()
        return Response(content, status_code=answer.status_code, media_type=media)
    return relay


def aiohttp_handler(session: aiohttp.ClientSession, upstream: str) -> Handler:
    """Relay through one shared aiohttp.ClientSession."""
    async def relay(request: Request) -> Response:
        body = await request.body()
        answer = await session.post(upstream + PATH, data=body, headers=_forward_headers(request))
        media = answer.headers.get("content-type", "application/json")
        if media.startswith("text/event-stream"):
            async def chunks() -> AsyncIterator[bytes]:
                async for chunk in answer.content.iter_any():
                    yield chunk
            return StreamingResponse(chunks(), status_code=answer.status, media_type=media,
                                     background=BackgroundTask(answer.release))
        content = await answer.read()
        answer.release()
        return Response(content, status_code=answer.status, media_type=media)
    return relay


def create_app(kind: str, upstream: str) -> Starlette:
    """The floor app for client `kind` relaying to `upstream`."""
    holder: dict[str, Handler] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if kind == "aiohttp":
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
            async with aiohttp.ClientSession(connector=connector) as session:
                holder["relay"] = aiohttp_handler(session, upstream)
                yield
            return
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
        transport: httpx.AsyncBaseTransport | None = None
        if kind == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport
            transport = AiohttpTransport(limits=limits)
        async with httpx.AsyncClient(limits=limits, transport=transport) as client:
            holder["relay"] = httpx_handler(client, upstream)
            yield

    async def relay(request: Request) -> Response:
        return await holder["relay"](request)

    return Starlette(routes=[Route(PATH, relay, methods=["POST"])], lifespan=lifespan)


def main(argv: list[str]) -> int:
    """Serve the floor named in argv on 127.0.0.1."""
    kind, port, upstream = argv[0], int(argv[1]), argv[2]
    if kind not in ("httpx", "httpx-aiohttp", "aiohttp"):
        print(f"unknown floor client {kind!r}", file=sys.stderr)
        return 2
    config: dict[str, Any] = {"loop": "uvloop", "http": "httptools", "access_log": False,
                              "log_config": None, "server_header": False}
    uvicorn.run(create_app(kind, upstream), host="127.0.0.1", port=port, **config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
