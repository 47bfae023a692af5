"""JWKS cache in the key-value store.

Spin's key-value store has no TTL, so each cache entry is one JSON value that carries
its own expiry. A reader therefore always gets a key set together with its own
expiry:

    {"fetched_at": 1733340000.0, "expires_at": 1733340300.0,
     "jwks": {"keys": [{"kid": "...", "kty": "RSA", "n": "...", "e": "..."}]},
     "last_refetch_attempt": 1733340000.0}

Times are seconds since the epoch. The entry key is derived from a SHA-256 of the
issuer and the JWKS URL, so two issuers never share an entry and the key stays far
below the 255-byte limit of Fermyon Cloud.

Rules, applied by `JwksCache.signing_key`:
- A fresh entry that contains the token's `kid` is used without any outbound request.
- A missing, expired or corrupt entry is refetched; a corrupt one is overwritten.
- A `kid` missing from a fresh set triggers one refetch, at most once per
  `REFETCH_MIN_INTERVAL_SECS` per entry (the attempt time is stored in the entry).
  Failed fetches record their time too, so an unreachable JWKS URL is also tried at
  most once per interval while a stale set is in use.
- When a refetch fails, the last good set stays in the store and is used for at most
  `STALE_GRACE_SECS` past its expiry; beyond that, or with no set at all, the caller
  gets `JwksUnavailableError` (a 503 for the client).
- When the first fetch fails, an entry with an empty `keys` list records the attempt,
  so requests within `REFETCH_MIN_INTERVAL_SECS` get the 503 without another fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import rs256
from .platform import Fetch, FetchError, KeyValue, KeyValueError

logger = logging.getLogger(__name__)

CACHE_KEY_PREFIX = "codethings:jwks:"
REFETCH_MIN_INTERVAL_SECS = 30.0
STALE_GRACE_SECS = 3600.0
FETCH_TIMEOUT_MS = 3000
# Fermyon Cloud rejects values over 1 MB; leave room for the entry's own fields.
MAX_ENTRY_BYTES = 1_000_000 - 4096


class JwksUnavailableError(Exception):
    """No usable JWKS: the fetch failed and no cached set is fresh or recent enough."""

    def __init__(self, jwks_url: str, reason: str) -> None:
        super().__init__(f"JWKS from {jwks_url} is unavailable: {reason}")
        self.jwks_url = jwks_url
        self.reason = reason


class CorruptEntryError(ValueError):
    """A cache entry does not have the layout this module writes."""


class InvalidJwksError(ValueError):
    """A fetched JWKS document is not usable (bad JSON, no RSA signing keys, too large)."""


@dataclass(frozen=True)
class CacheEntry:
    """One cached key set with its own lifetime."""

    fetched_at: float
    expires_at: float
    jwks: dict[str, Any]
    last_refetch_attempt: float | None = None

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "fetched_at": self.fetched_at,
            "expires_at": self.expires_at,
            "jwks": self.jwks,
        }
        if self.last_refetch_attempt is not None:
            data["last_refetch_attempt"] = self.last_refetch_attempt
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> CacheEntry:
        """Parse an entry; raise ValueError (or CorruptEntryError) for any other layout."""
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise CorruptEntryError("entry is not a JSON object")
        fetched_at = _number(data, "fetched_at")
        expires_at = _number(data, "expires_at")
        last_attempt = data.get("last_refetch_attempt")
        if last_attempt is not None:
            last_attempt = _number(data, "last_refetch_attempt")
        jwks = data.get("jwks")
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise CorruptEntryError("entry has no 'jwks' object with a 'keys' list")
        return cls(fetched_at, expires_at, jwks, last_attempt)

    def find_key(self, kid: str) -> rs256.RSAPublicKey | None:
        for jwk in self.jwks["keys"]:
            if isinstance(jwk, dict) and jwk.get("kid") == kid:
                try:
                    return rs256.key_from_jwk(jwk)
                except rs256.InvalidKeyError as error:
                    logger.warning("cached JWKS key %r is invalid: %s", kid, error)
                    return None
        return None

    def kids(self) -> list[str]:
        return [str(jwk.get("kid")) for jwk in self.jwks["keys"] if isinstance(jwk, dict)]


def cache_key(issuer: str, jwks_url: str) -> str:
    """Return the key-value key of the cache entry for this issuer and JWKS URL."""
    digest = hashlib.sha256(f"{issuer}\n{jwks_url}".encode()).hexdigest()
    return CACHE_KEY_PREFIX + digest


def parse_jwks(body: bytes) -> dict[str, Any]:
    """Validate a JWKS document and return `{"keys": [...]}` with its RSA signing keys.

    Keys that are not RSA, are marked for another use (`use` other than `sig`) or
    algorithm, have no `kid`, or fail to parse are skipped and logged. A document
    without any usable key raises `InvalidJwksError`.
    """
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise InvalidJwksError(f"JWKS is not valid JSON: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise InvalidJwksError("JWKS is not a JSON object with a 'keys' list")

    usable: list[dict[str, str]] = []
    for index, jwk in enumerate(document["keys"]):
        reason = _skip_reason(jwk)
        if reason is not None:
            logger.info("JWKS key %d skipped: %s", index, reason)
            continue
        usable.append({"kid": jwk["kid"], "kty": "RSA", "n": jwk["n"], "e": jwk["e"]})

    if not usable:
        raise InvalidJwksError("JWKS contains no RSA signing key with 'kid', 'n' and 'e'")
    return {"keys": usable}


def _skip_reason(jwk: object) -> str | None:
    if not isinstance(jwk, dict):
        return "not a JSON object"
    if jwk.get("kty") != "RSA":
        return f"kty is {jwk.get('kty')!r}, not 'RSA'"
    if jwk.get("use", "sig") != "sig":
        return f"use is {jwk.get('use')!r}, not 'sig'"
    if jwk.get("alg", "RS256") != "RS256":
        return f"alg is {jwk.get('alg')!r}, not 'RS256'"
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        return "no 'kid'"
    try:
        rs256.key_from_jwk(jwk)
    except rs256.InvalidKeyError as error:
        return f"kid {kid!r}: {error}"
    return None


def _number(data: Mapping[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CorruptEntryError(f"entry member {name!r} is not a number")
    return float(value)


class JwksCache:
    """Signing keys of one issuer, cached in the key-value store."""

    def __init__(
        self,
        kv: KeyValue,
        fetch: Fetch,
        issuer: str,
        jwks_url: str,
        ttl_secs: int,
        fetch_timeout_ms: int = FETCH_TIMEOUT_MS,
    ) -> None:
        if ttl_secs <= 0:
            raise ValueError(f"JWKS TTL must be a positive number of seconds, got {ttl_secs}")
        self.kv = kv
        self.fetch = fetch
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.ttl_secs = ttl_secs
        self.fetch_timeout_ms = fetch_timeout_ms
        self.key = cache_key(issuer, jwks_url)

    def signing_key(self, kid: str, now: float) -> rs256.RSAPublicKey | None:
        """Return the public key for `kid`, or None if the issuer's JWKS lacks it.

        Raises `JwksUnavailableError` when no usable key set can be obtained.
        """
        entry = self._load()

        if entry is not None and now < entry.expires_at:
            key = entry.find_key(kid)
            if key is not None:
                return key
            if not self._may_refetch(entry, now):
                logger.info(
                    "kid %r not in the cached JWKS of %s; refetch skipped, the last "
                    "attempt was under %.0f s ago",
                    kid, self.jwks_url, REFETCH_MIN_INTERVAL_SECS,
                )
                return None
            logger.info("kid %r not in the cached JWKS of %s; refetching", kid, self.jwks_url)
            return self._refresh(entry, kid, now, unknown_kid=True)
        elif entry is not None and not self._may_refetch(entry, now):
            # The set has expired, but a refetch failed moments ago: do not retry yet.
            return self._use_stale(entry, kid, now, "the last refetch failed recently")
        else:
            logger.info(
                "JWKS cache %s for %s; fetching",
                "miss" if entry is None else "expired", self.jwks_url,
            )

        return self._refresh(entry, kid, now, unknown_kid=False)

    def _refresh(
        self, entry: CacheEntry | None, kid: str, now: float, *, unknown_kid: bool
    ) -> rs256.RSAPublicKey | None:
        """Fetch the JWKS and store it; on failure fall back to `entry`.

        Only refetches for an unknown `kid` and failed attempts record
        `last_refetch_attempt`, so a token signed with a key that rotated in just after a
        routine fetch still gets one refetch.
        """
        try:
            jwks = self._fetch_jwks()
        except (FetchError, InvalidJwksError) as error:
            logger.warning("fetching the JWKS from %s failed: %s", self.jwks_url, error)
            if entry is None:
                # Record the failed attempt in an entry without keys, so the next requests
                # within the refetch interval get 503 at once instead of waiting again.
                self._store(
                    CacheEntry(fetched_at=now, expires_at=now, jwks={"keys": []}, last_refetch_attempt=now)
                )
                raise JwksUnavailableError(self.jwks_url, str(error)) from error
            self._store(replace(entry, last_refetch_attempt=now))
            if now < entry.expires_at:
                return entry.find_key(kid)
            return self._use_stale(entry, kid, now, f"refetch failed: {error}")

        fresh = CacheEntry(
            fetched_at=now,
            expires_at=now + self.ttl_secs,
            jwks=jwks,
            last_refetch_attempt=now if unknown_kid else None,
        )
        self._store(fresh)
        return fresh.find_key(kid)

    def _use_stale(
        self, entry: CacheEntry, kid: str, now: float, reason: str
    ) -> rs256.RSAPublicKey | None:
        if not entry.jwks["keys"]:
            raise JwksUnavailableError(self.jwks_url, f"{reason}, and no key set was fetched yet")
        stale_for = now - entry.expires_at
        if stale_for > STALE_GRACE_SECS:
            raise JwksUnavailableError(
                self.jwks_url,
                f"{reason}, and the cached set expired {stale_for:.0f} s ago, more than "
                f"the {STALE_GRACE_SECS:.0f} s a stale set may be used",
            )
        logger.warning(
            "using the JWKS of %s that expired %.0f s ago (%s)", self.jwks_url, stale_for, reason
        )
        return entry.find_key(kid)

    @staticmethod
    def _may_refetch(entry: CacheEntry, now: float) -> bool:
        last = entry.last_refetch_attempt
        return last is None or now - last >= REFETCH_MIN_INTERVAL_SECS or now < last

    def _fetch_jwks(self) -> dict[str, Any]:
        status, body = self.fetch(self.jwks_url, self.fetch_timeout_ms)
        if status != 200:
            raise FetchError(f"GET {self.jwks_url} returned HTTP {status}, expected 200")
        if len(body) > MAX_ENTRY_BYTES:
            raise InvalidJwksError(f"JWKS is {len(body)} bytes, over {MAX_ENTRY_BYTES}")
        return parse_jwks(body)

    def _load(self) -> CacheEntry | None:
        try:
            raw = self.kv.get(self.key)
        except KeyValueError as error:
            logger.warning("reading the JWKS cache entry %s failed: %s", self.key, error)
            return None
        if raw is None:
            return None
        try:
            return CacheEntry.from_bytes(raw)
        except (UnicodeDecodeError, ValueError) as error:
            logger.warning(
                "JWKS cache entry %s is corrupt (%s); treating it as a miss", self.key, error
            )
            return None

    def _store(self, entry: CacheEntry) -> None:
        value = entry.to_bytes()
        if len(value) > MAX_ENTRY_BYTES:
            logger.warning(
                "JWKS cache entry %s is %d bytes, over %d; not stored",
                self.key, len(value), MAX_ENTRY_BYTES,
            )
            return
        try:
            self.kv.set(self.key, value)
        except KeyValueError as error:
            logger.warning("writing the JWKS cache entry %s failed: %s", self.key, error)
