"""SQLite host tests: the sqlite_probe component through the real engine, plus the service."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from spinlocal.engine import ComponentRunner
from spinlocal.hosts.sqlite import (
    SqliteConfigError,
    SqliteDatabases,
    SqliteError,
    SqliteStartupError,
)
from spinlocal.runtime_config import SqliteDatabaseConfig
from tests.runtime.datahost_helpers import make_runner, make_services, report


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / ".spin"


@pytest.fixture
def databases(state_dir: Path, tmp_path: Path) -> SqliteDatabases:
    extra = SqliteDatabaseConfig(label="archive", path=tmp_path / "data" / "archive.db")
    return SqliteDatabases(state_dir, {"archive": extra})


@pytest.fixture
def runner(state_dir: Path, databases: SqliteDatabases) -> ComponentRunner:
    services = make_services(state_dir, sqlite=databases)
    return make_runner(
        "sqlite_probe", services, sqlite_databases=("default", "archive", "unconfigured")
    )


def run_steps(runner: ComponentRunner, *steps: dict[str, Any], **options: Any) -> list[Any]:
    body = {"api": "v2", "steps": list(steps), **options}
    result = report(runner, body)
    assert result["open"] == "ok", result
    results: list[Any] = result["results"]
    return results


def sql(statement: str, *params: list[Any]) -> dict[str, Any]:
    return {"sql": statement, "params": list(params)}


# --- values -------------------------------------------------------------------------------


def test_values_round_trip(runner: ComponentRunner) -> None:
    params: list[list[Any]] = [
        ["Integer", -9223372036854775808], ["Integer", 9223372036854775807],
        ["Real", "-0.0"], ["Real", "inf"], ["Real", "0.1"],
        ["Text", "héllo ✓ 😀"], ["Blob", bytes(range(256)).hex()], ["Null"],
    ]
    placeholders = ", ".join("?" for _ in params)
    [result] = run_steps(runner, sql(f"SELECT {placeholders}", *params))
    row = result["ok"]["rows"][0]

    assert row[0] == {"case": "Value_Integer", "value": -9223372036854775808}
    assert row[1] == {"case": "Value_Integer", "value": 9223372036854775807}
    assert row[2] == {"case": "Value_Real", "value": {"float": "-0.0"}}
    assert row[3] == {"case": "Value_Real", "value": {"float": "inf"}}
    assert row[4] == {"case": "Value_Real", "value": {"float": "0.1"}}
    assert row[5] == {"case": "Value_Text", "value": "héllo ✓ 😀"}
    assert row[6] == {"case": "Value_Blob", "value": {"hex": bytes(range(256)).hex()}}
    assert row[7] == {"case": "Value_Null"}


def test_columns_from_table(runner: ComponentRunner) -> None:
    results = run_steps(
        runner,
        sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, score REAL)"),
        sql("INSERT INTO notes (body, score) VALUES (?, ?)", ["Text", "a"], ["Real", "1.5"]),
        sql("SELECT id, body, score FROM notes"),
        sql("SELECT id FROM notes WHERE id < 0"),
    )
    assert results[0] == {"ok": {"columns": [], "rows": []}}
    assert results[2]["ok"]["columns"] == ["id", "body", "score"]
    assert results[2]["ok"]["rows"] == [[
        {"case": "Value_Integer", "value": 1},
        {"case": "Value_Text", "value": "a"},
        {"case": "Value_Real", "value": {"float": "1.5"}},
    ]]
    assert results[3] == {"ok": {"columns": ["id"], "rows": []}}


def test_injection_stays_parameter(runner: ComponentRunner) -> None:
    attack = "x'); DROP TABLE people; --"
    results = run_steps(
        runner,
        sql("CREATE TABLE people (name TEXT)"),
        sql("INSERT INTO people VALUES (?)", ["Text", attack]),
        sql("SELECT name FROM people"),
    )
    assert results[2]["ok"]["rows"] == [[{"case": "Value_Text", "value": attack}]]


# --- access and errors --------------------------------------------------------------------


def test_unlisted_database_denied(runner: ComponentRunner) -> None:
    result = report(runner, {"api": "v2", "database": "secret"})
    assert result["open"] == {"err": {"case": "Error_AccessDenied"}}


def test_listed_unknown_database(runner: ComponentRunner) -> None:
    result = report(runner, {"api": "v2", "database": "unconfigured"})
    assert result["open"] == {"err": {"case": "Error_NoSuchDatabase"}}


def test_default_database_path(runner: ComponentRunner, state_dir: Path) -> None:
    run_steps(runner, sql("CREATE TABLE marker (n INTEGER)"))
    with sqlite3.connect(state_dir / "sqlite_db.db") as db:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    assert names == ["marker"]


def test_labelled_database_path(runner: ComponentRunner, tmp_path: Path) -> None:
    run_steps(runner, sql("CREATE TABLE archived (n INTEGER)"), database="archive")
    with sqlite3.connect(tmp_path / "data" / "archive.db") as db:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    assert names == ["archived"]


def test_query_error_is_io(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, sql("SELECT * FROM missing"))
    assert result["err"] == {"case": "Error_Io", "value": "no such table: missing"}


def test_two_statements_rejected(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, sql("SELECT 1; SELECT 2"))
    assert result["err"]["case"] == "Error_Io"


def test_wrong_parameter_count_is_io(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, sql("SELECT ?, ?", ["Integer", 1]))
    assert result["err"]["case"] == "Error_Io"


def test_v3_counters(runner: ComponentRunner) -> None:
    results = run_steps(
        runner,
        sql("CREATE TABLE c (n INTEGER)"),
        sql("INSERT INTO c VALUES (1), (2), (3)"),
        sql("UPDATE c SET n = n + 1 WHERE n > 1"),
        api="v3",
        counters=True,
    )
    assert results[1]["changes"] == 3
    assert results[1]["last_insert_rowid"] == 3
    assert results[2]["changes"] == 2


def test_leaked_transaction_rolled_back(runner: ComponentRunner) -> None:
    run_steps(runner, sql("CREATE TABLE t (n INTEGER)"))
    run_steps(runner, sql("BEGIN"), sql("INSERT INTO t VALUES (1)"), leak=True)
    [result] = run_steps(runner, sql("SELECT count(*) FROM t"))
    assert result["ok"]["rows"] == [[{"case": "Value_Integer", "value": 0}]]


# --- the service --------------------------------------------------------------------------


def test_service_access_rules(databases: SqliteDatabases) -> None:
    with pytest.raises(SqliteError) as denied:
        databases.open("archive", ["default"])
    assert denied.value.case == "access-denied"
    with pytest.raises(SqliteError) as unknown:
        databases.open("other", ["other"])
    assert unknown.value.case == "no-such-database"


def test_wal_journal_mode(databases: SqliteDatabases, state_dir: Path) -> None:
    connection = databases.open("default", ["default"])
    connection.close()
    with sqlite3.connect(state_dir / "sqlite_db.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_startup_file_and_statement(databases: SqliteDatabases, tmp_path: Path) -> None:
    schema = tmp_path / "schema.sql"
    schema.write_text(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n"
        "INSERT INTO users (name) VALUES ('a; b');\n"
        "-- a comment\nINSERT INTO users (name) VALUES ('c');\n"
    )
    databases.run_startup_statements([f"@{schema}", "INSERT INTO users (name) VALUES ('d')"])

    connection = databases.open("default", ["default"])
    result = connection.execute("SELECT name FROM users ORDER BY id", [])
    connection.close()
    assert result.rows == [("a; b",), ("c",), ("d",)]


def test_startup_error_names_item(databases: SqliteDatabases) -> None:
    with pytest.raises(SqliteStartupError, match="CREATE TABLEX"):
        databases.run_startup_statements(["CREATE TABLEX broken"])


def test_startup_missing_file(databases: SqliteDatabases, tmp_path: Path) -> None:
    with pytest.raises(SqliteStartupError, match="missing.sql"):
        databases.run_startup_statements([f"@{tmp_path / 'missing.sql'}"])


def _insert_rows(state_dir: str, worker: int, count: int) -> None:
    databases = SqliteDatabases(Path(state_dir))
    for index in range(count):
        connection = databases.open("default", ["default"])
        connection.execute("INSERT INTO hits (worker, n) VALUES (?, ?)", [worker, index])
        connection.close()
    databases.close()


def test_processes_share_file(databases: SqliteDatabases, state_dir: Path) -> None:
    databases.run_startup_statements(["CREATE TABLE hits (worker INTEGER, n INTEGER)"])
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_insert_rows, args=(str(state_dir), worker, 200))
        for worker in range(3)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)

    assert [process.exitcode for process in workers] == [0, 0, 0]
    connection = databases.open("default", ["default"])
    result = connection.execute("SELECT count(*) FROM hits", [])
    connection.close()
    assert result.rows == [(600,)]


def test_check_components_undefined(databases: SqliteDatabases) -> None:
    with pytest.raises(SqliteConfigError) as raised:
        databases.check_components({"api": ["default", "cache"], "web": ["archive"]})
    assert "Component api uses database 'cache'" in str(raised.value)
    assert "archive" not in str(raised.value)


def test_check_components_defined(databases: SqliteDatabases) -> None:
    databases.check_components({"api": ["default", "archive"], "web": []})
