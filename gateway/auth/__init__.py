"""OpenID Connect bearer-JWT authentication for the gateway's HTTP API.

`AuthMiddleware` wraps the ASGI app; `AuthConfig` holds what it needs (built from the
settings by the application factory); the verified caller is a `Principal`.
"""

from gateway.auth.config import AuthConfig
from gateway.auth.middleware import AuthMiddleware
from gateway.auth.tokens import Principal

__all__ = ["AuthConfig", "AuthMiddleware", "Principal"]
