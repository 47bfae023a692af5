"""Every branch of the JWKS cache in `codethings.jwks`, with a fake store, fetch and clock."""

from __future__ import annotations

import json

import pytest
from codethings.jwks import (
    CACHE_KEY_PREFIX,
    REFETCH_MIN_INTERVAL_SECS,
    STALE_GRACE_SECS,
    CacheEntry,
    InvalidJwksError,
    JwksCache,
    JwksUnavailableError,
    cache_key,
    parse_jwks,
)
from codethings.platform import FetchError, MemoryKeyValue

from .token_helpers import ISSUER, JWKS_URL, NOW, FakeFetch, SigningKey, jwks_body, new_key

TTL = 300


@pytest.fixture(scope="module")
def key_a() -> SigningKey:
    return new_key("key-a")


@pytest.fixture(scope="module")
def key_b() -> SigningKey:
    return new_key("key-b")


def make_cache(store: MemoryKeyValue, fetch: FakeFetch, issuer: str = ISSUER, url: str = JWKS_URL) -> JwksCache:
    return JwksCache(store, fetch, issuer, url, TTL)


def stored_entry(store: MemoryKeyValue, issuer: str = ISSUER, url: str = JWKS_URL) -> CacheEntry:
    return CacheEntry.from_bytes(store.data[cache_key(issuer, url)])


def seed(store: MemoryKeyValue, *keys: SigningKey, fetched_at: float, last_attempt: float | None = None) -> None:
    entry = CacheEntry(
        fetched_at=fetched_at,
        expires_at=fetched_at + TTL,
        jwks=parse_jwks(jwks_body(*keys)),
        last_refetch_attempt=fetched_at if last_attempt is None else last_attempt,
    )
    store.data[cache_key(ISSUER, JWKS_URL)] = entry.to_bytes()


def test_cache_miss_fetches_and_stores(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, jwks_body(key_a)))
    key = make_cache(store, fetch).signing_key("key-a", NOW)
    assert key is not None
    assert fetch.urls == [JWKS_URL]
    assert stored_entry(store).expires_at == NOW + TTL


def test_cache_hit_makes_no_request(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch()
    seed(store, key_a, fetched_at=NOW - 10)
    key = make_cache(store, fetch).signing_key("key-a", NOW)
    assert key is not None
    assert fetch.calls == 0


def test_cache_hit_makes_no_write(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch()
    seed(store, key_a, fetched_at=NOW - 10)
    make_cache(store, fetch).signing_key("key-a", NOW)
    assert store.set_calls == 0


def test_cache_expired_refetches(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, jwks_body(key_a)))
    seed(store, key_a, fetched_at=NOW - TTL - 1)
    key = make_cache(store, fetch).signing_key("key-a", NOW)
    assert key is not None
    assert fetch.calls == 1
    assert stored_entry(store).fetched_at == NOW


def test_unknown_kid_refetches_once(key_a: SigningKey, key_b: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, jwks_body(key_a, key_b)))
    seed(store, key_a, fetched_at=NOW - 100, last_attempt=NOW - 100)
    key = make_cache(store, fetch).signing_key("key-b", NOW)
    assert key is not None
    assert fetch.calls == 1
    assert "key-b" in stored_entry(store).kids()


def test_unknown_kid_after_refetch_returns_none(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, jwks_body(key_a)))
    seed(store, key_a, fetched_at=NOW - 100, last_attempt=NOW - 100)
    assert make_cache(store, fetch).signing_key("key-z", NOW) is None
    assert fetch.calls == 1


def test_unknown_kid_refetch_rate_limited(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, jwks_body(key_a)))
    seed(store, key_a, fetched_at=NOW - 100, last_attempt=NOW - 100)
    cache = make_cache(store, fetch)
    cache.signing_key("key-z", NOW)
    cache.signing_key("key-z", NOW + 1)
    cache.signing_key("key-z", NOW + REFETCH_MIN_INTERVAL_SECS - 1)
    assert fetch.calls == 1


def test_unknown_kid_refetch_allowed_after_interval(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, jwks_body(key_a)))
    seed(store, key_a, fetched_at=NOW - 100, last_attempt=NOW - 100)
    cache = make_cache(store, fetch)
    cache.signing_key("key-z", NOW)
    cache.signing_key("key-z", NOW + REFETCH_MIN_INTERVAL_SECS)
    assert fetch.calls == 2


