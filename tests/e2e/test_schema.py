"""db/apply.py and db/postgres.sql on a real PostgreSQL database."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from .conftest import REMOTE_BASE_URL, REPO_ROOT

APPLY = [sys.executable, str(REPO_ROOT / "db" / "apply.py")]


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    if REMOTE_BASE_URL:
        pytest.skip("the schema tests use the suite's own PostgreSQL database")
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_apply_idempotent(pg_url: str) -> None:
    result = subprocess.run([*APPLY, pg_url], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_apply_unreachable_fails() -> None:
    # Port 1 on loopback has no server, so the command must fail with a clear message.
    url = "postgres://postgres@127.0.0.1:1/none"
    result = subprocess.run([*APPLY, url], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "check that the server is running" in result.stderr


@pytest.mark.parametrize("url", ["notaurl", "postgres://app:se cret@[::1/db"])
def test_apply_invalid_url_fails(url: str) -> None:
    result = subprocess.run([*APPLY, url], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "connection URL is invalid" in lines[0]
    assert "se cret" not in lines[0]


def test_handle_unique_ignoring_case(pg_url: str) -> None:
    with psycopg.connect(pg_url) as connection:
        connection.execute(
            "INSERT INTO profiles VALUES ('s1', 'Case', NULL, 't', 't'), ('s2', 'x_y', NULL, 't', 't')"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            connection.execute("INSERT INTO profiles VALUES ('s3', 'cASE', NULL, 't', 't')")
        connection.rollback()


def test_post_data_must_be_object(pg_url: str) -> None:
    with psycopg.connect(pg_url) as connection:
        connection.execute("INSERT INTO profiles VALUES ('d1', 'data_owner', NULL, 't', 't')")
        with pytest.raises(psycopg.errors.CheckViolation):
            connection.execute(
                "INSERT INTO posts VALUES ('p1', 'd1', 'c', 'permalink-range', '[1]', "
                "'public', 't', 't')"
            )
        connection.rollback()


def test_profile_delete_cascades(pg_url: str) -> None:
    with psycopg.connect(pg_url) as connection:
        connection.execute("INSERT INTO profiles VALUES ('c1', 'cascade_owner', NULL, 't', 't')")
        connection.execute(
            "INSERT INTO posts VALUES ('p2', 'c1', 'c', 'permalink-range', '{}', 'public', 't', 't')"
        )
        connection.execute("DELETE FROM profiles WHERE id = 'c1'")
        remaining = connection.execute(
            "SELECT count(*) FROM posts WHERE author_id = 'c1'"
        ).fetchone()
        connection.rollback()
    assert remaining == (0,)
