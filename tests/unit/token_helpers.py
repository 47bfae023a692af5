"""RSA keys, JWKS documents and signed tokens for the auth and JWKS unit tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import jwt
from codethings.config import Settings
from codethings.rs256 import base64url_encode_uint
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://idp.example.test/"
AUDIENCE = "code-things"
JWKS_URL = "https://idp.example.test/.well-known/jwks.json"
NOW = 1_796_400_000.0  # a fixed instant in December 2026


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_domain": "idp.example.test",
        "auth_audience": AUDIENCE,
        "auth_issuer": ISSUER,
        "auth_jwks_url": JWKS_URL,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    def jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": base64url_encode_uint(numbers.n),
            "e": base64url_encode_uint(numbers.e),
        }

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid, **header})


def new_key(kid: str, bits: int = 2048) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits))


def jwks_body(*keys: SigningKey) -> bytes:
    return json.dumps({"keys": [key.jwk() for key in keys]}).encode()


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims at NOW; an override of None removes the claim."""
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 600,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64url(signature)}"


def hs256_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """Sign with HMAC-SHA256 by hand, because PyJWT refuses a PEM key as HMAC secret."""
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(mac)}"


@dataclass
class FakeFetch:
    """Stand-in for `platform.Fetch` that returns queued responses and records URLs."""

    responses: list[tuple[int, bytes] | Exception] = field(default_factory=list)
    default: tuple[int, bytes] | Exception | None = None
    urls: list[str] = field(default_factory=list)

    def __call__(self, url: str, timeout_ms: int) -> tuple[int, bytes]:
        self.urls.append(url)
        assert timeout_ms > 0, "fetch must always be called with a timeout"
        result = self.responses.pop(0) if self.responses else self.default
        if result is None:
            raise AssertionError(f"unexpected fetch of {url}")
        if isinstance(result, Exception):
            raise result
        return result

    @property
    def calls(self) -> int:
        return len(self.urls)
