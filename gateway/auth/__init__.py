"""OpenID Connect bearer-JWT authentication for the gateway's HTTP API.

`AuthMiddleware` wraps the ASGI app; `AuthConfig` holds what it needs (built from the
settings by the application factory); the verified caller is a `Principal`.

The middleware and the token types are imported on first use: they pull in the JWT and
cryptography libraries, which a gateway without auth never needs (megabytes per worker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.auth.config import AuthConfig

if TYPE_CHECKING:
    from gateway.auth.middleware import AuthMiddleware
    from gateway.auth.tokens import Principal

__all__ = ["AuthConfig", "AuthMiddleware", "Principal"]


def __getattr__(name: str) -> Any:
    if name == "AuthMiddleware":
        from gateway.auth.middleware import AuthMiddleware

        return AuthMiddleware
    if name == "Principal":
        from gateway.auth.tokens import Principal

        return Principal
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
