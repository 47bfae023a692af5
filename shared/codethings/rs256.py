"""Pure-Python RSASSA-PKCS1-v1_5 signature verification with SHA-256 (RS256).

`cryptography` is a native extension and cannot run inside a component, so tokens are
verified with Python integers. RSAVP1 is one `pow`. The encoded message is then compared
in constant time with the expected EMSA-PKCS1-v1_5 encoding (RFC 8017, sections 8.2.2
and 9.2). Verification only: this module never sees a private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

# DER encoding of DigestInfo for SHA-256 without the digest (RFC 8017, section 9.2, note 1).
_SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")

MIN_KEY_BITS = 2048
# Larger moduli make each verification slower without a security need; 8192 bits already
# takes several milliseconds in the component.
MAX_KEY_BITS = 8192


class InvalidKeyError(ValueError):
    """An RSA public key is malformed or outside the accepted size range."""


@dataclass(frozen=True)
class RSAPublicKey:
    """RSA public key: modulus `n` and public exponent `e`."""

    n: int
    e: int

    def __post_init__(self) -> None:
        bits = self.n.bit_length()
        if bits < MIN_KEY_BITS or bits > MAX_KEY_BITS:
            raise InvalidKeyError(
                f"RSA modulus has {bits} bits; accepted sizes are {MIN_KEY_BITS}-{MAX_KEY_BITS}"
            )
        if self.n % 2 == 0:
            raise InvalidKeyError("RSA modulus is even, so it is not a valid RSA modulus")
        if self.e < 3 or self.e % 2 == 0 or self.e >= self.n:
            raise InvalidKeyError(f"RSA public exponent {self.e} is invalid; expected an odd e >= 3")

    @property
    def size_bytes(self) -> int:
        """Length of the modulus in bytes, which is also the signature length."""
        return (self.n.bit_length() + 7) // 8


def verify_pkcs1v15_sha256(key: RSAPublicKey, message: bytes, signature: bytes) -> bool:
    """Return True if `signature` is a valid RS256 signature of `message` under `key`."""
    k = key.size_bytes
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= key.n:
        return False

    encoded = pow(s, key.e, key.n).to_bytes(k, "big")

    digest_info = _SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(message).digest()
    padding = b"\xff" * (k - len(digest_info) - 3)
    expected = b"\x00\x01" + padding + b"\x00" + digest_info
    return hmac.compare_digest(encoded, expected)


def base64url_decode(text: str) -> bytes:
    """Decode unpadded base64url (RFC 7515, section 2); raise ValueError on bad input."""
    if not isinstance(text, str) or not text:
        raise ValueError("expected a non-empty base64url string")
    if "=" in text or "+" in text or "/" in text:
        raise ValueError("expected unpadded base64url without '=', '+' or '/'")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"invalid base64url: {error}") from error


def base64url_encode_uint(value: int) -> str:
    """Encode a non-negative integer as unpadded big-endian base64url (JWK `n`, `e`)."""
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def key_from_jwk(jwk: Mapping[str, object]) -> RSAPublicKey:
    """Build a public key from an RSA JWK (`kty` `RSA` with `n` and `e`)."""
    if jwk.get("kty") != "RSA":
        raise InvalidKeyError(f"JWK kty is {jwk.get('kty')!r}; expected 'RSA'")
    n_text, e_text = jwk.get("n"), jwk.get("e")
    if not isinstance(n_text, str) or not isinstance(e_text, str):
        raise InvalidKeyError("RSA JWK needs string members 'n' and 'e'")
    try:
        n = int.from_bytes(base64url_decode(n_text), "big")
        e = int.from_bytes(base64url_decode(e_text), "big")
    except ValueError as error:
        raise InvalidKeyError(f"RSA JWK member is not valid base64url: {error}") from error
    return RSAPublicKey(n=n, e=e)


def key_to_jwk(key: RSAPublicKey) -> dict[str, str]:
    """Return the RSA JWK members of `key` (`kty`, `n`, `e`)."""
    return {"kty": "RSA", "n": base64url_encode_uint(key.n), "e": base64url_encode_uint(key.e)}
