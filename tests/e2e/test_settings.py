"""Settings from the key-value store alone, as with `spin deploy --key-value`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local_idp import LocalIdentityProvider
from spinlocal.testing import run_app

from .client import HttpClient, User
from .conftest import MANIFEST, REMOTE_BASE_URL, app_variables, prepare_state_dir


@pytest.fixture(scope="module")
def kv_only_client(
    components: None, idp: LocalIdentityProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HttpClient]:
    if REMOTE_BASE_URL:
        pytest.skip("this test starts its own app")
    settings = app_variables(idp)
    # allowed_outbound_hosts is rendered from Spin variables at load time only, so the
    # provider's origin must stay a variable; everything else comes from the store.
    origin = {"local_idp_origin": settings.pop("local_idp_origin")}
    state_dir = prepare_state_dir(tmp_path_factory.mktemp("state-kv-only"))
    with run_app(
        MANIFEST,
        variables=origin,
        key_values=settings,
        state_dir=state_dir,
        extra_args=["--sqlite", f"@{MANIFEST.parent / 'db' / 'sqlite.sql'}"],
        log_path=state_dir / "spinlocal.log",
    ) as base_url:
        yield HttpClient(base_url)


def test_settings_from_store_only(kv_only_client: HttpClient, idp: LocalIdentityProvider) -> None:
    user = User(kv_only_client, "e2e|kv", idp.mint("e2e|kv"))
    reply = user.post("/api/profile", {"handle": "kv_only_user"})
    assert reply.status == 201, reply.body


def test_settings_missing_500(components: None, tmp_path_factory: pytest.TempPathFactory) -> None:
    if REMOTE_BASE_URL:
        pytest.skip("this test starts its own app")
    state_dir = prepare_state_dir(tmp_path_factory.mktemp("state-unset"))
    with run_app(MANIFEST, state_dir=state_dir, log_path=state_dir / "spinlocal.log") as base_url:
        reply = HttpClient(base_url).request("GET", "/api/post", token="x.y.z")
    body = reply.json()
    assert reply.status == 500
    assert body["setting"] == "auth_domain"
    assert "--key-value auth_domain=" in body["detail"]


def test_jwks_unavailable_503(
    components: None, idp: LocalIdentityProvider, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if REMOTE_BASE_URL:
        pytest.skip("this test starts its own app")
    variables = app_variables(idp)
    # The provider responds 404 at this path, so the app never gets a key set.
    variables["auth_jwks_url"] = f"http://127.0.0.1:{idp.port}/no-such-jwks.json"
    state_dir = prepare_state_dir(tmp_path_factory.mktemp("state-no-jwks"))
    with run_app(
        MANIFEST, variables=variables, state_dir=state_dir, log_path=state_dir / "spinlocal.log"
    ) as base_url:
        token = idp.mint("e2e|no-jwks")
        reply = HttpClient(base_url).request("GET", "/api/post", token=token)
    assert reply.status == 503
    assert "retry-after" in reply.headers
    assert reply.content_type == "application/problem+json"


def test_sqlite_statement_error_500(
    components: None, idp: LocalIdentityProvider, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if REMOTE_BASE_URL:
        pytest.skip("this test starts its own app")
    # Without `--sqlite @db/sqlite.sql` the database has no tables, so every statement
    # fails with "no such table", which SQLite reports as the WIT case `io`.
    state_dir = prepare_state_dir(tmp_path_factory.mktemp("state-no-schema"))
    with run_app(
        MANIFEST,
        variables=app_variables(idp),
        state_dir=state_dir,
        log_path=state_dir / "spinlocal.log",
    ) as base_url:
        token = idp.mint("e2e|no-schema")
        reply = HttpClient(base_url).request("GET", "/api/profile/me", token=token)
    assert reply.status == 500
    assert "retry-after" not in reply.headers
    assert reply.content_type == "application/problem+json"
