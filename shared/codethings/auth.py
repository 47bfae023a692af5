"""Bearer-token authentication: RS256 JWTs checked against the issuer's JWKS."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .config import Settings
from .platform import Fetch, KeyValue


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
    and 503 (with `Retry-After`) when no usable JWKS can be obtained. `now` is the
    current time in seconds since the epoch; None means `time.time()`.
    """
    raise NotImplementedError("authenticate is being implemented")
