"""Fixtures for unit tests: the shared library on sys.path and an in-memory SQLite database.

The database is CPython's sqlite3 with db/sqlite.sql applied, behind the same
`Database` protocol the components use, so the SQL in `profiles` and `posts` runs for
real while the handlers run without a component.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO_ROOT / "shared"
if str(SHARED_DIR) not in sys.path:
    sys.path.insert(0, str(SHARED_DIR))

from codethings.db import DatabaseError, Row, SqlValue
from codethings.web import Context


class SqliteTestDatabase:
    """`Database` over CPython's sqlite3, raising `DatabaseError` like the Spin version."""

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.statements: list[str] = []

    def query(self, sql: str, params: Sequence[SqlValue] = ()) -> list[Row]:
        self.statements.append(sql)
        try:
            cursor = self.connection.execute(sql, list(params))
            names = [column[0] for column in cursor.description or ()]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error as error:
            raise DatabaseError("io", str(error)) from error
        self.connection.commit()
        return rows

    def execute(self, sql: str, params: Sequence[SqlValue] = ()) -> None:
        self.query(sql, params)


class StepClock:
    """A clock that advances one millisecond on every call, so timestamps differ."""

    def __init__(self, start: datetime = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)) -> None:
        self.current = start

    def __call__(self) -> datetime:
        self.current += timedelta(milliseconds=1)
        return self.current


class CountingIds:
    """Post ids `000...001`, `000...002`, ... in call order."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.count:032x}"


@pytest.fixture
def database() -> Iterator[SqliteTestDatabase]:
    connection = sqlite3.connect(":memory:")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.executescript((REPO_ROOT / "db" / "sqlite.sql").read_text(encoding="utf-8"))
    yield SqliteTestDatabase(connection)
    connection.close()


@pytest.fixture
def make_context(database: SqliteTestDatabase) -> Callable[[str], Context]:
    """Return a factory of handler contexts for a given caller, sharing one clock and ids."""
    clock = StepClock()
    ids = CountingIds()

    def factory(sub: str) -> Context:
        return Context(sub=sub, db=database, now=clock, new_id=ids)

    return factory


def load_component_module(component_dir: str) -> ModuleType:
    """Import `<component_dir>/app.py` under a unique module name."""
    path = REPO_ROOT / component_dir / "app.py"
    name = f"{component_dir}_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
