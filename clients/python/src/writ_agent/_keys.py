"""Signing: private_key_jwt client assertions (RFC 7523) and DPoP proofs (RFC 9449).

Keys are Ed25519 (EdDSA) or P-256 (ES256), what the gateway's token endpoint accepts.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ._errors import InvalidKeyError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Long enough for one token request; the gateway also accepts each jti once.
ASSERTION_LIFETIME = 60


def _load(pem: str | bytes):
    """A private key object and its JWS algorithm."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise InvalidKeyError(
            "the private key is not an unencrypted PEM Ed25519 or P-256 private key "
            "(`openssl genpkey -algorithm ed25519 -out agent.pem` makes one)"
        ) from err
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key, "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    raise InvalidKeyError(
        f"the private key is a {type(key).__name__}; the gateway accepts Ed25519 or P-256 keys"
    )


class AssertionSigner:
    """Signs client assertions for one client id with one key. Holds the key; prints none."""

    def __init__(self, pem: str | bytes):
        self._key, self._alg = _load(pem)

    def __repr__(self) -> str:
        return f"AssertionSigner({self._alg})"

    def assertion(self, client_id: str, token_url: str, now: float) -> str:
        iat = int(now)
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME,
            "jti": secrets.token_hex(16),
        }
        return jwt.encode(claims, self._key, algorithm=self._alg)


class DpopKey:
    """A key writs are bound to: every request then carries a proof signed with it."""

    def __init__(self, pem: str | bytes | None = None):
        """A PEM Ed25519 or P-256 private key, or a fresh Ed25519 key when `pem` is None."""
        if pem is None:
            self._key, self._alg = ed25519.Ed25519PrivateKey.generate(), "EdDSA"
        else:
            self._key, self._alg = _load(pem)
        public = self._key.public_key()
        algorithm = jwt.algorithms.OKPAlgorithm if self._alg == "EdDSA" else jwt.algorithms.ECAlgorithm
        self._jwk = algorithm.to_jwk(public, as_dict=True)

    def __repr__(self) -> str:
        return f"DpopKey({self._alg})"

    def proof(self, method: str, url: str, writ: str | None = None, now: float | None = None) -> str:
        """A proof for one request: `htm`, `htu` (no query or fragment), `iat`, `jti`, and
        `ath` (the writ's SHA-256) when it goes with a writ."""
        claims = {
            "htm": method,
            "htu": url.split("?", 1)[0].split("#", 1)[0],
            "iat": int(time.time() if now is None else now),
            "jti": secrets.token_hex(16),
        }
        if writ is not None:
            digest = hashlib.sha256(writ.encode()).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return jwt.encode(claims, self._key, algorithm=self._alg, headers={"typ": "dpop+jwt", "jwk": self._jwk})
