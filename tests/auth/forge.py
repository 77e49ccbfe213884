"""Keys generated in the test and tokens forged with them (python-jose / cryptography)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt  # type: ignore[import-untyped]

AUDIENCE = "llm-gateway"


@dataclass(frozen=True)
class KeyPair:
    """A signing key made by the test: its kid, algorithm, private JWK and public PEM."""

    kid: str
    alg: str
    private_jwk: dict[str, Any]
    public_pem: bytes
    private_key: Any  # the cryptography key object: signing with it skips re-loading checks


def _pair(kid: str, alg: str, private: Any) -> KeyPair:
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    private_jwk = jwk.construct(pem, alg).to_dict()
    # No "alg" on the JWK: the IdP may then sign RS256 and PS256 with the same RSA key.
    private_jwk.pop("alg", None)
    private_jwk.update(kid=kid, use="sig")
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPair(kid=kid, alg=alg, private_jwk=private_jwk, public_pem=public_pem,
                   private_key=private)


def rsa_key(kid: str) -> KeyPair:
    """A fresh 2048-bit RSA key for RS256."""
    return _pair(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> KeyPair:
    """A fresh P-256 key for ES256."""
    return _pair(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def claims(issuer: str, **overrides: Any) -> dict[str, Any]:
    """Valid access-token claims for `issuer`; an override of None removes the claim."""
    now = int(time.time())
    body: dict[str, Any] = {"iss": issuer, "aud": AUDIENCE, "sub": "forged-subject",
                            "iat": now, "exp": now + 300, "scope": "llm:invoke"}
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


def sign(body: dict[str, Any], key: KeyPair, *, kid: str | None = "key's own",
         alg: str | None = None) -> str:
    """`body` signed with `key`; `kid` defaults to the key's and None leaves it out."""
    headers = {} if kid is None else {"kid": key.kid if kid == "key's own" else kid}
    alg = alg or key.alg
    token: str = jwt.encode(body, jwk.construct(key.private_key, alg), algorithm=alg,
                            headers=headers)
    return token


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    """Decode unpadded base64url."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def compact(header: dict[str, Any], body: dict[str, Any], signature: bytes) -> str:
    """A JWS in compact form from parts, for tokens no library would produce."""
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(body).encode()),
                     b64(signature)])


def hmac_with_public_key(body: dict[str, Any], key: KeyPair) -> str:
    """The algorithm-confusion attack: HS256 keyed with the issuer's public key PEM."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = (b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode()))
    mac = hmac.new(key.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def with_payload(token: str, **changes: Any) -> str:
    """`token` with its payload edited and its original signature kept."""
    header, payload, signature = token.split(".")
    body = json.loads(unb64(payload))
    body.update(changes)
    return ".".join([header, b64(json.dumps(body).encode()), signature])
