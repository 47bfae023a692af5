"""`row_set` turns binary-format results into WIT row sets, value by value.

A stand-in result object replaces libpq here, so every decoding branch runs without a
server: NULLs, unmapped types, decoder failures and their column numbers.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from wasmtime.component import Variant

from spinlocal.hosts.postgres_types import (
    INT4_OID,
    TEXT_OID,
    V2_COLUMNS,
    ColumnCodec,
    PostgresError,
    row_set,
)

UNMAPPED_OID = 600  # point: no codec in any interface version


class FakeResult:
    """The part of psycopg's `PGresult` that `row_set` reads."""

    def __init__(self, columns: list[tuple[bytes, int]], rows: list[list[bytes | None]]) -> None:
        self.columns = columns
        self.rows = rows

    @property
    def ntuples(self) -> int:
        return len(self.rows)

    @property
    def nfields(self) -> int:
        return len(self.columns)

    def ftype(self, index: int) -> int:
        return self.columns[index][1]

    def fname(self, index: int) -> bytes:
        return self.columns[index][0]

    def get_value(self, row: int, column: int) -> bytes | None:
        return self.rows[row][column]


def convert(result: FakeResult, codecs: dict[int, ColumnCodec] = V2_COLUMNS, **kwargs: Any) -> Any:
    return row_set(result, codecs, **kwargs)  # type: ignore[arg-type]


def test_row_set_decodes_cases_and_nulls() -> None:
    result = FakeResult(
        [(b"id", INT4_OID), (b"name", TEXT_OID)],
        [[struct.pack(">i", 7), "żółw".encode()], [struct.pack(">i", -1), None]],
    )

    converted = convert(result)

    assert converted.rows == [
        [Variant("int32", 7), Variant("str", "żółw")],
        [Variant("int32", -1), Variant("db-null")],
    ]
    assert [vars(column) for column in converted.columns] == [
        {"name": "id", "data-type": "int32"},
        {"name": "name", "data-type": "str"},
    ]


def test_row_set_empty_result_has_no_columns() -> None:
    converted = convert(FakeResult([(b"id", INT4_OID)], []))

    assert converted.rows == []
    assert converted.columns == []


def test_row_set_unmapped_type_uses_callbacks() -> None:
    result = FakeResult([(b"p", UNMAPPED_OID)], [[b"\x01"], [None]])

    converted = convert(
        result,
        other_type=lambda oid: Variant("other", f"oid {oid}"),
        unsupported=lambda raw: Variant("unsupported", bytes(raw)),
    )

    assert converted.rows == [[Variant("unsupported", b"\x01")], [Variant("db-null")]]
    assert vars(converted.columns[0])["data-type"] == Variant("other", "oid 600")


def test_row_set_decoder_error_names_column() -> None:
    result = FakeResult([(b"id", INT4_OID), (b"name", TEXT_OID)], [[struct.pack(">i", 1), b"\xff"]])

    with pytest.raises(PostgresError) as caught:
        convert(result)

    assert caught.value.case == "query-failed"
    assert caught.value.message.startswith("cannot convert the value of column 2: ")
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)


def test_row_set_struct_error_becomes_query_failed() -> None:
    codecs = {INT4_OID: ColumnCodec("int32", "int32", lambda raw: struct.unpack(">i", raw)[0])}
    result = FakeResult([(b"id", INT4_OID)], [[b"\x00\x01"]])

    with pytest.raises(PostgresError, match="cannot convert the value of column 1"):
        convert(result, codecs)


def test_row_set_keeps_decoder_postgres_errors() -> None:
    def reject(raw: bytes) -> Any:
        raise PostgresError("query-failed", "cannot convert an infinite date")

    codecs = {INT4_OID: ColumnCodec("date", "date", reject)}

    with pytest.raises(PostgresError) as caught:
        convert(FakeResult([(b"d", INT4_OID)], [[b"x"]]), codecs)

    assert caught.value.message == "cannot convert an infinite date"


def test_row_set_other_errors_propagate() -> None:
    def broken(raw: bytes) -> Any:
        raise KeyError("bug")

    codecs = {INT4_OID: ColumnCodec("int32", "int32", broken)}

    with pytest.raises(KeyError):
        convert(FakeResult([(b"id", INT4_OID)], [[b"x"]]), codecs)
