"""PostgreSQL for components: `fermyon:spin/postgres@2.0.0` and `spin:postgres/postgres@3/4`.

Statements run through psycopg 3's libpq layer (`psycopg.pq.PGconn`), which takes the
guest's `$1` placeholders as they are. Parameters go out mostly in binary format and
results come back in binary format, decoded by column type OID. The type mapping
follows Spin 3 (`crates/factor-outbound-pg/src/types.rs` and the v2/v3 conversions in
`crates/world`):

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
value-conversion-failed "Postgres does not support unsigned integers".

`PostgresConnections` keeps idle connections per connection string for the worker
process. A guest's connection goes back to the pool when the guest drops it or, at the
latest, when its request ends; a connection left in a transaction is rolled back and
every returned connection is reset with `DISCARD ALL`, so no session state leaks
between requests.

Like Spin's driver (tokio-postgres), a statement with parameters is first prepared
without parameter types, so the server infers them, and a parameter whose case does
not fit the inferred type fails with query-failed. For example an int32 for an int8
column, or an int32 for `SELECT $1`, which the server types as text. That costs two
extra round trips per statement with parameters.
"""

from __future__ import annotations

import logging
import select
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from wasmtime.component import Record, ResourceAny, ResourceHost, Variant

from spinlocal.hosts.postgres_v4 import (
    BPCHAR_ARRAY_OID,
    BUILTIN_TYPE_NAMES,
    JSONB_OID,
    TEXT_ARRAY_OID,
    V4_ONLY_DECODERS,
    V4_ONLY_ENCODERS,
    VARCHAR_ARRAY_OID,
    DbErrorInfo,
    ParameterConversionError,
    ValueConversionError,
    make_record,
    query_error_to_wit,
)
from spinlocal.outbound_hosts import postgres_addresses
from spinlocal.resources import resource_type

if TYPE_CHECKING:
    from spinlocal.engine import HostState

logger = logging.getLogger(__name__)

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

DEFAULT_MAX_IDLE_PER_ADDRESS = 8
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10


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


