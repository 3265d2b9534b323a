"""OpenID Connect: the RS256 key behind the JWKS, id_tokens, and the signed-in user's profile."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from qbsync.simulator.jsonio import JsonObject

OPENID_SCOPES = frozenset({"openid", "profile", "email", "phone", "address"})
ID_TOKEN_TTL = 3600


class SigningKey:
    """Made on first use (RSA key generation is slow) and kept with the state, so that
    id_tokens issued before a restart still verify against the JWKS after it."""

    def __init__(self, pem: str | None = None) -> None:
        self._pem = pem
        self._key: rsa.RSAPrivateKey | None = None

    @property
    def pem(self) -> str | None:
        return self._pem

    def _private(self) -> rsa.RSAPrivateKey:
        if self._key is None:
            if self._pem is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                self._pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode()
            loaded = serialization.load_pem_private_key(self._pem.encode(), password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            self._key = loaded
        return self._key

    @property
    def kid(self) -> str:
        public = (
            self._private()
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return hashlib.sha256(public).hexdigest()[:16]

    def jwks(self) -> JsonObject:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self._private().public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def sign(self, claims: JsonObject) -> str:
        return jwt.encode(claims, self._private(), algorithm="RS256", headers={"kid": self.kid})


def user_id(realm_id: str) -> str:
    """The one simulated QuickBooks admin of a company, with a stable OpenID subject."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"qbo-simulator:{realm_id}"))


def id_token(key: SigningKey, *, issuer: str, client_id: str, realm_id: str, now: float) -> str:
    issued = int(now)
    return key.sign(
        {
            "iss": issuer,
            "sub": user_id(realm_id),
            "aud": [client_id],
            "realmid": realm_id,
            "auth_time": issued,
            "iat": issued,
            "exp": issued + ID_TOKEN_TTL,
        }
    )


def user_info(realm_id: str, scopes: frozenset[str]) -> JsonObject:
    """What Intuit's userinfo endpoint answers, one group of claims per granted scope."""
    info: JsonObject = {"sub": user_id(realm_id)}
    if "profile" in scopes:
        info.update(givenName="Sam", familyName="Simulator")
    if "email" in scopes:
        info.update(email=f"admin-{realm_id}@quickbooks.test", emailVerified=True)
    if "phone" in scopes:
        info.update(phoneNumber="+1 650-555-1234", phoneNumberVerified=False)
    if "address" in scopes:
        info["address"] = {
            "streetAddress": "123 Sierra Way",
            "locality": "San Pablo",
            "region": "CA",
            "postalCode": "87999",
            "country": "US",
        }
    return info
