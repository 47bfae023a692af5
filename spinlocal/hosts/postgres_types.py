"""PostgreSQL values and errors as the Spin PostgreSQL interfaces carry them.

Results come back from the server in binary format and are decoded by column type OID;
parameters go out mostly in binary format. The mapping follows Spin 3
(`crates/factor-outbound-pg/src/types.rs` and the v2/v3 conversions in `crates/world`):

| PostgreSQL                     | column type  | value                                  |
|--------------------------------|--------------|----------------------------------------|
| bool                           | boolean      | boolean                                |
| int2 / int4 / int8             | int16/32/64  | int16/32/64                            |
| float4 / float8                | floating32/64| floating32/64                          |
| text, varchar, bpchar          | str          | str                                    |
| bytea                          | binary       | binary                                 |
| date, time (v3 only)           | date, time   | (y, m, d), (h, m, s, ns)               |
| timestamp, timestamptz (v3)    | datetime     | (y, mo, d, h, mi, s, ns), UTC          |
| anything else, and v2 dates    | other        | unsupported (NULL is still db-null)    |

Version 4.0.0 adds uuid, jsonb, decimal, ranges, arrays and interval (see
`postgres_v4.py`), names the type of `other` columns, and returns the server's error
fields in a `db-error` record.

Parameter cases map the other way. An `int8` (s8) parameter is sent as PostgreSQL's
one-byte `"char"`, as Spin's driver does. Unsigned cases fail with
value-conversion-failed "Postgres does not support unsigned integers". Like Spin's
driver (tokio-postgres), a parameter must also fit the type the server infers for it
(`bind_to_server_types`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import pq
from wasmtime.component import Record, Variant

from spinlocal.hosts.postgres_v4 import (
    BPCHAR_ARRAY_OID,
    JSONB_OID,
    TEXT_ARRAY_OID,
    V4_ONLY_DECODERS,
    V4_ONLY_ENCODERS,
    VARCHAR_ARRAY_OID,
    DbErrorInfo,
    ParameterConversionError,
    ValueConversionError,
    make_record,
)

# Type OIDs from PostgreSQL's pg_type catalog.
BOOL_OID = 16
BYTEA_OID = 17
CHAR_OID = 18
INT8_OID = 20
INT2_OID = 21
INT4_OID = 23
TEXT_OID = 25
FLOAT4_OID = 700
FLOAT8_OID = 701
JSON_OID = 114
NAME_OID = 19
UNKNOWN_OID = 705
NAME_ARRAY_OID = 1003
BPCHAR_OID = 1042
VARCHAR_OID = 1043
DATE_OID = 1082
TIME_OID = 1083
TIMESTAMP_OID = 1114
TIMESTAMPTZ_OID = 1184

BINARY = 1

# Days from 0000-03-01 to 2000-01-01, PostgreSQL's epoch for dates and timestamps.
_PG_EPOCH_DAYS = 730425
_MICROS_PER_DAY = 86_400_000_000
_UNIX_EPOCH_PG_MICROS = -946_684_800_000_000  # 1970-01-01 relative to 2000-01-01

_FLOAT4 = struct.Struct(">f")
_FLOAT8 = struct.Struct(">d")
_INT4 = struct.Struct(">i")
_INT8 = struct.Struct(">q")


class PostgresError(Exception):
    """A failure reported to the guest as one case of the WIT `error` variant."""

    def __init__(self, case: str, message: str, db_error: DbErrorInfo | None = None) -> None:
        super().__init__(message)
        self.case = case
        self.message = message
        self.db_error = db_error  # the server's error fields, for query-failed


# --- calendar arithmetic (proleptic Gregorian, like chrono) ------------------------------


def days_to_civil(days_since_2000: int) -> tuple[int, int, int]:
    """Convert days since 2000-01-01 to (year, month, day), for any year."""
    z = days_since_2000 + _PG_EPOCH_DAYS
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def civil_to_days(year: int, month: int, day: int) -> int:
    """Convert a valid (year, month, day) to days since 2000-01-01."""
    year -= 1 if month <= 2 else 0
    era = year // 400
    yoe = year - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - _PG_EPOCH_DAYS


def _is_valid_date(year: int, month: int, day: int) -> bool:
    if not 1 <= month <= 12 or day < 1:
        return False
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return day <= (29 if leap else 28)
    return day <= (30 if month in (4, 6, 9, 11) else 31)


# --- result decoding ---------------------------------------------------------------------


def _decode_int(data: bytes) -> int:
    return int.from_bytes(data, "big", signed=True)


def _decode_float4(data: bytes) -> float:
    return float(_FLOAT4.unpack(data)[0])


def _decode_float8(data: bytes) -> float:
    return float(_FLOAT8.unpack(data)[0])


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8")


def _decode_bytea(data: bytes) -> bytes:
    return bytes(data)


def _decode_bool(data: bytes) -> bool:
    return data != b"\x00"


def _decode_date(data: bytes) -> tuple[int, int, int]:
    days = _INT4.unpack(data)[0]
    if days in (0x7FFFFFFF, -0x80000000):
        raise PostgresError("query-failed", "cannot convert an infinite date")
    return days_to_civil(days)


def _split_time_of_day(micros: int) -> tuple[int, int, int, int]:
    seconds, micro = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return hour, minute, second, micro * 1000


def _decode_time(data: bytes) -> tuple[int, int, int, int]:
    return _split_time_of_day(_INT8.unpack(data)[0])


def _decode_timestamp(data: bytes) -> tuple[int, int, int, int, int, int, int]:
    micros = _INT8.unpack(data)[0]
    if micros in (0x7FFFFFFFFFFFFFFF, -0x8000000000000000):
        raise PostgresError("query-failed", "cannot convert an infinite timestamp")
    days, time_of_day = divmod(micros, _MICROS_PER_DAY)
    return days_to_civil(days) + _split_time_of_day(time_of_day)


@dataclass(frozen=True)
class ColumnCodec:
    """Mapping of one column type OID to the guest: WIT column type, value case, decoder."""

    data_type: str | Variant  # an enum name before version 4, a variant from then on
    case: str
    decode: Callable[[bytes], Any]


V2_COLUMNS: dict[int, ColumnCodec] = {
    BOOL_OID: ColumnCodec("boolean", "boolean", _decode_bool),
    BYTEA_OID: ColumnCodec("binary", "binary", _decode_bytea),
    FLOAT4_OID: ColumnCodec("floating32", "floating32", _decode_float4),
    FLOAT8_OID: ColumnCodec("floating64", "floating64", _decode_float8),
    INT2_OID: ColumnCodec("int16", "int16", _decode_int),
    INT4_OID: ColumnCodec("int32", "int32", _decode_int),
    INT8_OID: ColumnCodec("int64", "int64", _decode_int),
    TEXT_OID: ColumnCodec("str", "str", _decode_text),
    VARCHAR_OID: ColumnCodec("str", "str", _decode_text),
    BPCHAR_OID: ColumnCodec("str", "str", _decode_text),
}

V3_COLUMNS: dict[int, ColumnCodec] = {
    **V2_COLUMNS,
    DATE_OID: ColumnCodec("date", "date", _decode_date),
    TIME_OID: ColumnCodec("time", "time", _decode_time),
    TIMESTAMP_OID: ColumnCodec("datetime", "datetime", _decode_timestamp),
    TIMESTAMPTZ_OID: ColumnCodec("datetime", "datetime", _decode_timestamp),
}

V4_COLUMNS: dict[int, ColumnCodec] = {
    **{
        oid: ColumnCodec(Variant(str(codec.data_type)), codec.case, codec.decode)
        for oid, codec in V3_COLUMNS.items()
    },
    **{
        oid: ColumnCodec(Variant(case), case, decode)
        for oid, (case, decode) in V4_ONLY_DECODERS.items()
    },
}

_DB_NULL = Variant("db-null")
_UNSUPPORTED = Variant("unsupported")


def row_set(
    result: pq.abc.PGresult,
    codecs: dict[int, ColumnCodec],
    other_type: Callable[[int], Any] = lambda oid: "other",
    unsupported: Callable[[bytes], Variant] = lambda raw: _UNSUPPORTED,
) -> Record:
    """Convert a binary-format result into the WIT `row-set` record.

    `other_type` returns the column type of an unmapped type OID and `unsupported` the
    value of such a column, because they differ between interface versions. Raises
    `PostgresError("query-failed")` when a value cannot be converted, as Spin does.
    """
    # Spin returns no columns at all when a query returns no rows.
    if result.ntuples == 0:
        return _record(columns=[], rows=[])

    columns = []
    column_codecs: list[ColumnCodec | None] = []
    for index in range(result.nfields):
        oid = result.ftype(index)
        codec = codecs.get(oid)
        column_codecs.append(codec)
        name = (result.fname(index) or b"").decode("utf-8")
        data_type = codec.data_type if codec is not None else other_type(oid)
        columns.append(_record(name=name, data_type=data_type))

    # This loop runs once per value (4,000 times for 500 rows of 8 columns), so it reads
    # each codec's parts once and decodes inline instead of through a helper call.
    plan: list[tuple[int, str, Callable[[bytes], Any] | None]] = [
        (index, "", None) if codec is None else (index, codec.case, codec.decode)
        for index, codec in enumerate(column_codecs)
    ]
    get_value = result.get_value
    rows = []
    for row_index in range(result.ntuples):
        row: list[Variant] = []
        append = row.append
        for index, case, decode in plan:
            raw = get_value(row_index, index)
            if raw is None:
                append(_DB_NULL)
            elif decode is None:
                append(unsupported(raw))
            else:
                try:
                    value = decode(raw)
                except PostgresError:
                    raise
                except (ValueConversionError, ValueError, struct.error) as error:
                    raise _conversion_error(index, error) from error
                append(Variant(case, value))
        rows.append(row)
    return _record(columns=columns, rows=rows)


def _conversion_error(index: int, error: Exception) -> PostgresError:
    return PostgresError("query-failed", f"cannot convert the value of column {index + 1}: {error}")


_record = make_record


# --- parameter encoding ------------------------------------------------------------------


@dataclass
class EncodedParameters:
    """Parameters ready for libpq: values, their formats and WIT cases.

    `types` are the OIDs the values are encoded as; the server's inferred types win.
    """

    types: list[int]
    values: list[bytes | None]
    formats: list[int]
    cases: list[str] = field(default_factory=list)


def encode_parameters(params: Sequence[Variant], version4: bool = False) -> EncodedParameters:
    """Encode WIT `parameter-value`s for `exec_params`, mostly in binary format.

    `version4` enables the cases only the 4.0.0 interface has. Raises
    `PostgresError("value-conversion-failed")` for unsigned cases and
    `ParameterConversionError` for an invalid value (date, UUID, JSON, decimal...);
    callers map the latter to the case Spin reports for that call.
    """
    encoded = EncodedParameters([], [], [], [])
    for position, param in enumerate(params, start=1):
        extra = V4_ONLY_ENCODERS.get(param.tag) if version4 else None
        if extra is not None:
            oid, value_format, encode = extra
            value: bytes | None = encode(param.payload)
        else:
            oid, value = _encode_parameter(param, position)
            value_format = BINARY
        encoded.types.append(oid)
        encoded.values.append(value)
        encoded.formats.append(value_format)
        encoded.cases.append(param.tag)
    return encoded


# The server types each parameter case may be bound to, as tokio-postgres's `ToSql`
# implementations accept them (Spin's driver); db-null is accepted for every type.
_ACCEPTED_TYPES: dict[str, frozenset[int]] = {
    "boolean": frozenset({BOOL_OID}),
    "int8": frozenset({CHAR_OID}),
    "int16": frozenset({INT2_OID}),
    "int32": frozenset({INT4_OID}),
    "int64": frozenset({INT8_OID}),
    "floating32": frozenset({FLOAT4_OID}),
    "floating64": frozenset({FLOAT8_OID}),
    "str": frozenset({TEXT_OID, VARCHAR_OID, BPCHAR_OID, NAME_OID, UNKNOWN_OID}),
    "binary": frozenset({BYTEA_OID}),
    "date": frozenset({DATE_OID}),
    "time": frozenset({TIME_OID}),
    "datetime": frozenset({TIMESTAMP_OID}),
    "timestamp": frozenset({TIMESTAMPTZ_OID}),
    **{case: frozenset({oid}) for case, (oid, _, _) in V4_ONLY_ENCODERS.items()},
    "jsonb": frozenset({JSON_OID, JSONB_OID}),
    "array-str": frozenset({TEXT_ARRAY_OID, VARCHAR_ARRAY_OID, BPCHAR_ARRAY_OID, NAME_ARRAY_OID}),
}
# tokio-postgres also binds strings to these extension types, found by name.
_STRING_TYPE_NAMES = frozenset({"citext", "ltree", "lquery", "ltxtquery"})


def bind_to_server_types(
    params: EncodedParameters, server_types: Sequence[int], type_name: Callable[[int], str]
) -> None:
    """Check each parameter against the type the server inferred, as Spin's driver does.

    Raises `PostgresError("query-failed")` on a count or type mismatch. A jsonb value
    bound to a json parameter loses its version byte, because json's binary form is the
    bare text.
    """
    if len(server_types) != len(params.cases):
        raise PostgresError(
            "query-failed",
            f"expected {len(server_types)} parameters but got {len(params.cases)}",
        )
    for index, (case, server_type) in enumerate(zip(params.cases, server_types, strict=True)):
        if case == "db-null" or server_type in _ACCEPTED_TYPES.get(case, ()):
            if case == "jsonb" and server_type == JSON_OID and params.values[index]:
                params.values[index] = params.values[index][1:]  # type: ignore[index]
            continue
        name = type_name(server_type)
        if case == "str" and name in _STRING_TYPE_NAMES:
            continue
        raise PostgresError(
            "query-failed",
            f"error serializing parameter {index}: cannot convert the {case} value of "
            f"${index + 1} to the Postgres type {name}. Pass the parameter case that "
            f"matches {name}, or cast the parameter to the type of its case in SQL, for "
            f"example ${index + 1}::{_cast_example(case)}",
        )


def _cast_example(case: str) -> str:
    examples = {"int16": "int2", "int32": "int4", "int64": "int8", "floating32": "float4",
                "floating64": "float8", "str": "text", "binary": "bytea", "boolean": "bool"}
    return examples.get(case, case.replace("-", "_"))


_SIMPLE_ENCODERS: dict[str, tuple[int, Callable[[Any], bytes]]] = {
    "boolean": (BOOL_OID, lambda value: b"\x01" if value else b"\x00"),
    "int8": (CHAR_OID, lambda value: value.to_bytes(1, "big", signed=True)),
    "int16": (INT2_OID, lambda value: value.to_bytes(2, "big", signed=True)),
    "int32": (INT4_OID, lambda value: value.to_bytes(4, "big", signed=True)),
    "int64": (INT8_OID, lambda value: value.to_bytes(8, "big", signed=True)),
    "floating32": (FLOAT4_OID, _FLOAT4.pack),
    "floating64": (FLOAT8_OID, _FLOAT8.pack),
    "str": (TEXT_OID, lambda value: value.encode("utf-8")),
    "binary": (BYTEA_OID, bytes),
}


def _encode_parameter(param: Variant, position: int) -> tuple[int, bytes | None]:
    tag = param.tag
    payload: Any = param.payload
    simple = _SIMPLE_ENCODERS.get(tag)
    if simple is not None:
        oid, encode = simple
        return oid, encode(payload)
    if tag == "db-null":
        return 0, None
    if tag in ("uint8", "uint16", "uint32", "uint64"):
        raise PostgresError(
            "value-conversion-failed", "Postgres does not support unsigned integers"
        )

    if tag == "date":
        return DATE_OID, _INT4.pack(_encode_date(*payload))
    if tag == "time":
        return TIME_OID, _INT8.pack(_encode_time(*payload))
    if tag == "datetime":
        year, month, day, hour, minute, second, nanos = payload
        micros = _encode_date(year, month, day) * _MICROS_PER_DAY
        micros += _encode_time(hour, minute, second, nanos)
        return TIMESTAMP_OID, _INT8.pack(micros)
    if tag == "timestamp":
        # Seconds since the Unix epoch, sent as timestamptz like Spin's DateTime<Utc>.
        if abs(payload) > 8_210_266_876_799:  # chrono's range, about +-262,000 years
            raise ParameterConversionError(f"invalid epoch timestamp {payload}")
        return TIMESTAMPTZ_OID, _INT8.pack(payload * 1_000_000 + _UNIX_EPOCH_PG_MICROS)

    raise PostgresError("bad-parameter", f"parameter ${position} has unsupported type {tag!r}")


def _encode_date(year: int, month: int, day: int) -> int:
    if not _is_valid_date(year, month, day):
        raise ParameterConversionError(f"invalid date y={year}, m={month}, d={day}")
    return civil_to_days(year, month, day)


def _encode_time(hour: int, minute: int, second: int, nanos: int) -> int:
    if hour > 23 or minute > 59 or second > 59 or nanos > 999_999_999:
        raise ParameterConversionError(f"invalid time {hour}:{minute}:{second}:{nanos}")
    return ((hour * 60 + minute) * 60 + second) * 1_000_000 + nanos // 1000


# --- server errors -----------------------------------------------------------------------


_EXTRA_ERROR_FIELDS = (
    ("column", pq.DiagnosticField.COLUMN_NAME),
    ("constraint", pq.DiagnosticField.CONSTRAINT_NAME),
    ("routine", pq.DiagnosticField.SOURCE_FUNCTION),
    ("hint", pq.DiagnosticField.MESSAGE_HINT),
    ("table", pq.DiagnosticField.TABLE_NAME),
    ("datatype", pq.DiagnosticField.DATATYPE_NAME),
    ("schema", pq.DiagnosticField.SCHEMA_NAME),
    ("file", pq.DiagnosticField.SOURCE_FILE),
    ("line", pq.DiagnosticField.SOURCE_LINE),
    ("where_", pq.DiagnosticField.CONTEXT),
)


def server_error(result: pq.abc.PGresult | None, conn: pq.abc.PGconn) -> PostgresError:
    """Build query-failed from a failed result: "SEVERITY: message (SQLSTATE code)".

    The detail, when the server sent one, follows as "; DETAIL: ...". Without an error
    response (for example a lost connection) the message is libpq's text.
    """

    def text(field: pq.DiagnosticField) -> str | None:
        value = result.error_field(field) if result is not None else None
        return value.decode("utf-8", "replace") if value else None

    primary = text(pq.DiagnosticField.MESSAGE_PRIMARY)
    if primary is None:
        fallback = result.error_message if result is not None else b""
        message = fallback.decode("utf-8", "replace").strip()
        if not message:
            message = conn.error_message.decode("utf-8", "replace").strip() or "connection lost"
        return PostgresError("query-failed", message)

    severity = text(pq.DiagnosticField.SEVERITY_NONLOCALIZED) or text(
        pq.DiagnosticField.SEVERITY
    ) or "ERROR"
    code = text(pq.DiagnosticField.SQLSTATE) or "?????"
    detail = text(pq.DiagnosticField.MESSAGE_DETAIL)
    message = f"{severity}: {primary} (SQLSTATE {code})"
    if detail:
        message += f"; DETAIL: {detail}"

    extras = []
    for name, diagnostic in _EXTRA_ERROR_FIELDS:
        value = text(diagnostic)
        if value is not None:
            extras.append((name, value))
    info = DbErrorInfo(severity, code, primary, detail, extras)
    return PostgresError("query-failed", message, info)
