"""Bearer-token authentication: RS256 JWTs checked against the issuer's JWKS.

A request is authenticated when its `Authorization: Bearer <jwt>` header carries a
token that
- names `RS256` in its header (any other `alg`, including `none` and `HS256`, is
  rejected before a key is looked up) and has a `kid` found in the issuer's JWKS,
- has a valid RSASSA-PKCS1-v1_5/SHA-256 signature under that key,
- has `iss` equal to the configured issuer and the configured audience in `aud`,
- has finite numeric `exp` and `iat`, and `nbf` if present, that hold at the current time
  with `CLOCK_SKEW_SECS` of leeway, and at most `auth_max_validity_secs` between
  `iat` and `exp` when that setting is present,
- has a non-empty string `sub` without NUL or unpaired surrogates.

Failures raise `ProblemError` 401 with a `WWW-Authenticate` challenge (RFC 6750),
or 503 with `Retry-After` when the JWKS cannot be obtained. Details name the failed
check but never contain the token.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import jwt_compat
from .config import Settings
from .jwks import JwksCache, JwksUnavailableError
from .platform import Fetch, KeyValue
from .problems import ProblemError

logger = logging.getLogger(__name__)

# Tolerated clock difference between this host and the identity provider, applied to
# `exp`, `nbf` and `iat`.
CLOCK_SKEW_SECS = 30
REALM = "code-things"
RETRY_AFTER_SECS = 30
# A longer `kid` is not from a real identity provider; it is cut in messages and logs.
MAX_KID_IN_MESSAGE = 64


@dataclass(frozen=True)
class Identity:
    """The authenticated caller: the token's `sub` and all of its verified claims."""

    sub: str
    claims: Mapping[str, object] = field(default_factory=dict)


def authenticate(
    headers: Mapping[str, str],
    settings: Settings,
    kv: KeyValue,
    fetch: Fetch,
    now: float | None = None,
) -> Identity:
    """Verify the request's `Authorization: Bearer` token and return the caller.

    Raises `ProblemError` 401 (with `WWW-Authenticate`) for a missing or invalid token,
    and 503 (with `Retry-After`) when no usable JWKS can be obtained. `headers` may use
    any letter case. `now` is the current time in seconds since the epoch; None means
    `time.time()`.
    """
    current = time.time() if now is None else now

    token = _bearer_token(headers)
    kid = _checked_header(token)

    cache = JwksCache(
        kv, fetch, settings.auth_issuer, settings.auth_jwks_url, settings.jwks_ttl_secs
    )
    try:
        key = cache.signing_key(kid, current)
    except JwksUnavailableError as error:
        logger.error("authentication unavailable: %s", error)
        raise ProblemError(
            503,
            "Identity provider unavailable",
            f"The signing keys could not be fetched from {error.jwks_url} ({error.reason}). "
            "Retry later; if this persists, check the auth_jwks_url setting and the "
            "component's allowed_outbound_hosts.",
            headers={"Retry-After": str(RETRY_AFTER_SECS)},
            jwks_url=error.jwks_url,
        ) from error
    if key is None:
        raise _invalid_token(
            f"The token's signing key {_shown(kid)} is not in the issuer's JWKS "
            f"({settings.auth_jwks_url})."
        )

    try:
        _header, payload_bytes = jwt_compat.verify_rs256(token, key)
    except jwt_compat.jwt.InvalidSignatureError as error:
        raise _invalid_token("The token signature is invalid.") from error
    except jwt_compat.jwt.InvalidTokenError as error:
        raise _invalid_token(f"The token could not be verified: {error}.") from error

    claims = _payload(payload_bytes)
    _check_claims(claims, settings, current)
    return Identity(sub=str(claims["sub"]), claims=claims)


def _bearer_token(headers: Mapping[str, str]) -> str:
    value = None
    for name, header_value in headers.items():
        if name.lower() == "authorization":
            value = header_value
            break

    if value is None or not value.strip():
        raise _challenge_only("The request has no Authorization header; send a Bearer token.")

    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _challenge_only(
            f"The Authorization scheme {scheme[:20]!r} is not supported; send a Bearer token."
        )
    token = credentials.strip()
    if not token or " " in token:
        raise _invalid_token("The Authorization header must be 'Bearer' followed by one token.")
    return token


