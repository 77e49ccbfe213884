"""ASGI middleware that requires an OpenID Connect bearer JWT on every non-exempt path.

On success the verified `Principal` is put in `scope["state"]["auth"]` (so
`request.state.auth`) and `scope["auth"]` (so `request.auth`), and the app below sees the
request without its Authorization header: the caller's credential is never at hand to be
forwarded upstream. The response, streamed or not, passes through untouched.
"""

from __future__ import annotations

import json
import logging
import re

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth.config import AuthConfig
from gateway.auth.errors import (
    AuthFailure,
    AuthUnavailable,
    InsufficientScope,
    InvalidToken,
    MissingToken,
)
from gateway.auth.jwks import KeyStore
from gateway.auth.tokens import TokenVerifier
from gateway.middleware.error_shapes import error_body_for

log = logging.getLogger(__name__)

# RFC 6750 2.1 b64token.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_POLICY_VIOLATION = 1008


def bearer_token(scope: Scope) -> str:
    """The bearer token of a request; raises MissingToken or InvalidToken."""
    values = [value for name, value in scope.get("headers", []) if name == b"authorization"]
    if not values:
        raise MissingToken("missing bearer token")
    if len(values) > 1:
        raise InvalidToken("malformed authorization header")
    header: bytes = values[0]
    scheme, _, credentials = header.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingToken("authorization scheme must be Bearer")
    token = credentials.strip()
    if not _B64TOKEN.fullmatch(token):
        raise InvalidToken("malformed token")
    return token


class AuthMiddleware:
    """Requires a valid JWT from the configured issuer; lifespan and exempt paths pass."""

    def __init__(self, app: ASGIApp, *, config: AuthConfig, http: httpx.AsyncClient) -> None:
        self.app = app
        self._config = config
        self._exempt = frozenset(config.exempt_paths)
        self._verifier = TokenVerifier(config, KeyStore(config, http))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate HTTP and WebSocket requests, then hand them on or refuse them."""
        if scope["type"] not in ("http", "websocket") or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._verifier.verify(bearer_token(scope))
        except (MissingToken, InvalidToken, InsufficientScope, AuthUnavailable) as failure:
            await self._refuse(scope, send, failure)
            return
        # In place, so middleware outside this one (access logs) sees who called too.
        scope.setdefault("state", {})["auth"] = principal
        inner = dict(scope)
        inner["auth"] = principal
        inner["headers"] = [(name, value) for name, value in scope["headers"]
                            if name != b"authorization"]
        await self.app(inner, receive, send)

    async def _refuse(self, scope: Scope, send: Send,
                      failure: AuthFailure | AuthUnavailable) -> None:
        log.info("request refused: %s %s: %s", scope.get("method", "WS"), scope["path"],
                 failure.message)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
            return
        body = json.dumps(error_body_for(scope["path"], failure)).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store")]
        if isinstance(failure, AuthUnavailable):
            headers.append((b"retry-after", str(max(1, round(failure.retry_after))).encode()))
        else:
            challenge = failure.challenge(self._config.realm)
            headers.append((b"www-authenticate", challenge.encode("latin-1")))
        await send({"type": "http.response.start", "status": failure.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