def test_rate_limit_state_shared_through_store(key_a: SigningKey):
    # Each component instance builds its own JwksCache; the limit must hold across them.
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, jwks_body(key_a)))
    seed(store, key_a, fetched_at=NOW - 100, last_attempt=NOW - 100)
    make_cache(store, fetch).signing_key("key-z", NOW)
    make_cache(store, fetch).signing_key("key-z", NOW + 5)
    assert fetch.calls == 1


def test_failed_refetch_uses_stale_set(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=FetchError("connection refused"))
    seed(store, key_a, fetched_at=NOW - TTL - 600)
    key = make_cache(store, fetch).signing_key("key-a", NOW)
    assert key is not None
    assert fetch.calls == 1


def test_failed_refetch_keeps_last_good_set(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=(500, b"oops"))
    seed(store, key_a, fetched_at=NOW - TTL - 600)
    make_cache(store, fetch).signing_key("key-a", NOW)
    entry = stored_entry(store)
    assert entry.kids() == ["key-a"]
    assert entry.fetched_at == NOW - TTL - 600
    assert entry.last_refetch_attempt == NOW


def test_failed_refetch_rate_limits_retries(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=FetchError("timed out"))
    seed(store, key_a, fetched_at=NOW - TTL - 600)
    cache = make_cache(store, fetch)
    cache.signing_key("key-a", NOW)
    key = cache.signing_key("key-a", NOW + 10)
    assert key is not None
    assert fetch.calls == 1


def test_stale_set_beyond_grace_unavailable(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=FetchError("connection refused"))
    seed(store, key_a, fetched_at=NOW - TTL - STALE_GRACE_SECS - 1)
    with pytest.raises(JwksUnavailableError) as caught:
        make_cache(store, fetch).signing_key("key-a", NOW)
    assert caught.value.jwks_url == JWKS_URL


def test_stale_beyond_grace_inside_rate_limit(key_a: SigningKey):
    # Even inside the refetch rate limit, a set past the grace period is not used.
    store, fetch = MemoryKeyValue(), FakeFetch()
    seed(store, key_a, fetched_at=NOW - TTL - STALE_GRACE_SECS - 1, last_attempt=NOW - 5)
    with pytest.raises(JwksUnavailableError):
        make_cache(store, fetch).signing_key("key-a", NOW)
    assert fetch.calls == 0


def test_no_set_and_fetch_failure_unavailable():
    store, fetch = MemoryKeyValue(), FakeFetch(default=FetchError("connection refused"))
    with pytest.raises(JwksUnavailableError) as caught:
        make_cache(store, fetch).signing_key("key-a", NOW)
    assert "connection refused" in caught.value.reason


def test_no_set_failure_rate_limited():
    store, fetch = MemoryKeyValue(), FakeFetch(default=FetchError("connection refused"))
    cache = make_cache(store, fetch)
    with pytest.raises(JwksUnavailableError):
        cache.signing_key("key-a", NOW)
    with pytest.raises(JwksUnavailableError) as caught:
        cache.signing_key("key-a", NOW + REFETCH_MIN_INTERVAL_SECS - 1)
    assert fetch.calls == 1
    assert "no key set" in caught.value.reason


def test_no_set_failure_retried_after_interval(key_a: SigningKey):
    store = MemoryKeyValue()
    fetch = FakeFetch(responses=[FetchError("connection refused"), (200, jwks_body(key_a))])
    cache = make_cache(store, fetch)
    with pytest.raises(JwksUnavailableError):
        cache.signing_key("key-a", NOW)
    key = cache.signing_key("key-a", NOW + REFETCH_MIN_INTERVAL_SECS)
    assert key is not None
    assert stored_entry(store).kids() == ["key-a"]


def test_no_set_and_http_error_unavailable():
    store, fetch = MemoryKeyValue(), FakeFetch(default=(404, b"not found"))
    with pytest.raises(JwksUnavailableError) as caught:
        make_cache(store, fetch).signing_key("key-a", NOW)
    assert "404" in caught.value.reason


def test_no_set_and_invalid_jwks_unavailable():
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, b'{"keys": []}'))
    with pytest.raises(JwksUnavailableError):
        make_cache(store, fetch).signing_key("key-a", NOW)
    assert stored_entry(store).kids() == []


