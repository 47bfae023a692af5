"""The JWKS cache seen from outside: fetch counts at the identity provider."""

from __future__ import annotations

import time

import pytest

from .conftest import JWKS_TTL_SECS, AppUnderTest

REQUESTS = 12


@pytest.fixture
def local_app(app: AppUnderTest) -> AppUnderTest:
    if not app.is_local:
        pytest.skip("JWKS fetches are counted by the in-process identity provider only")
    return app


def wait_for_expiry() -> None:
    time.sleep(JWKS_TTL_SECS + 0.5)


def test_jwks_fetched_once(local_app: AppUnderTest) -> None:
    user = local_app.user()
    wait_for_expiry()
    local_app.idp.reset_stats()
    for _ in range(REQUESTS):
        assert user.get("/api/post").status == 200
    assert local_app.idp.jwks_fetches == 1


def test_jwks_fetched_after_ttl(local_app: AppUnderTest) -> None:
    user = local_app.user()
    assert user.get("/api/post").status == 200
    local_app.idp.reset_stats()
    wait_for_expiry()
    for _ in range(3):
        assert user.get("/api/post").status == 200
    assert local_app.idp.jwks_fetches == 1


def test_jwks_shared_by_components(local_app: AppUnderTest) -> None:
    user = local_app.user()
    wait_for_expiry()
    local_app.idp.reset_stats()
    assert user.get("/api/post").status == 200
    assert user.get("/api/profile/me").status == 404
    assert local_app.idp.jwks_fetches == 1


def test_jwks_rotated_key_accepted(local_app: AppUnderTest) -> None:
    user = local_app.user()
    assert user.get("/api/post").status == 200
    local_app.idp.rotate()
    token = local_app.idp.mint("e2e|rotated")
    reply = local_app.client.request("GET", "/api/post", token=token)
    assert reply.status == 200
