"""Why a request was not authenticated, and the RFC 6750 challenge that goes with it."""

from __future__ import annotations

import re

from gateway.errors import Forbidden, ServiceUnavailable, Unauthorized

# Characters allowed inside a quoted auth-param; anything else is dropped so that nothing an
# attacker put in a token can break the header or smuggle content into it.
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def _quoted(value: str) -> str:
    return '"' + _UNSAFE.sub("", value) + '"'


class MissingToken(Unauthorized):
    """No bearer credentials at all: per RFC 6750 the challenge carries no error code."""

    code = "invalid_token"

    def challenge(self, realm: str) -> str:
        """The WWW-Authenticate value for this failure."""
        return f"Bearer realm={_quoted(realm)}"


class InvalidToken(Unauthorized):
    """A bearer token was presented but is unusable (malformed, expired, wrong key...)."""

    code = "invalid_token"

    def challenge(self, realm: str) -> str:
        """The WWW-Authenticate value for this failure."""
        return (f"Bearer realm={_quoted(realm)}, error=\"invalid_token\", "
                f"error_description={_quoted(self.message)}")


class UnknownSigningKey(InvalidToken):
    """The token names a key id the JWKS does not hold (worth one rate-limited refresh)."""


class InsufficientScope(Forbidden):
    """The token is valid but lacks scopes every request needs."""

    code = "insufficient_scope"

    def __init__(self, missing: tuple[str, ...], required: tuple[str, ...]) -> None:
        super().__init__(f"token lacks required scope(s): {' '.join(missing)}")
        self.missing = missing
        self.required = required

    def challenge(self, realm: str) -> str:
        """The WWW-Authenticate value for this failure."""
        return (f"Bearer realm={_quoted(realm)}, error=\"insufficient_scope\", "
                f"scope={_quoted(' '.join(self.required))}")


class AuthUnavailable(ServiceUnavailable):
    """No signing keys could be had from the identity provider; not the caller's fault."""

    code = "auth_unavailable"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


AuthFailure = MissingToken | InvalidToken | InsufficientScope
