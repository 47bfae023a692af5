"""Import PyJWT inside a component and give it a pure-Python RS256 algorithm.

PyJWT 2.15.1 imports `ssl` at import time (`jwt/jwks_client.py` needs `SSLContext`),
and the component's CPython has no `_ssl`. Inside the component a placeholder `ssl`
module is installed only while `import jwt` runs, then removed again. PyJWKClient,
the only user of `ssl`, cannot work in a component anyway; `jwks.py` fetches the JWKS.

`verify_rs256` uses a private `PyJWS` instance with only `PureRS256Algorithm` registered, so
no token can select another algorithm, even on the host where `cryptography` provides
PyJWT's own RS256. That also means host tests exercise the pure-Python verifier.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Mapping
from typing import Any

if sys.platform == "wasi":
    # Import these first, so they record that TLS is unavailable before the placeholder
    # `ssl` exists.
    import http.client  # noqa: F401
    import urllib.request  # noqa: F401

    _placeholder_ssl = types.ModuleType("ssl")

    class _UnavailableSSLContext:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise NotImplementedError("TLS is not available inside a WebAssembly component")

    _placeholder_ssl.SSLContext = _UnavailableSSLContext  # type: ignore[attr-defined]
    sys.modules["ssl"] = _placeholder_ssl
    try:
        import jwt
    finally:
        if sys.modules.get("ssl") is _placeholder_ssl:
            del sys.modules["ssl"]
else:
    import jwt

from jwt.algorithms import Algorithm
from jwt.exceptions import InvalidKeyError as JwtInvalidKeyError

from . import rs256

ALGORITHM = "RS256"


class PureRS256Algorithm(Algorithm):
    """PyJWT algorithm for RS256 verification on `rs256.verify_pkcs1v15_sha256`.

    Keys may be `rs256.RSAPublicKey`, an RSA JWK as a dict, or a JWK JSON string.
    Signing is not supported: tokens are minted by the identity provider.
    """

    def prepare_key(self, key: Any) -> rs256.RSAPublicKey:
        if isinstance(key, rs256.RSAPublicKey):
            return key
        try:
            return self.from_jwk(key)
        except (rs256.InvalidKeyError, ValueError, TypeError) as error:
            raise JwtInvalidKeyError(f"could not use the RS256 key: {error}") from error

    def sign(self, msg: bytes, key: Any) -> bytes:
        raise NotImplementedError("PureRS256Algorithm verifies signatures only")

    def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
        return rs256.verify_pkcs1v15_sha256(key, msg, sig)

    def check_key_length(self, key: Any) -> str | None:
        # RSAPublicKey rejects keys under rs256.MIN_KEY_BITS when it is built.
        return None

    @staticmethod
    def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:
        jwk = rs256.key_to_jwk(key_obj)
        return jwk if as_dict else json.dumps(jwk)

    @staticmethod
    def from_jwk(jwk: str | Mapping[str, Any]) -> rs256.RSAPublicKey:
        data = json.loads(jwk) if isinstance(jwk, str) else jwk
        if not isinstance(data, Mapping):
            raise TypeError("an RSA JWK must be a JSON object")
        return rs256.key_from_jwk(data)


def new_rs256_jws() -> jwt.PyJWS:
    """Return a `PyJWS` that accepts RS256 only, verified by `PureRS256Algorithm`."""
    jws = jwt.PyJWS(algorithms=[])
    jws.register_algorithm(ALGORITHM, PureRS256Algorithm())
    return jws


_RS256_JWS = new_rs256_jws()


def verify_rs256(token: str, key: rs256.RSAPublicKey) -> tuple[dict[str, Any], bytes]:
    """Verify the token's RS256 signature and return its `(header, payload bytes)`.

    Raises `jwt.InvalidTokenError` (or a subclass) when the token is malformed, names
    another algorithm or has an invalid signature. Claims are not checked here.
    """
    # PyJWT's type hints list only its own key types; PureRS256Algorithm.prepare_key
    # accepts RSAPublicKey.
    decoded = _RS256_JWS.decode_complete(
        token, key=key, algorithms=[ALGORITHM]  # type: ignore[arg-type]
    )
    return decoded["header"], decoded["payload"]


def install_global_rs256() -> bool:
    """Register `PureRS256Algorithm` for `jwt.decode` if PyJWT has no RS256 of its own.

    Inside a component PyJWT has no RS256 without `cryptography`; on the host the native
    algorithm stays. Return True if the pure-Python algorithm was registered.
    """
    try:
        jwt.get_algorithm_by_name(ALGORITHM)
    except NotImplementedError:
        jwt.register_algorithm(ALGORITHM, PureRS256Algorithm())
        return True
    return False


install_global_rs256()
