"""Token acceptance and every rejection reason of `codethings.auth.authenticate`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from codethings.auth import CLOCK_SKEW_SECS, authenticate
from codethings.platform import FetchError, MemoryKeyValue
from codethings.problems import ProblemError

from .token_helpers import (
    ISSUER,
    JWKS_URL,
    NOW,
    FakeFetch,
    SigningKey,
    claims,
    hs256_token,
    jwks_body,
    new_key,
    settings,
    unsigned_token,
)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return new_key("key-1")


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return new_key("key-1")  # same kid, different key material


def run(token: str | None, key: SigningKey, *, header: str | None = None, **setting_overrides: Any):
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    fetch = FakeFetch(default=(200, jwks_body(key)))
    return authenticate(headers, settings(**setting_overrides), MemoryKeyValue(), fetch, now=NOW)


def rejection(token: str | None, key: SigningKey, **kwargs: Any) -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        run(token, key, **kwargs)
    return caught.value


def challenge(error: ProblemError) -> str:
    return error.headers["WWW-Authenticate"]


def test_authenticate_valid_token(key: SigningKey):
    identity = run(key.sign(claims()), key)
    assert identity.sub == "alice"
    assert identity.claims["iss"] == ISSUER


def test_authenticate_audience_list(key: SigningKey):
    identity = run(key.sign(claims(aud=["other", "code-things"])), key)
    assert identity.sub == "alice"


def test_authenticate_lowercase_header_name(key: SigningKey):
    token = key.sign(claims())
    fetch = FakeFetch(default=(200, jwks_body(key)))
    identity = authenticate({"authorization": f"bearer {token}"}, settings(), MemoryKeyValue(), fetch, now=NOW)
    assert identity.sub == "alice"


def test_authenticate_within_clock_skew(key: SigningKey):
    token = key.sign(claims(exp=int(NOW) - CLOCK_SKEW_SECS + 1, nbf=int(NOW) + CLOCK_SKEW_SECS - 1))
    assert run(token, key).sub == "alice"


def test_missing_header_challenge_without_error(key: SigningKey):
    error = rejection(None, key)
    assert error.status == 401
    assert challenge(error) == 'Bearer realm="code-things"'


def test_non_bearer_scheme_challenge_without_error(key: SigningKey):
    error = rejection(None, key, header="Basic YWxpY2U6c2VjcmV0")
    assert error.status == 401
    assert "error=" not in challenge(error)


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b"])
def test_bearer_without_single_token(key: SigningKey, header: str):
    error = rejection(None, key, header=header)
    assert error.status == 401
    assert 'error="invalid_token"' in challenge(error)


@pytest.mark.parametrize("token", ["abc", "a.b", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30"])
def test_malformed_token(key: SigningKey, token: str):
    error = rejection(token, key)
    assert error.status == 401
    assert 'error="invalid_token"' in challenge(error)


def test_wrong_alg_rejected(key: SigningKey):
    token = unsigned_token({"alg": "RS512", "kid": "key-1"}, claims(), b"x" * 256)
    error = rejection(token, key)
    assert "'RS512' is not accepted" in error.detail


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_rejected(key: SigningKey, alg: str):
    error = rejection(unsigned_token({"alg": alg, "kid": "key-1"}, claims()), key)
    assert error.status == 401
    assert "only RS256" in error.detail


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
def test_hs256_with_public_key_rejected(key: SigningKey, secret_form: str):
    secret = key.public_pem() if secret_form == "pem" else json.dumps(key.jwk()).encode()
    token = hs256_token({"alg": "HS256", "kid": "key-1", "typ": "JWT"}, claims(), secret)
    error = rejection(token, key)
    assert error.status == 401
    assert "'HS256' is not accepted" in error.detail


def test_rs256_header_with_hmac_signature_rejected(key: SigningKey):
    token = hs256_token({"alg": "RS256", "kid": "key-1"}, claims(), key.public_pem())
    error = rejection(token, key)
    assert error.detail == "The token signature is invalid."


def test_bad_signature_rejected(key: SigningKey, other_key: SigningKey):
    error = rejection(other_key.sign(claims()), key)
    assert error.detail == "The token signature is invalid."


def test_tampered_payload_rejected(key: SigningKey):
    header, _payload, signature = key.sign(claims()).split(".")
    forged = unsigned_token({}, claims(sub="mallory")).split(".")[1]
    error = rejection(f"{header}.{forged}.{signature}", key)
    assert error.detail == "The token signature is invalid."


def test_wrong_issuer_rejected(key: SigningKey):
    error = rejection(key.sign(claims(iss="https://evil.example.test/")), key)
    assert "issuer" in error.detail


def test_missing_issuer_rejected(key: SigningKey):
    error = rejection(key.sign(claims(iss=None)), key)
    assert "issuer" in error.detail


def test_wrong_audience_rejected(key: SigningKey):
    error = rejection(key.sign(claims(aud="someone-else")), key)
    assert "audience" in error.detail


def test_missing_audience_rejected(key: SigningKey):
    error = rejection(key.sign(claims(aud=None)), key)
    assert "audience" in error.detail


def test_expired_token_rejected(key: SigningKey):
    error = rejection(key.sign(claims(exp=int(NOW) - CLOCK_SKEW_SECS)), key)
    assert error.detail == "The token has expired."


def test_missing_exp_rejected(key: SigningKey):
    error = rejection(key.sign(claims(exp=None)), key)
    assert "'exp'" in error.detail


def test_non_numeric_exp_rejected(key: SigningKey):
    error = rejection(key.sign(claims(exp="tomorrow")), key)
    assert "'exp'" in error.detail


def test_nbf_in_future_rejected(key: SigningKey):
    error = rejection(key.sign(claims(nbf=int(NOW) + CLOCK_SKEW_SECS + 1)), key)
    assert "nbf" in error.detail


def test_iat_in_future_rejected(key: SigningKey):
    error = rejection(key.sign(claims(iat=int(NOW) + CLOCK_SKEW_SECS + 1)), key)
    assert "iat" in error.detail


def test_missing_iat_rejected(key: SigningKey):
    error = rejection(key.sign(claims(iat=None)), key)
    assert "'iat'" in error.detail


def test_max_validity_exceeded_rejected(key: SigningKey):
    token = key.sign(claims(iat=int(NOW) - 10, exp=int(NOW) + 7200))
    error = rejection(token, key, auth_max_validity_secs=3600)
    assert "longer than the allowed 3600 s" in error.detail


def test_max_validity_respected(key: SigningKey):
    token = key.sign(claims(iat=int(NOW) - 10, exp=int(NOW) + 3000))
    assert run(token, key, auth_max_validity_secs=3600).sub == "alice"


@pytest.mark.parametrize("sub", [None, "", "   ", 42, ["alice"]])
def test_missing_or_invalid_sub_rejected(key: SigningKey, sub: object):
    error = rejection(key.sign(claims(sub=sub)), key)
    assert "'sub'" in error.detail


@pytest.mark.parametrize("sub", ["ali\x00ce", "ali\ud800ce"])
def test_unstorable_sub_rejected(key: SigningKey, sub: str):
    # PostgreSQL rejects NUL, and a string with an unpaired surrogate cannot be encoded
    # as UTF-8 to pass it to the host.
    error = rejection(key.sign(claims(sub=sub)), key)
    assert "'sub'" in error.detail


@pytest.mark.parametrize("exp", [10**400, float("nan"), float("inf")], ids=["huge", "nan", "inf"])
def test_out_of_range_exp_rejected(key: SigningKey, exp: float):
    error = rejection(key.sign(claims(exp=exp)), key)
    assert "'exp'" in error.detail


def test_missing_kid_rejected(key: SigningKey):
    token = key.sign(claims())
    header = {"alg": "RS256"}
    _h, payload, signature = token.split(".")
    no_kid = unsigned_token(header, {}).split(".")[0]
    error = rejection(f"{no_kid}.{payload}.{signature}", key)
    assert "'kid'" in error.detail


def test_unknown_kid_after_refetch_rejected(key: SigningKey):
    stranger = new_key("key-unknown")
    fetch = FakeFetch(default=(200, jwks_body(key)))
    token = stranger.sign(claims())
    store = MemoryKeyValue()
    authenticate({"Authorization": f"Bearer {key.sign(claims())}"}, settings(), store, fetch, now=NOW)
    with pytest.raises(ProblemError) as caught:
        authenticate({"Authorization": f"Bearer {token}"}, settings(), store, fetch, now=NOW + 60)
    assert caught.value.status == 401
    assert "'key-unknown'" in caught.value.detail
    assert fetch.calls == 2


def test_jwks_unavailable_is_503(key: SigningKey):
    fetch = FakeFetch(default=FetchError("connection refused"))
    with pytest.raises(ProblemError) as caught:
        authenticate(
            {"Authorization": f"Bearer {key.sign(claims())}"}, settings(), MemoryKeyValue(), fetch, now=NOW
        )
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "30"
    assert caught.value.extra["jwks_url"] == JWKS_URL


def test_bad_token_never_fetches_jwks(key: SigningKey):
    fetch = FakeFetch()
    token = unsigned_token({"alg": "none", "kid": "key-1"}, claims())
    with pytest.raises(ProblemError):
        authenticate({"Authorization": f"Bearer {token}"}, settings(), MemoryKeyValue(), fetch, now=NOW)
    assert fetch.calls == 0


def test_problem_never_echoes_token(key: SigningKey):
    token = key.sign(claims(exp=int(NOW) - 3600))
    error = rejection(token, key)
    _status, headers, body = error.to_response_parts()
    signature = token.split(".")[2]
    assert signature not in body.decode()
    assert signature not in headers["www-authenticate"]


def test_error_description_header_safe(key: SigningKey):
    token = key.sign(claims(iss='https://evil"\\\n.example/'))
    value = challenge(rejection(token, key))
    description = value.split('error_description="', 1)[1][:-1]
    assert '"' not in description
    assert "\\" not in description
    assert "\n" not in description
