"""PostgreSQL host tests: the pg_probe component against a real server on 127.0.0.1:5432.

The module creates a database of its own and drops it at the end. When the server is
down these tests fail (they do not skip); start it with
`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from spinlocal.engine import ComponentRunner
from spinlocal.hosts.postgres import PostgresConnections
from spinlocal.hosts.postgres_types import civil_to_days, days_to_civil
from tests.runtime.datahost_helpers import call, make_runner, make_services, report

SERVER = "host=127.0.0.1 port=5432 user=postgres"
DATABASE = f"spinlocal_pg_test_{os.getpid()}"
ADDRESS = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
ALLOWED = ("postgres://127.0.0.1:5432",)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}"')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    yield DATABASE
    with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pool(database: str) -> Iterator[PostgresConnections]:
    connections = PostgresConnections()
    yield connections
    connections.close()


@pytest.fixture(scope="module")
def runner(pool: PostgresConnections, tmp_path_factory: pytest.TempPathFactory) -> ComponentRunner:
    services = make_services(tmp_path_factory.mktemp("pg-state"), postgres=pool)
    return make_runner("pg_probe", services, allowed_outbound_hosts=ALLOWED)


def run_steps(runner: ComponentRunner, *steps: dict[str, Any], api: str = "v2") -> list[Any]:
    result = report(runner, {"api": api, "address": ADDRESS, "steps": list(steps)})
    assert result["open"] == "ok", result
    results: list[Any] = result["results"]
    return results


def query(sql: str, *params: Any) -> dict[str, Any]:
    return {"op": "query", "sql": sql, "params": list(params)}


def execute(sql: str, *params: Any) -> dict[str, Any]:
    return {"op": "execute", "sql": sql, "params": list(params)}


def single_row(result: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    assert "ok" in result, result
    rows = result["ok"]["rows"]
    assert len(rows) == 1, rows
    return result["ok"]["columns"], rows[0]


def fl(text: str) -> dict[str, str]:
    return {"float": text}


# --- type mapping -------------------------------------------------------------------------


def test_integers_at_limits(runner: ComponentRunner) -> None:
    limits = [
        ["Int16", -32768], ["Int16", 32767],
        ["Int32", -2147483648], ["Int32", 2147483647],
        ["Int64", -9223372036854775808], ["Int64", 9223372036854775807],
    ]
    [result] = run_steps(runner, query("SELECT $1::int2, $2::int2, $3::int4, $4::int4, $5::int8, $6::int8", *limits))
    columns, row = single_row(result)

    assert [c[1] for c in columns] == ["INT16", "INT16", "INT32", "INT32", "INT64", "INT64"]
    for (case, value), cell in zip(limits, row, strict=True):
        assert cell == {"case": f"DbValue_{case}", "value": value}


def test_integer_columns_from_table(runner: ComponentRunner) -> None:
    results = run_steps(
        runner,
        execute("CREATE TABLE ints (a int2, b int4, c int8)"),
        execute("INSERT INTO ints VALUES (-32768, 2147483647, -9223372036854775808)"),
        query("SELECT a, b, c FROM ints"),
        execute("DROP TABLE ints"),
    )
    columns, row = single_row(results[2])
    assert columns == [["a", "INT16"], ["b", "INT32"], ["c", "INT64"]]
    assert row[0]["value"] == -32768
    assert row[1]["value"] == 2147483647
    assert row[2]["value"] == -9223372036854775808


def test_float_special_values(runner: ComponentRunner) -> None:
    params = [
        ["Floating32", "-0.0"], ["Floating32", "inf"], ["Floating32", "-inf"],
        ["Floating32", "3.4028234663852886e+38"],
        ["Floating64", "-0.0"], ["Floating64", "inf"], ["Floating64", "nan"],
        ["Floating64", "5e-324"], ["Floating64", "0.1"],
    ]
    sql = "SELECT " + ", ".join(
        f"${i}::{'float4' if i <= 4 else 'float8'}" for i in range(1, len(params) + 1)
    )
    [result] = run_steps(runner, query(sql, *params))
    columns, row = single_row(result)

    assert [c[1] for c in columns] == ["FLOATING32"] * 4 + ["FLOATING64"] * 5
    expected = ["-0.0", "inf", "-inf", "3.4028234663852886e+38",
                "-0.0", "inf", "nan", "5e-324", "0.1"]
    for text, cell in zip(expected, row, strict=True):
        assert cell["value"] == fl(text)


def test_float4_rounds_to_single(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT 0.1::float4"))
    _, row = single_row(result)
    single = struct.unpack(">f", struct.pack(">f", 0.1))[0]
    assert row[0] == {"case": "DbValue_Floating32", "value": fl(repr(single))}


def test_text_unicode(runner: ComponentRunner) -> None:
    text = "héllo ✓ 😀 ünïcödé 中文"
    [result] = run_steps(runner, query("SELECT $1 AS t", ["Str", text]))
    columns, row = single_row(result)
    assert columns == [["t", "STR"]]
    assert row[0] == {"case": "DbValue_Str", "value": text}


def test_varchar_and_bpchar(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT 'ab'::varchar(5), 'ab'::char(4)"))
    columns, row = single_row(result)
    assert [c[1] for c in columns] == ["STR", "STR"]
    assert row[0]["value"] == "ab"
    assert row[1]["value"] == "ab  "


def test_bytea_all_byte_values(runner: ComponentRunner) -> None:
    data = bytes(range(256))
    [result] = run_steps(runner, query("SELECT $1::bytea AS b", ["Binary", data.hex()]))
    columns, row = single_row(result)
    assert columns == [["b", "BINARY"]]
    assert row[0] == {"case": "DbValue_Binary", "value": {"hex": data.hex()}}


def test_bytea_empty(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT ''::bytea"))
    _, row = single_row(result)
    assert row[0] == {"case": "DbValue_Binary", "value": {"hex": ""}}


def test_bool_values(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT $1::bool, $2::bool", ["Boolean", True], ["Boolean", False]))
    columns, row = single_row(result)
    assert [c[1] for c in columns] == ["BOOLEAN", "BOOLEAN"]
    assert row[0] == {"case": "DbValue_Boolean", "value": True}
    assert row[1] == {"case": "DbValue_Boolean", "value": False}


def test_null_parameter_and_column(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT $1::int4 AS a, NULL::text AS b", ["DbNull"]))
    columns, row = single_row(result)
    assert columns == [["a", "INT32"], ["b", "STR"]]
    assert row[0] == {"case": "DbValue_DbNull"}
    assert row[1] == {"case": "DbValue_DbNull"}


def test_unsupported_types_v2(runner: ComponentRunner) -> None:
    sql = "SELECT now() AS n, 1.5::numeric AS d, NULL::numeric AS z, 'x'::name AS m"
    [result] = run_steps(runner, query(sql))
    columns, row = single_row(result)
    assert columns == [["n", "OTHER"], ["d", "OTHER"], ["z", "OTHER"], ["m", "OTHER"]]
    assert row[0] == {"case": "DbValue_Unsupported"}
    assert row[1] == {"case": "DbValue_Unsupported"}
    assert row[2] == {"case": "DbValue_DbNull"}
    assert row[3] == {"case": "DbValue_Unsupported"}


def test_dates_v3(runner: ComponentRunner) -> None:
    params: list[list[Any]] = [["Date", [2024, 2, 29]], ["Time", [23, 59, 59, 999999000]],
              ["Datetime", [1999, 12, 31, 23, 59, 59, 123456789]], ["Timestamp", 0]]
    sql = (
        "SELECT $1::date AS d, $2::time AS t, $3::timestamp AS dt, $4::timestamptz AS ts, "
        "'0044-03-15 BC'::date AS bc"
    )
    [result] = run_steps(runner, query(sql, *params), api="v3")
    columns, row = single_row(result)

    assert [c[1] for c in columns] == ["DATE", "TIME", "DATETIME", "DATETIME", "DATE"]
    assert row[0] == {"case": "DbValue_Date", "value": [2024, 2, 29]}
    assert row[1] == {"case": "DbValue_Time", "value": [23, 59, 59, 999999000]}
    # PostgreSQL keeps microseconds, so the nanoseconds are truncated.
    assert row[2] == {"case": "DbValue_Datetime", "value": [1999, 12, 31, 23, 59, 59, 123456000]}
    assert row[3] == {"case": "DbValue_Datetime", "value": [1970, 1, 1, 0, 0, 0, 0]}
    assert row[4] == {"case": "DbValue_Date", "value": [-43, 3, 15]}


def test_now_is_datetime_v3(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT now() AS n"), api="v3")
    columns, row = single_row(result)
    assert columns == [["n", "DATETIME"]]
    assert row[0]["case"] == "DbValue_Datetime"


def test_unsupported_types_v3(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT gen_random_uuid() AS u"), api="v3")
    columns, row = single_row(result)
    assert columns == [["u", "OTHER"]]
    assert row[0] == {"case": "DbValue_Unsupported"}


def test_invalid_date_parameter(runner: ComponentRunner) -> None:
    results = run_steps(
        runner,
        query("SELECT $1", ["Date", [2023, 2, 29]]),
        execute("SELECT $1", ["Date", [2023, 2, 29]]),
        api="v3",
    )
    assert results[0]["err"]["case"] == "Error_BadParameter"
    assert results[1]["err"]["case"] == "Error_ValueConversionFailed"
    assert "invalid date" in results[0]["err"]["value"]


def test_parameter_type_must_match(runner: ComponentRunner) -> None:
    results = run_steps(
        runner,
        query("SELECT $1::int8", ["Int32", 1]),
        query("SELECT $1", ["Int32", 1]),
        execute("SELECT $1::int4", ["Int64", 1]),
    )
    assert results[0]["err"]["case"] == "Error_QueryFailed"
    assert "cannot convert the int32 value of $1 to the Postgres type int8" in (
        results[0]["err"]["value"]
    )
    assert "to the Postgres type text" in results[1]["err"]["value"]
    assert results[2]["err"]["case"] == "Error_QueryFailed"


def test_parameter_types_accepted(runner: ComponentRunner) -> None:
    results = run_steps(
        runner,
        execute("CREATE TABLE typed (v varchar(10), c char(3), n name, t text)"),
        execute("INSERT INTO typed VALUES ($1, $2, $3, $4)",
                ["Str", "a"], ["Str", "b"], ["Str", "c"], ["Str", "d"]),
        execute("INSERT INTO typed VALUES ($1, $2, $3, $4)",
                ["DbNull"], ["DbNull"], ["DbNull"], ["DbNull"]),
        query("SELECT $1::\"char\" AS ch", ["Int8", 65]),
        execute("DROP TABLE typed"),
    )
    assert results[1] == {"ok": 1}
    assert results[2] == {"ok": 1}
    assert results[3]["ok"]["rows"] == [[{"case": "DbValue_Unsupported"}]]


def test_parameter_count_mismatch(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT $1::int4, $2::int4", ["Int32", 1]))
    assert result["err"]["case"] == "Error_QueryFailed"
    assert "expected 2 parameters but got 1" in result["err"]["value"]


def test_empty_result_has_no_columns(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT 1 AS a WHERE false"))
    assert result == {"ok": {"columns": [], "rows": []}}


def test_many_rows_in_order(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT g, g::text FROM generate_series(1, 500) g"))
    rows = result["ok"]["rows"]
    assert len(rows) == 500
    assert [r[0]["value"] for r in rows] == list(range(1, 501))
    assert rows[-1][1]["value"] == "500"


def test_calendar_round_trip() -> None:
    for days in (-2451545 - 1000, -730120, -1, 0, 1, 59, 60, 365, 36524, 2932896):
        assert civil_to_days(*days_to_civil(days)) == days
    assert days_to_civil(0) == (2000, 1, 1)
    assert days_to_civil(-1) == (1999, 12, 31)
    assert days_to_civil(59) == (2000, 2, 29)


# --- errors -------------------------------------------------------------------------------


def test_unsigned_parameter_rejected(runner: ComponentRunner) -> None:
    for case in ("Uint8", "Uint16", "Uint32", "Uint64"):
        [result] = run_steps(runner, query("SELECT $1", [case, 1]))
        assert result["err"] == {
            "case": "Error_ValueConversionFailed",
            "value": "Postgres does not support unsigned integers",
        }


def test_missing_table_query_failed(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT * FROM no_such_table"))
    assert result["err"]["case"] == "Error_QueryFailed"
    assert "relation \"no_such_table\" does not exist" in result["err"]["value"]
    assert "SQLSTATE 42P01" in result["err"]["value"]


def test_syntax_error_query_failed(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, execute("SELEC 1"))
    assert result["err"]["case"] == "Error_QueryFailed"
    assert "SQLSTATE 42601" in result["err"]["value"]


def test_constraint_error_has_detail(runner: ComponentRunner) -> None:
    results = run_steps(
        runner,
        execute("CREATE TABLE uniq (id int PRIMARY KEY)"),
        execute("INSERT INTO uniq VALUES (1)"),
        execute("INSERT INTO uniq VALUES (1)"),
        execute("DROP TABLE uniq"),
    )
    error = results[2]["err"]
    assert error["case"] == "Error_QueryFailed"
    assert "SQLSTATE 23505" in error["value"]
    assert "Key (id)=(1) already exists" in error["value"]


def test_v3_query_failed(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT 1/0"), api="v3")
    assert result["err"]["case"] == "Error_QueryFailed"
    assert "SQLSTATE 22012" in result["err"]["value"]


def test_wrong_parameter_count(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT $1, $2", ["Int32", 1]))
    assert result["err"]["case"] == "Error_QueryFailed"


def test_denied_host_connection_failed(runner: ComponentRunner) -> None:
    result = report(runner, {"api": "v2", "address": "postgres://u:secret@db.example.com/x"})
    error = result["open"]["err"]
    assert error["case"] == "Error_ConnectionFailed"
    assert "postgres://db.example.com is not permitted" in error["value"]
    assert "allowed_outbound_hosts" in error["value"]
    assert "secret" not in error["value"]


def test_denied_port_connection_failed(runner: ComponentRunner) -> None:
    result = report(runner, {"api": "v3", "address": "host=127.0.0.1 port=5433 dbname=x"})
    assert result["open"]["err"]["case"] == "Error_ConnectionFailed"
    assert "postgres://127.0.0.1:5433 is not permitted" in result["open"]["err"]["value"]


def test_unreachable_server_connection_failed(
    pool: PostgresConnections, tmp_path: Path
) -> None:
    services = make_services(tmp_path, postgres=pool)
    probe = make_runner("pg_probe", services, allowed_outbound_hosts=("postgres://127.0.0.1:1",))
    result = report(probe, {"api": "v2", "address": "postgres://postgres@127.0.0.1:1/x"})
    assert result["open"]["err"]["case"] == "Error_ConnectionFailed"
    assert "127.0.0.1" in result["open"]["err"]["value"]


def test_unknown_database_connection_failed(runner: ComponentRunner) -> None:
    address = "postgres://postgres@127.0.0.1:5432/spinlocal_no_such_db"
    result = report(runner, {"api": "v2", "address": address})
    assert result["open"]["err"]["case"] == "Error_ConnectionFailed"
    assert "spinlocal_no_such_db" in result["open"]["err"]["value"]


def test_invalid_connection_string(runner: ComponentRunner) -> None:
    result = report(runner, {"api": "v2", "address": "not a connection string"})
    assert result["open"]["err"]["case"] == "Error_ConnectionFailed"


def test_no_allowed_hosts_denies(pool: PostgresConnections, tmp_path: Path) -> None:
    probe = make_runner("pg_probe", make_services(tmp_path, postgres=pool))
    result = report(probe, {"api": "v2", "address": ADDRESS})
    assert result["open"]["err"]["case"] == "Error_ConnectionFailed"


# --- statements ---------------------------------------------------------------------------


def test_execute_returns_row_count(runner: ComponentRunner) -> None:
    results = run_steps(
        runner,
        execute("CREATE TABLE counted (n int)"),
        execute("INSERT INTO counted SELECT generate_series(1, 3)"),
        execute("UPDATE counted SET n = n + 1 WHERE n > 1"),
        execute("DELETE FROM counted"),
        execute("DROP TABLE counted"),
    )
    assert [r["ok"] for r in results] == [0, 3, 2, 3, 0]


def test_injection_stays_parameter(runner: ComponentRunner) -> None:
    attack = "x'); DROP TABLE victims; --"
    results = run_steps(
        runner,
        execute("CREATE TABLE victims (name text)"),
        execute("INSERT INTO victims (name) VALUES ($1)", ["Str", attack]),
        query("SELECT name FROM victims WHERE name = $1", ["Str", attack]),
        query("SELECT count(*)::int4 FROM victims"),
        execute("DROP TABLE victims"),
    )
    assert results[1] == {"ok": 1}
    assert results[2]["ok"]["rows"] == [[{"case": "DbValue_Str", "value": attack}]]
    assert results[3]["ok"]["rows"] == [[{"case": "DbValue_Int32", "value": 1}]]


# --- pooling and request-end cleanup ------------------------------------------------------


def test_pool_reuses_connection(pool: PostgresConnections, tmp_path: Path) -> None:
    probe = make_runner("pg_probe", make_services(tmp_path, postgres=pool),
                        allowed_outbound_hosts=ALLOWED)
    address = ADDRESS + "?application_name=reuse"
    body = {"api": "v2", "address": address, "steps": [query("SELECT pg_backend_pid()")]}
    opened_before = pool.opened

    pids = [report(probe, body)["results"][0]["ok"]["rows"][0][0]["value"] for _ in range(3)]

    assert pool.opened - opened_before == 1
    assert len(set(pids)) == 1
    assert pool.idle_count(address) == 1


def test_leaked_connection_returned(pool: PostgresConnections, tmp_path: Path) -> None:
    probe = make_runner("pg_probe", make_services(tmp_path, postgres=pool),
                        allowed_outbound_hosts=ALLOWED)
    address = ADDRESS + "?application_name=leak"
    body = {"api": "v2", "address": address, "steps": [query("SELECT 1")], "leak": True}

    report(probe, body)
    assert pool.idle_count(address) == 1
    opened_before = pool.opened
    report(probe, body)
    assert pool.opened == opened_before
    assert pool.idle_count(address) == 1


def test_failed_request_returns_connection(pool: PostgresConnections, tmp_path: Path) -> None:
    probe = make_runner("pg_probe", make_services(tmp_path, postgres=pool),
                        allowed_outbound_hosts=ALLOWED)
    address = ADDRESS + "?application_name=trap"
    status, _ = call(probe, {"api": "v2", "address": address, "fail_after": True,
                             "steps": [query("SELECT 1")]})
    assert status == 500
    assert pool.idle_count(address) == 1


def test_open_transaction_rolled_back(runner: ComponentRunner, pool: PostgresConnections) -> None:
    run_steps(runner, execute("CREATE TABLE tx (n int)"))
    body = {"api": "v2", "address": ADDRESS, "leak": True,
            "steps": [execute("BEGIN"), execute("INSERT INTO tx VALUES (1)")]}
    report(runner, body)

    results = run_steps(runner, query("SELECT count(*)::int4 FROM tx"), execute("DROP TABLE tx"))
    assert results[0]["ok"]["rows"] == [[{"case": "DbValue_Int32", "value": 0}]]


def test_session_state_reset(runner: ComponentRunner) -> None:
    run_steps(runner, execute("SET statement_timeout = 1234"),
              execute("CREATE TEMP TABLE scratch (n int)"))
    results = run_steps(
        runner,
        query("SHOW statement_timeout"),
        query("SELECT count(*)::int4 FROM pg_tables WHERE tablename = 'scratch'"),
    )
    assert results[0]["ok"]["rows"] == [[{"case": "DbValue_Str", "value": "0"}]]
    assert results[1]["ok"]["rows"] == [[{"case": "DbValue_Int32", "value": 0}]]


def test_broken_connection_not_pooled(pool: PostgresConnections) -> None:
    address = f"host=127.0.0.1 user=postgres dbname={DATABASE} application_name=broken"
    connection = pool.connect(address)
    pid = connection.pgconn.backend_pid if connection.pgconn else 0
    with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    connection.close()
    assert pool.idle_count(address) == 0


# --- version 4.0.0 ------------------------------------------------------------------------


def v4_cell(result: dict[str, Any], index: int = 0) -> Any:
    _, row = single_row(result)
    return row[index]


def test_v4_basic_types(runner: ComponentRunner) -> None:
    [result] = run_steps(
        runner, query("SELECT $1::int8 AS a, 'x'::text AS b", ["Int64", 7]), api="v4"
    )
    columns, row = single_row(result)
    assert columns == [["a", {"case": "DbDataType_Int64"}], ["b", {"case": "DbDataType_Str"}]]
    assert row[0] == {"case": "DbValue_Int64", "value": 7}


def test_v4_uuid_round_trip(runner: ComponentRunner) -> None:
    value = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    [result] = run_steps(runner, query("SELECT $1::uuid AS u", ["Uuid", value.upper()]), api="v4")
    columns, row = single_row(result)
    assert columns == [["u", {"case": "DbDataType_Uuid"}]]
    assert row[0] == {"case": "DbValue_Uuid", "value": value}


def test_v4_invalid_uuid(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT $1", ["Uuid", "not-a-uuid"]), api="v4")
    assert result["err"] == {"case": "Error_BadParameter", "value": "invalid UUID not-a-uuid"}


def test_v4_jsonb_to_json(runner: ComponentRunner) -> None:
    document = b'{"k": [true]}'
    [result] = run_steps(runner, query("SELECT $1::json AS j", ["Jsonb", document.hex()]),
                         api="v4")
    cell = v4_cell(result)
    assert cell == {"case": "DbValue_Unsupported", "value": {"hex": document.hex()}}


def test_v4_jsonb_round_trip(runner: ComponentRunner) -> None:
    document = b'{"b": [1, 2.5, null], "a": "\xc3\xa9"}'
    [result] = run_steps(runner, query("SELECT $1::jsonb AS j", ["Jsonb", document.hex()]), api="v4")
    cell = v4_cell(result)
    assert cell["case"] == "DbValue_Jsonb"
    assert bytes.fromhex(cell["value"]["hex"]) == '{"a":"é","b":[1,2.5,null]}'.encode()


def test_v4_invalid_jsonb(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, execute("SELECT $1", ["Jsonb", b"{oops".hex()]), api="v4")
    assert result["err"]["case"] == "Error_ValueConversionFailed"
    assert "invalid JSON" in result["err"]["value"]


def test_v4_decimal_values(runner: ComponentRunner) -> None:
    sql = "SELECT $1::numeric, 1.50::numeric, -0.001::numeric, 12345678901234567890::numeric"
    [result] = run_steps(runner, query(sql, ["Decimal", "-123.4500"]), api="v4")
    _, row = single_row(result)
    assert [cell["value"] for cell in row] == [
        "-123.4500", "1.50", "-0.001", "12345678901234567890"
    ]


def test_v4_decimal_nan_fails(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT 'NaN'::numeric"), api="v4")
    assert result["err"]["case"] == "Error_QueryFailed"
    assert result["err"]["value"]["case"] == "QueryError_Text"


def test_v4_ranges(runner: ComponentRunner) -> None:
    params = [
        ["RangeInt32", [[1, "INCLUSIVE"], [5, "INCLUSIVE"]]],
        ["RangeInt64", [None, [9, "EXCLUSIVE"]]],
        ["RangeDecimal", [["1.5", "EXCLUSIVE"], None]],
    ]
    [result] = run_steps(
        runner, query("SELECT $1::int4range, $2::int8range, $3::numrange, 'empty'::int4range", *params), api="v4"
    )
    _, row = single_row(result)
    # PostgreSQL stores integer ranges as [lower, upper).
    assert row[0] == {"case": "DbValue_RangeInt32",
                      "value": [[1, "INCLUSIVE"], [6, "EXCLUSIVE"]]}
    assert row[1] == {"case": "DbValue_RangeInt64", "value": [None, [9, "EXCLUSIVE"]]}
    assert row[2] == {"case": "DbValue_RangeDecimal", "value": [["1.5", "EXCLUSIVE"], None]}
    assert row[3] == {"case": "DbValue_RangeInt32", "value": [None, None]}


def test_v4_arrays(runner: ComponentRunner) -> None:
    params = [
        ["ArrayInt32", [1, None, -2147483648]],
        ["ArrayInt64", []],
        ["ArrayDecimal", ["1.25", None]],
        ["ArrayStr", ['a "quoted", {braced} \\ value', None, "NULL"]],
    ]
    [result] = run_steps(runner, query("SELECT $1::int4[], $2::int8[], $3::numeric[], $4::text[]", *params), api="v4")
    columns, row = single_row(result)
    assert [c[1]["case"] for c in columns] == [
        "DbDataType_ArrayInt32", "DbDataType_ArrayInt64",
        "DbDataType_ArrayDecimal", "DbDataType_ArrayStr",
    ]
    assert row[0]["value"] == [1, None, -2147483648]
    assert row[1]["value"] == []
    assert row[2]["value"] == ["1.25", None]
    assert row[3]["value"] == ['a "quoted", {braced} \\ value', None, "NULL"]


def test_v4_two_dimensional_array_fails(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT '{{1,2},{3,4}}'::int4[]"), api="v4")
    assert result["err"]["case"] == "Error_QueryFailed"
    assert "dimension" in result["err"]["value"]["value"]


def test_v4_interval(runner: ComponentRunner) -> None:
    [result] = run_steps(
        runner,
        query("SELECT $1::interval AS i, '1 year 2 days 00:00:03'::interval",
              ["Interval", [1500000, -3, 14]]),
        api="v4",
    )
    columns, row = single_row(result)
    assert columns[0] == ["i", {"case": "DbDataType_Interval"}]
    assert row[0]["value"] == {"case": "Interval", "micros": 1500000, "days": -3, "months": 14}
    assert row[1]["value"] == {"case": "Interval", "micros": 3000000, "days": 2, "months": 12}


def test_v4_other_type_named(runner: ComponentRunner) -> None:
    [result] = run_steps(runner, query("SELECT '{\"a\": 1}'::json AS j, 'x'::name AS n, "
                                       "'1.2.3.4'::inet AS i, NULL::json AS z"), api="v4")
    columns, row = single_row(result)
    assert columns == [
        ["j", {"case": "DbDataType_Other", "value": "json"}],
        ["n", {"case": "DbDataType_Other", "value": "name"}],
        ["i", {"case": "DbDataType_Other", "value": "inet"}],
        ["z", {"case": "DbDataType_Other", "value": "json"}],
    ]
    assert row[0] == {"case": "DbValue_Unsupported", "value": {"hex": b'{"a": 1}'.hex()}}
    assert row[3] == {"case": "DbValue_DbNull"}


def test_v4_user_type_named(runner: ComponentRunner) -> None:
    results = run_steps(
        runner,
        execute("CREATE TYPE mood AS ENUM ('sad', 'happy')"),
        query("SELECT 'happy'::mood AS m"),
        execute("DROP TYPE mood"),
        api="v4",
    )
    columns, row = single_row(results[1])
    assert columns == [["m", {"case": "DbDataType_Other", "value": "mood"}]]
    assert row[0] == {"case": "DbValue_Unsupported", "value": {"hex": b"happy".hex()}}


def test_v4_db_error_fields(runner: ComponentRunner) -> None:
    results = run_steps(
        runner,
        execute("CREATE TABLE v4uniq (id int CONSTRAINT v4uniq_pk PRIMARY KEY)"),
        execute("INSERT INTO v4uniq VALUES (1)"),
        execute("INSERT INTO v4uniq VALUES (1)"),
        execute("DROP TABLE v4uniq"),
        api="v4",
    )
    error = results[2]["err"]
    assert error["case"] == "Error_QueryFailed"
    db_error = error["value"]["value"]
    assert error["value"]["case"] == "QueryError_DbError"
    assert db_error["code"] == "23505"
    assert db_error["severity"] == "ERROR"
    assert db_error["message"].startswith("duplicate key value violates unique constraint")
    assert db_error["detail"] == "Key (id)=(1) already exists."
    assert ["constraint", "v4uniq_pk"] in db_error["extras"]
    assert ["table", "v4uniq"] in db_error["extras"]
    assert "SQLSTATE 23505" in db_error["as_text"]


def test_v4_connection_failed_text(runner: ComponentRunner) -> None:
    result = report(runner, {"api": "v4", "address": "postgres://u@db.example.com/x"})
    assert result["open"]["err"]["case"] == "Error_ConnectionFailed"
    assert "not permitted" in result["open"]["err"]["value"]


def test_idle_connection_killed_replaced(pool: PostgresConnections, tmp_path: Path) -> None:
    probe = make_runner("pg_probe", make_services(tmp_path, postgres=pool),
                        allowed_outbound_hosts=ALLOWED)
    address = ADDRESS + "?application_name=killed"
    body = {"api": "v2", "address": address, "steps": [query("SELECT pg_backend_pid()")]}
    first_pid = report(probe, body)["results"][0]["ok"]["rows"][0][0]["value"]
    with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
    time.sleep(0.2)  # let the server's closing message arrive

    result = report(probe, body)

    assert "ok" in result["results"][0], result
    assert result["results"][0]["ok"]["rows"][0][0]["value"] != first_pid
