"""RSA signing keys and settings of the local identity provider, kept in a state directory.

Layout of the state directory:

    keys/<kid>.pem   PKCS#8 private keys (mode 0600), one per key
    state.json       {"keys": [{"kid", "jwk"}...], "current_kid", "issuer", "audience"}

`state.json` lists the public JWKs in creation order, so the JWKS endpoint reads one
small file per request and serves keys that `rotate` added in another process. It is
replaced atomically (write a temporary file, then rename).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537
DEFAULT_PORT = 8765
DEFAULT_AUDIENCE = "code-things"


def issuer_for_port(port: int, host: str = "127.0.0.1") -> str:
    """Return the issuer URL the server uses when it listens on `host` and `port`."""
    if ":" in host:  # an IPv6 address is bracketed in a URL
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    """Return the public JWK of `private_key` with `kid` set to its RFC 7638 thumbprint."""
    numbers = private_key.public_key().public_numbers()
    members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    # RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": members["n"], "e": members["e"]}


@dataclass
class IdpState:
    """Contents of `state.json`."""

    keys: list[dict[str, Any]]
    current_kid: str
    issuer: str
    audience: str


class KeyStore:
    """Private keys and `state.json` in one state directory."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        self.keys_dir = self.state_dir / "keys"
        self.state_file = self.state_dir / "state.json"

    def load_or_create(self) -> IdpState:
        """Return the state, creating a first key and default settings if there is none."""
        if self.state_file.is_file():
            return self.load()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = IdpState(
            keys=[], current_kid="", issuer=issuer_for_port(DEFAULT_PORT), audience=DEFAULT_AUDIENCE
        )
        self._add_key(state)
        return state

    def load(self) -> IdpState:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            return IdpState(
                keys=list(data["keys"]),
                current_kid=str(data["current_kid"]),
                issuer=str(data["issuer"]),
                audience=str(data["audience"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RuntimeError(
                f"cannot read the identity provider state {self.state_file}: {error}; "
                "delete the state directory to start with new keys"
            ) from error

    def save(self, state: IdpState) -> None:
        data = {
            "keys": state.keys,
            "current_kid": state.current_kid,
            "issuer": state.issuer,
            "audience": state.audience,
        }
        temp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(temp, self.state_file)

    def rotate(self) -> str:
        """Add a new current key, keeping the old ones in the JWKS; return its kid."""
        state = self.load_or_create()
        return self._add_key(state)

    def private_key(self, kid: str) -> rsa.RSAPrivateKey:
        path = self.keys_dir / f"{kid}.pem"
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError(f"{path} does not contain an RSA private key")
        return key

    def _add_key(self, state: IdpState) -> str:
        key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
        jwk = public_jwk(key)
        kid = jwk["kid"]

        self.keys_dir.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self.keys_dir / f"{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)

        state.keys.append({"kid": kid, "jwk": jwk})
        state.current_kid = kid
        self.save(state)
        return kid
