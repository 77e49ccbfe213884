"""Signing keys from a JWKS, turned into python-jose verifiers (cryptography backend only).

Only the public members of a JWK are read (a JWKS that leaks private parts is not trusted
with them), and a key is only used for an algorithm its type, curve and declared `alg` fit.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from jose.backends.base import Key  # type: ignore[import-untyped]
from jose.backends.cryptography_backend import (  # type: ignore[import-untyped]
    CryptographyECKey,
    CryptographyRSAKey,
)

from gateway.auth.config import ASYMMETRIC_ALGORITHMS

MIN_RSA_BITS = 2048
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1,
}
# RFC 7518 3.4: each ES algorithm is bound to one curve.
_CURVE_FOR_ALG = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


class RsaPssKey(CryptographyRSAKey):  # type: ignore[misc]
    """RSASSA-PSS (PS256/384/512) verification, which python-jose lacks, on its RSA key class."""

    def __init__(self, key: Any, algorithm: str) -> None:
        # The parent only knows RS*; PSS uses the same hash, so borrow its SHA choice.
        super().__init__(key, "RS" + algorithm[2:])
        self._algorithm = algorithm

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """True when `sig` is a PSS signature over `msg` (salt length = hash length)."""
        pss = padding.PSS(mgf=padding.MGF1(self.hash_alg()), salt_length=padding.PSS.DIGEST_LENGTH)
        try:
            self.prepared_key.verify(sig, msg, pss, self.hash_alg())
        except InvalidSignature:
            return False
        return True


def _b64_int(value: Any) -> int:
    if not isinstance(value, str) or not value:
        raise ValueError("missing key parameter")
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return int.from_bytes(raw, "big")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One public signature key from the JWKS, already loaded by `cryptography`."""

    kid: str | None
    kty: str
    alg: str | None
    curve: str | None
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey

    def fits(self, alg: str) -> bool:
        """Whether this key may verify a token signed with `alg` (type, curve, declared alg)."""
        if self.alg is not None and self.alg != alg:
            return False
        if alg[:2] in ("RS", "PS"):
            return self.kty == "RSA"
        return self.kty == "EC" and _CURVE_FOR_ALG.get(alg) == self.curve

    def verifier(self, alg: str) -> Key:
        """A python-jose key object that verifies `alg` signatures with this key."""
        if alg.startswith("PS"):
            return RsaPssKey(self.public_key, alg)
        if alg.startswith("RS"):
            return CryptographyRSAKey(self.public_key, alg)
        return CryptographyECKey(self.public_key, alg)


def parse_jwk(raw: Any) -> SigningKey | None:
    """The signature key described by one JWKS entry, or None if it is not one we can use."""
    if not isinstance(raw, dict):
        return None
    kid, alg, use, ops = raw.get("kid"), raw.get("alg"), raw.get("use"), raw.get("key_ops")
    if kid is not None and not isinstance(kid, str):
        return None
    if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
        return None  # an encryption key, or an algorithm we never accept
    if use is not None and use != "sig":
        return None
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    try:
        return _load(raw, kid, alg)
    except (ValueError, TypeError, KeyError):
        return None


def _load(raw: dict[str, Any], kid: str | None, alg: str | None) -> SigningKey | None:
    kty = raw.get("kty")
    if kty == "RSA":
        rsa_key = rsa.RSAPublicNumbers(_b64_int(raw["e"]), _b64_int(raw["n"])).public_key()
        if rsa_key.key_size < MIN_RSA_BITS:
            return None
        return SigningKey(kid=kid, kty=kty, alg=alg, curve=None, public_key=rsa_key)
    if kty == "EC":
        crv = raw.get("crv")
        if crv not in _CURVES:
            return None
        numbers = ec.EllipticCurvePublicNumbers(
            _b64_int(raw["x"]), _b64_int(raw["y"]), _CURVES[crv]())
        return SigningKey(kid=kid, kty=kty, alg=alg, curve=crv, public_key=numbers.public_key())
    return None
