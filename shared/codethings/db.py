"""Database access over Spin's PostgreSQL or SQLite interface, behind one protocol.

SQL in `profiles` and `posts` is written once, with `?` placeholders and SQL that both
PostgreSQL and SQLite accept. `PostgresDatabase` rewrites the placeholders to `$1, $2,
...` before sending a statement. `open_database(db_url)` chooses PostgreSQL when a URL
is set and Spin's `default` SQLite database otherwise.

The Spin implementations exist only inside a component (`sys.platform == "wasi"`),
because `spin_sdk` is importable only there. componentize-py imports modules at build
time, so they import `spin_sdk` at module top level. Unit tests use another
`Database` implementation over CPython's sqlite3.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

logger = logging.getLogger(__name__)

# Values that travel as statement parameters and come back in rows.
SqlValue = str | int | float | bytes | bool | None
Row = dict[str, SqlValue]


# Spin's SQLite interface (and spinlocal's) reports every failed statement as the WIT
# case `io`. These SQLite messages mean the file is locked by another connection or
# cannot be opened or read, so a later retry can succeed. Any other `io` failure is a
# failed statement.
_SQLITE_UNAVAILABLE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "unable to open database",
    "disk i/o error",
)


class DatabaseError(Exception):
    """A database call failed; `kind` is the WIT error case, such as `query-failed`.

    `while_opening` marks a failure to open the connection, which is never the fault
    of a statement.
    """

    def __init__(self, kind: str, message: str, *, while_opening: bool = False) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.while_opening = while_opening

    @property
    def is_unique_violation(self) -> bool:
        """Return whether the failure is a UNIQUE or PRIMARY KEY conflict.

        Neither Spin interface reports a SQLSTATE, so this reads the message that
        PostgreSQL ("duplicate key value violates unique constraint") or SQLite
        ("UNIQUE constraint failed") puts into it.
        """
        text = self.message.lower()
        return "duplicate key" in text or "unique constraint" in text

    @property
    def is_unavailable(self) -> bool:
        """Return whether the database could not be reached, rather than a statement failing."""
        if self.kind in {"connection-failed", "no-such-database", "access-denied"}:
            return True
        if self.kind != "io":
            return False
        text = self.message.lower()
        return self.while_opening or any(marker in text for marker in _SQLITE_UNAVAILABLE_MESSAGES)


class Database(Protocol):
    """A connection that runs `?`-placeholder SQL; both methods raise `DatabaseError`."""

    dialect: str  # "postgres" or "sqlite"

    def query(self, sql: str, params: Sequence[SqlValue] = ()) -> list[Row]:
        """Run a statement that returns rows; each row maps column name to value."""
        ...

    def execute(self, sql: str, params: Sequence[SqlValue] = ()) -> None:
        """Run a statement that returns no rows.

        fermyon:spin/sqlite@2.0.0 reports no changed-row count, so a caller that needs
        one adds `RETURNING` and uses `query` instead.

        NOTE: `RETURNING` needs SQLite 3.35 or later. spinlocal (CPython's sqlite3) has it,
        but the SQLite behind Fermyon Cloud has not been tried with this app.
        """
        ...


def to_dollar_placeholders(sql: str) -> str:
    """Rewrite `?` placeholders as PostgreSQL's `$1, $2, ...`.

    The project's SQL has no `?` inside string literals, quoted names or comments, so
    every `?` is a placeholder. A quote character or comment is rejected, so a later
    statement cannot break that rule silently.
    """
    if "'" in sql or '"' in sql or "--" in sql:
        raise ValueError(
            f"statement contains a quote or comment, so its `?` placeholders cannot be "
            f"rewritten safely: {sql!r}; pass such values as parameters instead"
        )
    parts = sql.split("?")
    rewritten = [parts[0]]
    for index, part in enumerate(parts[1:], start=1):
        rewritten.append(f"${index}{part}")
    return "".join(rewritten)


def utc_timestamp(moment: datetime) -> str:
    """Format `moment` as fixed-width UTC ISO-8601 text, for example `2026-12-04T20:08:34.123456Z`.

    Both schemas store timestamps as this text, whose fixed width makes text order
    chronological order.
    """
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment!r} has no time zone; pass an aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def postgres_host(db_url: str) -> str:
    """Return `host[:port]` of a connection string, for log lines that must not show a password.

    Both forms that Spin accepts are read: a `postgres://` URL, and a libpq keyword string
    such as `host=db port=5432 password=...`, of which only `host` (or `hostaddr`) and
    `port` are returned. A keyword string without a host gives `?`.
    """
    if "://" in db_url:
        rest = db_url.split("://", 1)[1]
        authority = rest.split("/", 1)[0].split("?", 1)[0]
        return authority.rsplit("@", 1)[-1]

    words = dict(word.partition("=")[::2] for word in db_url.split())
    host = words.get("host") or words.get("hostaddr") or "?"
    port = words.get("port")
    return f"{host}:{port}" if port else host


if sys.platform == "wasi":
    from spin_sdk import postgres as _spin_postgres
    from spin_sdk import sqlite as _spin_sqlite
    from spin_sdk.wit.imports import rdbms_types as _rdbms
    from spin_sdk.wit.imports import sqlite as _sqlite_wit
    from spin_sdk.wit.types import Err as _Err

    def _error_kind(value: object) -> tuple[str, str]:
        """Return `(kind, message)` for a WIT error case such as `Error_QueryFailed("...")`."""
        name = type(value).__name__.removeprefix("Error_")
        kind = "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")
        message = getattr(value, "value", None)
        return kind, str(message) if message is not None else kind

    def _database_error(error: _Err, action: str, *, while_opening: bool = False) -> DatabaseError:
        kind, message = _error_kind(error.value)
        logger.error("database %s failed (%s): %s", action, kind, message)
        return DatabaseError(kind, message, while_opening=while_opening)

    def _pg_parameter(value: SqlValue) -> _rdbms.ParameterValue:
        if value is None:
            return _rdbms.ParameterValue_DbNull()
        if isinstance(value, bool):
            return _rdbms.ParameterValue_Boolean(value)
        if isinstance(value, int):
            return _rdbms.ParameterValue_Int64(value)
        if isinstance(value, float):
            return _rdbms.ParameterValue_Floating64(value)
        if isinstance(value, bytes):
            return _rdbms.ParameterValue_Binary(value)
        return _rdbms.ParameterValue_Str(value)

    def _pg_value(value: _rdbms.DbValue) -> SqlValue:
        if isinstance(value, _rdbms.DbValue_DbNull):
            return None
        if isinstance(value, _rdbms.DbValue_Unsupported):
            raise DatabaseError(
                "value-conversion-failed",
                "a column has a type that fermyon:spin/postgres@2.0.0 cannot return; "
                "cast it to text in the query",
            )
        return value.value

    class PostgresDatabase:
        """PostgreSQL through `fermyon:spin/postgres@2.0.0`."""

        dialect = "postgres"

        def __init__(self, db_url: str) -> None:
            try:
                self._connection = _spin_postgres.open(db_url)
            except _Err as error:
                raise _database_error(
                    error, f"connect to {postgres_host(db_url)}", while_opening=True
                ) from error

        def query(self, sql: str, params: Sequence[SqlValue] = ()) -> list[Row]:
            try:
                result = self._connection.query(
                    to_dollar_placeholders(sql), [_pg_parameter(p) for p in params]
                )
            except _Err as error:
                raise _database_error(error, "query") from error
            names = [column.name for column in result.columns]
            return [dict(zip(names, map(_pg_value, row), strict=True)) for row in result.rows]

        def execute(self, sql: str, params: Sequence[SqlValue] = ()) -> None:
            try:
                self._connection.execute(
                    to_dollar_placeholders(sql), [_pg_parameter(p) for p in params]
                )
            except _Err as error:
                raise _database_error(error, "execute") from error

    def _sqlite_parameter(value: SqlValue) -> _sqlite_wit.Value:
        if value is None:
            return _sqlite_wit.Value_Null()
        if isinstance(value, bool | int):
            return _sqlite_wit.Value_Integer(int(value))
        if isinstance(value, float):
            return _sqlite_wit.Value_Real(value)
        if isinstance(value, bytes):
            return _sqlite_wit.Value_Blob(value)
        return _sqlite_wit.Value_Text(value)

    def _sqlite_value(value: _sqlite_wit.Value) -> SqlValue:
        if isinstance(value, _sqlite_wit.Value_Null):
            return None
        return value.value

    class SqliteDatabase:
        """Spin's SQLite database `default` through `fermyon:spin/sqlite@2.0.0`.

        Opening it turns on foreign keys for the connection, so deleting a profile
        cascades to its posts where the host keeps that setting between statements.
        """

        dialect = "sqlite"

        def __init__(self, name: str = "default") -> None:
            try:
                self._connection = _spin_sqlite.open(name)
            except _Err as error:
                raise _database_error(
                    error, f"open SQLite database {name!r}", while_opening=True
                ) from error
            self.execute("PRAGMA foreign_keys = ON")

        def query(self, sql: str, params: Sequence[SqlValue] = ()) -> list[Row]:
            try:
                result = self._connection.execute(sql, [_sqlite_parameter(p) for p in params])
            except _Err as error:
                raise _database_error(error, "query") from error
            names = list(result.columns)
            return [
                dict(zip(names, map(_sqlite_value, row.values), strict=True)) for row in result.rows
            ]

        def execute(self, sql: str, params: Sequence[SqlValue] = ()) -> None:
            self.query(sql, params)

    def open_database(db_url: str | None) -> Database:
        """Open PostgreSQL at `db_url`, or Spin's `default` SQLite database when it is None."""
        if db_url:
            return PostgresDatabase(db_url)
        return SqliteDatabase()
