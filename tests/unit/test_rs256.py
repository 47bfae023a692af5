"""The pure-Python RS256 verifier against `cryptography`, and its PyJWT registration."""

from __future__ import annotations

import os
import random

import jwt
import pytest
from codethings import jwt_compat, rs256
from codethings.rs256 import RSAPublicKey, key_from_jwk, verify_pkcs1v15_sha256
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MESSAGES_PER_KEY = 40


@pytest.fixture(scope="module", params=[2048, 3072, 4096])
def private_key(request: pytest.FixtureRequest) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=request.param)


def public_of(private_key: rsa.RSAPrivateKey) -> RSAPublicKey:
    numbers = private_key.public_key().public_numbers()
    return RSAPublicKey(n=numbers.n, e=numbers.e)


def sign(private_key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    return private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def native_verifies(private_key: rsa.RSAPrivateKey, message: bytes, signature: bytes) -> bool:
    try:
        private_key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def test_verify_random_messages_accepted(private_key: rsa.RSAPrivateKey):
    key = public_of(private_key)
    rng = random.Random(private_key.key_size)
    for _ in range(MESSAGES_PER_KEY):
        message = rng.randbytes(rng.randrange(0, 2048))
        signature = sign(private_key, message)
        assert verify_pkcs1v15_sha256(key, message, signature) is True


def test_verify_tampered_signatures_rejected(private_key: rsa.RSAPrivateKey):
    key = public_of(private_key)
    rng = random.Random(private_key.key_size + 1)
    for _ in range(MESSAGES_PER_KEY):
        message = rng.randbytes(rng.randrange(1, 512))
        signature = bytearray(sign(private_key, message))
        position = rng.randrange(len(signature))
        signature[position] ^= 1 << rng.randrange(8)
        tampered = bytes(signature)
        assert native_verifies(private_key, message, tampered) is False
        assert verify_pkcs1v15_sha256(key, message, tampered) is False


def test_verify_tampered_message_rejected(private_key: rsa.RSAPrivateKey):
    key = public_of(private_key)
    message = os.urandom(100)
    signature = sign(private_key, message)
    assert verify_pkcs1v15_sha256(key, message + b"x", signature) is False
    assert verify_pkcs1v15_sha256(key, message[:-1], signature) is False


def test_verify_wrong_key_rejected():
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = sign(signer, b"message")
    assert verify_pkcs1v15_sha256(public_of(other), b"message", signature) is False


def test_verify_signature_length_checked():
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = public_of(private_key)
    signature = sign(private_key, b"message")
    assert verify_pkcs1v15_sha256(key, b"message", signature[1:]) is False
    assert verify_pkcs1v15_sha256(key, b"message", b"\x00" + signature) is False
    assert verify_pkcs1v15_sha256(key, b"message", b"") is False


def test_verify_signature_not_below_modulus_rejected():
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = public_of(private_key)
    assert verify_pkcs1v15_sha256(key, b"m", key.n.to_bytes(key.size_bytes, "big")) is False
    assert verify_pkcs1v15_sha256(key, b"m", b"\xff" * key.size_bytes) is False


def test_verify_sha1_digest_info_rejected():
    # A valid PKCS#1 v1.5 signature over SHA-1 must not pass as RS256.
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = private_key.sign(b"message", padding.PKCS1v15(), hashes.SHA1())
    assert verify_pkcs1v15_sha256(public_of(private_key), b"message", signature) is False


def test_key_small_modulus_rejected():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(rs256.InvalidKeyError, match="1024 bits"):
        RSAPublicKey(n=small.public_numbers().n, e=65537)


@pytest.mark.parametrize("exponent", [1, 2, 4, 65536])
def test_key_bad_exponent_rejected(exponent: int):
    n = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers().n
    with pytest.raises(rs256.InvalidKeyError):
        RSAPublicKey(n=n, e=exponent)


def test_jwk_round_trip():
    key = public_of(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert key_from_jwk(rs256.key_to_jwk(key)) == key


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "EC", "n": "AQAB", "e": "AQAB"},
        {"kty": "RSA", "e": "AQAB"},
        {"kty": "RSA", "n": 12345, "e": "AQAB"},
        {"kty": "RSA", "n": "not base64!", "e": "AQAB"},
        {"kty": "RSA", "n": "AQAB==", "e": "AQAB"},
    ],
)
def test_jwk_invalid_rejected(jwk: dict[str, object]):
    with pytest.raises(rs256.InvalidKeyError):
        key_from_jwk(jwk)


def test_pyjws_uses_pure_algorithm():
    jws = jwt_compat.new_rs256_jws()
    assert isinstance(jws.get_algorithm_by_name("RS256"), jwt_compat.PureRS256Algorithm)


def test_pyjws_knows_no_other_algorithm():
    jws = jwt_compat.new_rs256_jws()
    for name in ("HS256", "RS384", "ES256", "PS256", "none"):
        with pytest.raises(NotImplementedError):
            jws.get_algorithm_by_name(name)


def test_verify_rs256_accepts_pyjwt_token():
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"sub": "alice"}, private_key, algorithm="RS256", headers={"kid": "k"})
    header, payload = jwt_compat.verify_rs256(token, public_of(private_key))
    assert header["kid"] == "k"
    assert payload == b'{"sub":"alice"}'


def test_verify_rs256_rejects_other_key():
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"sub": "alice"}, signer, algorithm="RS256")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt_compat.verify_rs256(token, public_of(other))


def test_global_registration_keeps_native_rs256():
    # On the host cryptography provides RS256, so install_global_rs256 must leave it.
    assert jwt_compat.install_global_rs256() is False
    assert not isinstance(jwt.get_algorithm_by_name("RS256"), jwt_compat.PureRS256Algorithm)
