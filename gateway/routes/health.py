"""Probes: `/health` never touches an upstream and needs no auth."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

_OK = b'{"message":"OK"}'


async def health(request: Request) -> Response:
    """Liveness: the process is up and serving."""
    return Response(_OK, media_type="application/json")