@pytest.mark.parametrize(
    "corrupt",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"fetched_at": 1, "expires_at": 2}',
        b'{"fetched_at": "x", "expires_at": 2, "jwks": {"keys": []}}',
        b'{"fetched_at": 1, "expires_at": 9999999999, "jwks": {"keys": "no"}}',
    ],
)
def test_corrupt_entry_overwritten(key_a: SigningKey, corrupt: bytes):
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, jwks_body(key_a)))
    store.data[cache_key(ISSUER, JWKS_URL)] = corrupt
    key = make_cache(store, fetch).signing_key("key-a", NOW)
    assert key is not None
    assert fetch.calls == 1
    assert stored_entry(store).kids() == ["key-a"]


def test_two_issuers_use_separate_entries(key_a: SigningKey, key_b: SigningKey):
    store = MemoryKeyValue()
    other_issuer, other_url = "https://other.example.test/", "https://other.example.test/jwks"
    make_cache(store, FakeFetch(default=(200, jwks_body(key_a)))).signing_key("key-a", NOW)
    make_cache(store, FakeFetch(default=(200, jwks_body(key_b))), other_issuer, other_url).signing_key(
        "key-b", NOW
    )
    assert len(store.data) == 2
    assert stored_entry(store).kids() == ["key-a"]
    assert stored_entry(store, other_issuer, other_url).kids() == ["key-b"]


def test_other_issuer_entry_not_used(key_a: SigningKey):
    store = MemoryKeyValue()
    make_cache(store, FakeFetch(default=(200, jwks_body(key_a)))).signing_key("key-a", NOW)
    other = FakeFetch(default=(200, jwks_body(key_a)))
    make_cache(store, other, "https://other.example.test/").signing_key("key-a", NOW)
    assert other.calls == 1


def test_cache_key_short_and_prefixed():
    key = cache_key("https://" + "x" * 2000 + "/", "https://" + "y" * 2000 + "/jwks")
    assert key.startswith(CACHE_KEY_PREFIX)
    assert len(key.encode()) < 255


def test_entry_is_one_json_value(key_a: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, jwks_body(key_a)))
    make_cache(store, fetch).signing_key("key-a", NOW)
    entry = json.loads(store.data[cache_key(ISSUER, JWKS_URL)])
    assert set(entry) == {"fetched_at", "expires_at", "jwks"}


def test_unknown_kid_refetch_recorded_in_entry(key_a: SigningKey, key_b: SigningKey):
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, jwks_body(key_a, key_b)))
    seed(store, key_a, fetched_at=NOW - 100, last_attempt=NOW - 100)
    make_cache(store, fetch).signing_key("key-b", NOW)
    assert stored_entry(store).last_refetch_attempt == NOW


def test_unknown_kid_after_routine_fetch(key_a: SigningKey, key_b: SigningKey):
    # A key rotated in just after a routine fetch must not wait for the rate limit.
    store = MemoryKeyValue()
    fetch = FakeFetch(responses=[(200, jwks_body(key_a)), (200, jwks_body(key_a, key_b))])
    cache = make_cache(store, fetch)
    cache.signing_key("key-a", NOW)
    key = cache.signing_key("key-b", NOW + 1)
    assert key is not None
    assert fetch.calls == 2


def test_parse_jwks_skips_unusable_keys(key_a: SigningKey):
    document = {
        "keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {**key_a.jwk(), "kid": "enc", "use": "enc"},
            {**key_a.jwk(), "kid": "rs512", "alg": "RS512"},
            {k: v for k, v in key_a.jwk().items() if k != "kid"},
            {**key_a.jwk(), "kid": "bad-n", "n": "AQAB"},
            "not an object",
            key_a.jwk(),
        ]
    }
    parsed = parse_jwks(json.dumps(document).encode())
    assert [key["kid"] for key in parsed["keys"]] == ["key-a"]


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"keys": {}}', b'{"keys": []}', b"\xff"])
def test_parse_jwks_rejects_invalid(body: bytes):
    with pytest.raises(InvalidJwksError):
        parse_jwks(body)


def test_parse_jwks_deep_nesting_rejected():
    body = b'{"keys": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    with pytest.raises(InvalidJwksError):
        parse_jwks(body)


def test_oversized_jwks_rejected():
    store, fetch = MemoryKeyValue(), FakeFetch(default=(200, b" " * 1_000_001))
    with pytest.raises(JwksUnavailableError):
        make_cache(store, fetch).signing_key("key-a", NOW)


def test_ttl_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        JwksCache(MemoryKeyValue(), FakeFetch(), ISSUER, JWKS_URL, 0)
