"""What the auth middleware needs to know, independent of how settings are loaded."""

from __future__ import annotations

from dataclasses import dataclass

# Only asymmetric signatures: with a public JWKS, an HMAC "secret" would be public too.
ASYMMETRIC_ALGORITHMS = frozenset({
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
})
DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512")
MAX_LEEWAY = 60.0
DEFAULT_EXEMPT_PATHS = ("/health",)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Settings for verifying OpenID Connect access tokens; validated on construction.

    `leeway` is clamped to [0, 60] seconds. `algorithms` may only name RS/PS/ES algorithms:
    `none` and HS* are refused here, so a misconfiguration fails at start-up.
    """

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 30.0
    required_scopes: tuple[str, ...] = ()
    jwks_cache_ttl: float = 600.0
    jwks_min_refresh_interval: float = 30.0
    exempt_paths: tuple[str, ...] = DEFAULT_EXEMPT_PATHS
    fetch_timeout: float = 5.0
    realm: str = "llm-gateway"
    # First retry delay after the identity provider could not be reached; it doubles up to
    # `jwks_min_refresh_interval`, so a gateway started before its IdP recovers quickly.
    unavailable_retry_initial: float = 0.5

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("OIDC issuer URL must be set when auth is enabled")
        if not self.audience:
            raise ValueError("OIDC audience (or client id) must be set when auth is enabled")
        if not self.algorithms:
            raise ValueError("at least one signing algorithm must be allowed")
        refused = [alg for alg in self.algorithms if alg not in ASYMMETRIC_ALGORITHMS]
        if refused:
            raise ValueError(
                f"unsupported token algorithm(s) {', '.join(refused)}: "
                f"only {', '.join(DEFAULT_ALGORITHMS)} are allowed")
        for name in ("jwks_cache_ttl", "jwks_min_refresh_interval", "fetch_timeout",
                     "unavailable_retry_initial"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        object.__setattr__(self, "leeway", min(max(float(self.leeway), 0.0), MAX_LEEWAY))
        object.__setattr__(self, "algorithms", tuple(dict.fromkeys(self.algorithms)))

    @property
    def discovery_url(self) -> str:
        """Where the issuer's OpenID Connect discovery document lives."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"