_V2_COLUMNS: dict[int, ColumnCodec] = {
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

_V3_COLUMNS: dict[int, ColumnCodec] = {
    **_V2_COLUMNS,
    DATE_OID: ColumnCodec("date", "date", _decode_date),
    TIME_OID: ColumnCodec("time", "time", _decode_time),
    TIMESTAMP_OID: ColumnCodec("datetime", "datetime", _decode_timestamp),
    TIMESTAMPTZ_OID: ColumnCodec("datetime", "datetime", _decode_timestamp),
}

_V4_COLUMNS: dict[int, ColumnCodec] = {
    **{
        oid: ColumnCodec(Variant(str(codec.data_type)), codec.case, codec.decode)
        for oid, codec in _V3_COLUMNS.items()
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

    get_value = result.get_value
    rows = []
    for row_index in range(result.ntuples):
        row = []
        for index, codec in enumerate(column_codecs):
            raw = get_value(row_index, index)
            if raw is None:
                row.append(_DB_NULL)
            elif codec is None:
                row.append(unsupported(raw))
            else:
                row.append(Variant(codec.case, _decode(codec, raw, index)))
        rows.append(row)
    return _record(columns=columns, rows=rows)


def _decode(codec: ColumnCodec, raw: bytes, index: int) -> Any:
    try:
        return codec.decode(raw)
    except PostgresError:
        raise
    except (ValueConversionError, ValueError, struct.error) as error:
        raise PostgresError(
            "query-failed", f"cannot convert the value of column {index + 1}: {error}"
        ) from error


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


# --- connections and the pool ------------------------------------------------------------


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


def describe_address(address: str) -> str:
    """Return "host:port, ..." for logs and messages, leaving out user and password."""
    try:
        return ", ".join(
            f"{host}:{port}" if port is not None else host
            for host, port in postgres_addresses(address)
        )
    except ValueError:
        return "<invalid connection string>"


def _is_alive(pgconn: pq.abc.PGconn) -> bool:
    """Tell whether an idle connection is still usable, without a round trip.

    An idle connection that has data to read was most likely ended by the server (its
    last message before closing, for example after pg_terminate_backend or a restart),
    so it is treated as closed. Discarding the rare other message costs one new connection.
    """
    if pgconn.status != pq.ConnStatus.OK:
        return False
    readable, _, _ = select.select([pgconn.socket], [], [], 0)
    return not readable


class PooledConnection:
    """A libpq connection lent to one guest `connection` resource."""

    def __init__(self, pool: PostgresConnections, address: str, pgconn: pq.abc.PGconn) -> None:
        self.pool = pool
        self.address = address
        self.pgconn: pq.abc.PGconn | None = pgconn
        self._catalog_queried = False

    def execute(self, statement: str, params: EncodedParameters) -> pq.abc.PGresult:
        """Run one statement; raise `PostgresError("query-failed")` when it fails."""
        pgconn = self.pgconn
        if pgconn is None:
            raise PostgresError("connection-failed", "the connection was already closed")
        try:
            if params.cases:
                result = self._execute_checked(pgconn, statement.encode("utf-8"), params)
            else:
                result = pgconn.exec_params(statement.encode("utf-8"), [], [], [], BINARY)
        except psycopg.Error as error:  # OperationalError when the connection is gone
            raise PostgresError("query-failed", str(error)) from error

        if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            return result
        raise server_error(result, pgconn)

    def _execute_checked(
        self, pgconn: pq.abc.PGconn, statement: bytes, params: EncodedParameters
    ) -> pq.abc.PGresult:
        # Like Spin's driver: prepare without parameter types so the server infers
        # them, reject parameters whose case does not fit, then execute.
        prepared = pgconn.prepare(b"", statement, None)
        if prepared.status != pq.ExecStatus.COMMAND_OK:
            raise server_error(prepared, pgconn)
        description = pgconn.describe_prepared(b"")
        if description.status != pq.ExecStatus.COMMAND_OK:
            raise server_error(description, pgconn)
        server_types = [description.param_type(i) for i in range(description.nparams)]
        self._catalog_queried = False
        bind_to_server_types(params, server_types, self.type_name)
        if self._catalog_queried:
            # The catalog query replaced the unnamed statement, so prepare it again.
            prepared = pgconn.prepare(b"", statement, server_types)
            if prepared.status != pq.ExecStatus.COMMAND_OK:
                raise server_error(prepared, pgconn)
        values: Any = params.values  # None is a NULL, which libpq accepts
        return pgconn.exec_prepared(b"", values, params.formats, BINARY)

    def type_name(self, oid: int) -> str:
        """Return the name of type `oid`, from a built-in table or the server's catalog."""
        name = BUILTIN_TYPE_NAMES.get(oid) or self.pool.type_names.get((self.address, oid))
        if name is not None:
            return name
        name = "unknown"
        if self.pgconn is not None:
            self._catalog_queried = True
            result = self.pgconn.exec_params(
                b"SELECT typname::text FROM pg_catalog.pg_type WHERE oid = $1",
                [str(oid).encode()], [26], [0], 0,
            )
            if result.status == pq.ExecStatus.TUPLES_OK and result.ntuples == 1:
                name = (result.get_value(0, 0) or b"unknown").decode("utf-8")
                self.pool.type_names[(self.address, oid)] = name
        return name

    def close(self) -> None:
        """Return the connection to the pool; later calls do nothing."""
        pgconn, self.pgconn = self.pgconn, None
        if pgconn is not None:
            self.pool.release(self.address, pgconn)


class PostgresConnections:
    """Per-process pool of libpq connections, keyed by the guest's connection string.

    Thread safe, although a worker serves one request at a time.
    """

    def __init__(
        self,
        max_idle_per_address: int = DEFAULT_MAX_IDLE_PER_ADDRESS,
        connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        if max_idle_per_address < 0:
            raise ValueError(f"max_idle_per_address must be 0 or more, got {max_idle_per_address}")
        self.max_idle_per_address = max_idle_per_address
        self.connect_timeout = connect_timeout
        self._idle: dict[str, list[pq.abc.PGconn]] = {}
        self._lock = threading.Lock()
        self.type_names: dict[tuple[str, int], str] = {}  # (address, OID) -> type name
        self.opened = 0  # connections opened since start, for tests and benchmarks
        self.reused = 0

    def connect(self, address: str) -> PooledConnection:
        """Lend an idle connection for `address`, or open a new one.

        Raises `PostgresError("connection-failed")` with libpq's message when connecting fails.
        """
        while True:
            with self._lock:
                idle = self._idle.get(address)
                pgconn = idle.pop() if idle else None
            if pgconn is None:
                return PooledConnection(self, address, self._open(address))
            if _is_alive(pgconn):
                self.reused += 1
                return PooledConnection(self, address, pgconn)
            logger.info(
                "discarding idle PostgreSQL connection to %s: the server closed it",
                describe_address(address),
            )
            pgconn.finish()

    def _open(self, address: str) -> pq.abc.PGconn:
        try:
            params = conninfo_to_dict(address)
            options: dict[str, Any] = {"client_encoding": "UTF8"}
            if "connect_timeout" not in params:
                options["connect_timeout"] = self.connect_timeout
            conninfo = make_conninfo(address, **options)
        except psycopg.ProgrammingError as error:  # a malformed connection string
            raise PostgresError(
                "connection-failed", f"invalid connection string: {error}"
            ) from error

        started = time.perf_counter()
        pgconn = pq.PGconn.connect(conninfo.encode("utf-8"))
        if pgconn.status != pq.ConnStatus.OK:
            message = server_error(None, pgconn).message
            pgconn.finish()
            logger.warning(
                "connecting to PostgreSQL at %s failed: %s", describe_address(address), message
            )
            raise PostgresError("connection-failed", message)

        self.opened += 1
        logger.info(
            "opened PostgreSQL connection to %s in %.1f ms",
            describe_address(address),
            (time.perf_counter() - started) * 1000,
        )
        return pgconn

    def release(self, address: str, pgconn: pq.abc.PGconn) -> None:
        """Reset `pgconn` and keep it idle for `address`, or close it if it is unusable."""
        if not self._reset(address, pgconn):
            pgconn.finish()
            return
        with self._lock:
            idle = self._idle.setdefault(address, [])
            if len(idle) < self.max_idle_per_address:
                idle.append(pgconn)
                return
        pgconn.finish()

    def _reset(self, address: str, pgconn: pq.abc.PGconn) -> bool:
        if pgconn.status != pq.ConnStatus.OK:
            logger.info("dropping broken PostgreSQL connection to %s", describe_address(address))
            return False
        statements = b"DISCARD ALL"
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            logger.info(
                "rolling back a transaction the guest left open on %s", describe_address(address)
            )
            statements = b"ROLLBACK; DISCARD ALL"
        try:
            result = pgconn.exec_(statements)
        except psycopg.Error:  # OperationalError when the connection is gone
            logger.info("resetting PostgreSQL connection to %s failed", describe_address(address))
            return False
        return (
            result.status == pq.ExecStatus.COMMAND_OK
            and pgconn.transaction_status == pq.TransactionStatus.IDLE
        )

    def idle_count(self, address: str) -> int:
        with self._lock:
            return len(self._idle.get(address, ()))

    def close(self) -> None:
        """Close every idle connection; lent connections close when they are returned."""
        with self._lock:
            idle = [pgconn for pgconns in self._idle.values() for pgconn in pgconns]
            self._idle.clear()
        for pgconn in idle:
            pgconn.finish()


# --- the WIT interfaces ------------------------------------------------------------------


@dataclass(frozen=True)
class _InterfaceVersion:
    instance: str
    codecs: dict[int, ColumnCodec]
    version4: bool = False

    def error_to_wit(self, error: PostgresError) -> Variant:
        if self.version4 and error.case == "query-failed":
            return Variant(error.case, query_error_to_wit(error.message, error.db_error))
        return Variant(error.case, error.message)

    def row_set(self, result: pq.abc.PGresult, connection: PooledConnection) -> Record:
        if not self.version4:
            return row_set(result, self.codecs)
        return row_set(
            result,
            self.codecs,
            other_type=lambda oid: Variant("other", connection.type_name(oid)),
            unsupported=lambda raw: Variant("unsupported", bytes(raw)),
        )


V2 = _InterfaceVersion("fermyon:spin/postgres@2.0.0", _V2_COLUMNS)
V3 = _InterfaceVersion("spin:postgres/postgres@3.0.0", _V3_COLUMNS)
V4 = _InterfaceVersion("spin:postgres/postgres@4.0.0", _V4_COLUMNS, version4=True)
INTERFACES = (V2, V3, V4)


def _ok(value: Any) -> Variant:
    return Variant("ok", value)


def define(root: Any, host: HostState) -> None:
    """Add the PostgreSQL interfaces to the linker `root`, serving requests of `host`."""
    for version in INTERFACES:
        _define_version(root, host, version)


def _define_version(root: Any, host: HostState, version: _InterfaceVersion) -> None:
    kind = f"{version.instance}.connection"

    def drop(store: Any, rep: int) -> None:
        context = host.current
        connection = context.table.pop(rep) if context is not None else None
        if connection is not None:
            connection.close()

    def open_(store: Any, address: str) -> Variant:
        context = host.current
        if context is None:
            raise RuntimeError("postgres open called outside a request")
        try:
            _check_allowed(host, address)
            connection = host.services.postgres.connect(address)
        except PostgresError as error:
            host.log.warning("postgres open failed: %s", error.message)
            return Variant("err", version.error_to_wit(error))
        context.cleanups.append(connection.close)
        return _ok(context.own(kind, connection))

    def lookup(store: Any, handle: ResourceAny | ResourceHost) -> PooledConnection:
        context = host.current
        if context is None:
            raise RuntimeError("postgres call outside a request")
        connection: PooledConnection = context.get(store, handle)
        return connection

    def run(
        connection: PooledConnection, statement: str, params: list[Variant], failure_case: str
    ) -> pq.abc.PGresult:
        try:
            encoded = encode_parameters(params, version4=version.version4)
        except ParameterConversionError as error:
            raise PostgresError(failure_case, str(error)) from error
        return connection.execute(statement, encoded)

    def query(
        store: Any, handle: ResourceAny | ResourceHost, statement: str, params: list[Variant]
    ) -> Variant:
        connection = lookup(store, handle)
        try:
            result = run(connection, statement, params, "bad-parameter")
            return _ok(version.row_set(result, connection))
        except PostgresError as error:
            host.log.info("postgres query failed: %s", error.message)
            return Variant("err", version.error_to_wit(error))

    def execute(
        store: Any, handle: ResourceAny | ResourceHost, statement: str, params: list[Variant]
    ) -> Variant:
        connection = lookup(store, handle)
        try:
            result = run(connection, statement, params, "value-conversion-failed")
            return _ok(result.command_tuples or 0)
        except PostgresError as error:
            host.log.info("postgres execute failed: %s", error.message)
            return Variant("err", version.error_to_wit(error))

    with root.add_instance(version.instance) as instance:
        instance.add_resource("connection", resource_type(kind)[1], drop)
        instance.add_func("[static]connection.open", open_)
        instance.add_func("[method]connection.query", query)
        instance.add_func("[method]connection.execute", execute)


def _check_allowed(host: HostState, address: str) -> None:
    """Raise connection-failed unless every host in `address` is an allowed outbound host."""
    try:
        addresses = postgres_addresses(address)
    except ValueError as error:
        raise PostgresError("connection-failed", str(error)) from error

    for hostname, port in addresses:
        if host.allowed_hosts.allows("postgres", hostname, port):
            continue
        target = f"{hostname}:{port}" if port is not None else hostname
        raise PostgresError(
            "connection-failed",
            f"address postgres://{target} is not permitted: it is not in the component's "
            f'allowed_outbound_hosts. To allow it, add "postgres://{target}" to '
            f"allowed_outbound_hosts in the [component.{host.spec.id}] section of spin.toml.",
        )
