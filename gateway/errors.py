"""The gateway's errors, and the one place they become HTTP answers.

    GatewayError                    any failure the gateway reports to its caller
    ├── InvalidRequest              400  the caller's request is malformed (names the field)
    ├── Unauthorized                401  missing or invalid caller credentials
    ├── Forbidden                   403  valid credentials without the needed scope
    ├── NotFound                    404  unknown route or provider
    │   └── ProviderNotConfigured   404  known provider whose settings are missing
    ├── RequestTimeout              408  the request body arrived too slowly
    ├── PayloadTooLarge             413  request body over the limit
    ├── TooManyRequests             429  the client has too many requests in flight
    ├── ServiceUnavailable          503  a dependency of the gateway itself is down
    └── UpstreamError               502  the provider failed (keeps its status and message)
        ├── UpstreamTimeout         504  the provider did not answer in time
        └── UpstreamUnavailable     502  the provider could not be reached at all

Lower-level failures (httpx, JSON decoding) are mapped to these at exactly one boundary,
`gateway.upstream`, with `raise ... from exc`.
"""

from __future__ import annotations

from typing import Any


class RequestAborted(Exception):
    """A client broke a limit while its request was running: its body stalled or passed the
    size limit, or it stopped reading the answer. The request guard raises it from `receive`
    or `send` and answers it (408, 413) or drops the connection; routes must let it through.
    """


class GatewayError(Exception):
    """Base of every error the gateway answers with; carries status and a stable code."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def payload(self) -> dict[str, Any]:
        """The JSON body in the spec's `Error` shape."""
        return {"error": self.message, "code": self.code}


class InvalidRequest(GatewayError):
    """The request body or parameters are invalid; `field` is the offending path."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field

    def payload(self) -> dict[str, Any]:
        """The JSON body, with the field path when known."""
        body = super().payload()
        if self.field:
            body["field"] = self.field
        return body


class Unauthorized(GatewayError):
    """Missing or invalid credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(GatewayError):
    """Authenticated, but not allowed."""

    status = 403
    code = "forbidden"


class NotFound(GatewayError):
    """Unknown route, provider or model."""

    status = 404
    code = "not_found"


class ProviderNotConfigured(NotFound):
    """A known provider that cannot be used until the named settings are given."""

    code = "provider_not_configured"

    def __init__(self, provider: str, missing: list[str]) -> None:
        super().__init__(f"provider '{provider}' is not configured: set {' and '.join(missing)}")
        self.provider = provider
        self.missing = missing


class PayloadTooLarge(GatewayError):
    """The request body exceeds the configured maximum."""

    status = 413
    code = "payload_too_large"


class RequestTimeout(GatewayError):
    """The client took too long to send its request body."""

    status = 408
    code = "request_timeout"


class TooManyRequests(GatewayError):
    """The client already has the most requests in flight it may have."""

    status = 429
    code = "too_many_requests"


class ServiceUnavailable(GatewayError):
    """Something the gateway itself depends on (such as the identity provider) is down."""

    status = 503
    code = "service_unavailable"


class UpstreamError(GatewayError):
    """The provider answered with an error or an unusable answer."""

    status = 502
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        upstream_status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.provider = provider
        self.upstream_status = upstream_status
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        """The JSON body, naming the provider and the upstream status."""
        body = super().payload()
        body["provider"] = self.provider
        if self.upstream_status is not None:
            body["upstream_status"] = self.upstream_status
        return body


class UpstreamTimeout(UpstreamError):
    """The provider did not answer within the configured timeout."""

    status = 504
    code = "upstream_timeout"


class UpstreamUnavailable(UpstreamError):
    """The provider could not be reached (connection refused, DNS, TLS)."""

    code = "upstream_unavailable"