def _checked_header(token: str) -> str:
    """Check the unverified JOSE header and return its `kid`."""
    try:
        header = jwt_compat.jwt.get_unverified_header(token)
    except jwt_compat.jwt.InvalidTokenError as error:
        raise _invalid_token(f"The token is malformed: {error}.") from error

    alg = header.get("alg")
    if alg != jwt_compat.ALGORITHM:
        raise _invalid_token(f"The token algorithm {str(alg)[:20]!r} is not accepted; only RS256 is.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _invalid_token("The token header has no 'kid', so its signing key is unknown.")
    return kid


def _payload(payload_bytes: bytes) -> dict[str, object]:
    try:
        claims = json.loads(payload_bytes)
    except (UnicodeDecodeError, ValueError) as error:
        raise _invalid_token("The token payload is not valid JSON.") from error
    if not isinstance(claims, dict):
        raise _invalid_token("The token payload is not a JSON object.")
    return claims


def _check_claims(claims: Mapping[str, object], settings: Settings, now: float) -> None:
    if claims.get("iss") != settings.auth_issuer:
        raise _invalid_token(
            f"The token issuer {_shown(claims.get('iss'))} is not the expected "
            f"{settings.auth_issuer!r}."
        )

    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or settings.auth_audience not in audiences:
        raise _invalid_token(f"The token audience does not include {settings.auth_audience!r}.")

    expires_at = _time_claim(claims, "exp", required=True)
    issued_at = _time_claim(claims, "iat", required=True)
    not_before = _time_claim(claims, "nbf", required=False)

    if expires_at is not None and now >= expires_at + CLOCK_SKEW_SECS:
        raise _invalid_token("The token has expired.")
    if not_before is not None and now < not_before - CLOCK_SKEW_SECS:
        raise _invalid_token("The token is not valid yet (nbf is in the future).")
    if issued_at is not None and issued_at > now + CLOCK_SKEW_SECS:
        raise _invalid_token("The token was issued in the future (iat is after the current time).")

    max_validity = settings.auth_max_validity_secs
    if max_validity is not None and expires_at is not None and issued_at is not None:
        validity = expires_at - issued_at
        if validity > max_validity:
            raise _invalid_token(
                f"The token is valid for {validity:.0f} s, longer than the allowed "
                f"{max_validity} s."
            )

    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise _invalid_token("The token has no 'sub' claim with a non-empty string.")
    # The subject is stored as the profile id. PostgreSQL text cannot store NUL, and a
    # string with an unpaired surrogate traps the component when it is passed to the host.
    if "\x00" in subject or not _is_utf8_encodable(subject):
        raise _invalid_token(
            "The token's 'sub' claim contains NUL or an unpaired surrogate, "
            "so it cannot be stored."
        )


def _time_claim(claims: Mapping[str, object], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise _invalid_token(f"The token has no '{name}' claim.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid_token(f"The token's '{name}' claim is not a number of seconds.")
    # An integer beyond float range raises OverflowError, and NaN or infinity would
    # make every time comparison pass.
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise _invalid_token(f"The token's '{name}' claim is not a finite number of seconds.")
    return seconds


def _is_utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: object) -> str:
    """Return a short, quoted form of an untrusted value for messages and logs."""
    text = repr(value)
    if len(text) > MAX_KID_IN_MESSAGE:
        return text[:MAX_KID_IN_MESSAGE] + "..."
    return text


def _header_safe(text: str) -> str:
    """Make `text` fit RFC 6750's error_description: printable ASCII without '"' or '\\'."""
    safe = []
    for ch in text:
        if ch == '"':
            safe.append("'")
        elif 0x20 <= ord(ch) <= 0x7E and ch != "\\":
            safe.append(ch)
        else:
            safe.append("?")
    return "".join(safe)


def _challenge_only(detail: str) -> ProblemError:
    # RFC 6750, section 3.1: a request without usable credentials gets no error code.
    return ProblemError(
        401,
        "Authentication required",
        detail,
        headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
    )


def _invalid_token(detail: str) -> ProblemError:
    logger.info("token rejected: %s", detail)
    description = _header_safe(detail)
    return ProblemError(
        401,
        "Invalid token",
        detail,
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="{REALM}", error="invalid_token", '
                f'error_description="{description}"'
            )
        },
    )
