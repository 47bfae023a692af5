"""Pure helpers of codethings.db: placeholders, timestamps, error classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from codethings.db import DatabaseError, postgres_host, to_dollar_placeholders, utc_timestamp


def test_placeholders_numbered_in_order() -> None:
    sql = "UPDATE t SET a = ?, b = ? WHERE id = ?"
    assert to_dollar_placeholders(sql) == "UPDATE t SET a = $1, b = $2 WHERE id = $3"


def test_placeholders_none() -> None:
    assert to_dollar_placeholders("SELECT 1") == "SELECT 1"


@pytest.mark.parametrize("sql", ["SELECT '?'", 'SELECT "?x" FROM t', "SELECT 1 -- why?"])
def test_placeholders_reject_quotes(sql: str) -> None:
    with pytest.raises(ValueError):
        to_dollar_placeholders(sql)


def test_timestamp_fixed_width_utc() -> None:
    moment = datetime(2026, 12, 4, 21, 8, 34, 5, tzinfo=timezone(timedelta(hours=1)))
    assert utc_timestamp(moment) == "2026-12-04T20:08:34.000005Z"


def test_timestamp_text_order_is_time_order() -> None:
    early = datetime(2026, 1, 1, 9, 59, 59, 999999, tzinfo=UTC)
    late = early + timedelta(microseconds=1)
    assert utc_timestamp(early) < utc_timestamp(late)


def test_timestamp_naive_rejected() -> None:
    with pytest.raises(ValueError):
        utc_timestamp(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "message",
    [
        'duplicate key value violates unique constraint "profiles_pkey"',
        "UNIQUE constraint failed: profiles.id",
    ],
)
def test_error_unique_violation(message: str) -> None:
    assert DatabaseError("query-failed", message).is_unique_violation


def test_error_foreign_key_not_unique() -> None:
    error = DatabaseError("io", "FOREIGN KEY constraint failed")
    assert not error.is_unique_violation


@pytest.mark.parametrize(
    ("kind", "expected"), [("connection-failed", True), ("io", False), ("query-failed", False)]
)
def test_error_unavailable(kind: str, expected: bool) -> None:
    assert DatabaseError(kind, "x").is_unavailable is expected


# On SQLite every failure, a syntax error as much as a locked file, arrives as `io`.
@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("database is locked", True),
        ("database table is locked: posts", True),
        ("unable to open database file", True),
        ("disk I/O error", True),
        ("no such table: posts", False),
        ('near "SELEC": syntax error', False),
        ("FOREIGN KEY constraint failed", False),
        ("UNIQUE constraint failed: profiles.id", False),
    ],
)
def test_error_sqlite_io_unavailable(message: str, expected: bool) -> None:
    assert DatabaseError("io", message).is_unavailable is expected


def test_error_sqlite_open_unavailable() -> None:
    error = DatabaseError("io", "[Errno 13] Permission denied: '.spin'", while_opening=True)
    assert error.is_unavailable


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("postgres://user:secret@db.example.com:5432/app", "db.example.com:5432"),
        ("postgres://db.example.com/app", "db.example.com"),
        ("postgres://u:p@ss@127.0.0.1", "127.0.0.1"),
        ("postgres://db.example.com?password=secret", "db.example.com"),
        ("host=db.example.com port=5433 user=app password=secret", "db.example.com:5433"),
        ("user=app password=secret hostaddr=10.0.0.5", "10.0.0.5"),
        ("password=secret dbname=app", "?"),
    ],
)
def test_postgres_host_hides_password(url: str, host: str) -> None:
    assert postgres_host(url) == host
