"""web.open_context: settings, authentication and database choice for one request."""

from __future__ import annotations

import time

import pytest
from codethings.config import ConfigError
from codethings.db import Database
from codethings.platform import MappingVariables, MemoryKeyValue
from codethings.problems import ProblemError
from codethings.web import Request, open_context

from .conftest import SqliteTestDatabase
from .token_helpers import AUDIENCE, ISSUER, JWKS_URL, FakeFetch, claims, jwks_body, new_key

KEY = new_key("k1")
SETTINGS = {
    "auth_domain": "idp.example.test",
    "auth_audience": AUDIENCE,
    "auth_issuer": ISSUER,
    "auth_jwks_url": JWKS_URL,
}


class DatabaseRecorder:
    """An `open_database` that records the URL it was given."""

    def __init__(self) -> None:
        self.urls: list[str | None] = []

    def __call__(self, db_url: str | None) -> Database:
        self.urls.append(db_url)
        return SqliteTestDatabase.__new__(SqliteTestDatabase)


def request_with(token: str | None) -> Request:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return Request.from_uri("GET", "/api/post", headers, b"")


def current_token(sub: str = "auth0|alice") -> str:
    now = int(time.time())
    return KEY.sign(claims(sub=sub, iat=now - 5, exp=now + 300))


def test_context_sub_from_token() -> None:
    context = open_context(
        request_with(current_token()),
        MemoryKeyValue(),
        MappingVariables(SETTINGS),
        {},
        FakeFetch(default=(200, jwks_body(KEY))),
        DatabaseRecorder(),
    )
    assert context.sub == "auth0|alice"


def test_context_sqlite_without_db_url() -> None:
    recorder = DatabaseRecorder()
    open_context(
        request_with(current_token()),
        MemoryKeyValue(),
        MappingVariables(SETTINGS),
        {},
        FakeFetch(default=(200, jwks_body(KEY))),
        recorder,
    )
    assert recorder.urls == [None]


def test_context_db_url_from_store() -> None:
    recorder = DatabaseRecorder()
    store = MemoryKeyValue({"db_url": b"postgres://db.example.test/app"})
    open_context(
        request_with(current_token()),
        store,
        MappingVariables(SETTINGS),
        {},
        FakeFetch(default=(200, jwks_body(KEY))),
        recorder,
    )
    assert recorder.urls == ["postgres://db.example.test/app"]


def test_context_missing_setting_500() -> None:
    with pytest.raises(ConfigError) as caught:
        open_context(
            request_with(current_token()),
            MemoryKeyValue(),
            MappingVariables({}),
            {},
            FakeFetch(),
            DatabaseRecorder(),
        )
    assert caught.value.status == 500


def test_context_no_token_401_without_db() -> None:
    recorder = DatabaseRecorder()
    with pytest.raises(ProblemError) as caught:
        open_context(
            request_with(None),
            MemoryKeyValue(),
            MappingVariables(SETTINGS),
            {},
            FakeFetch(default=(200, jwks_body(KEY))),
            recorder,
        )
    assert caught.value.status == 401
    assert recorder.urls == []
