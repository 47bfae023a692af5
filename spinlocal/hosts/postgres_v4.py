"""Types that only `spin:postgres/postgres@4.0.0` has: uuid, jsonb, decimal, ranges, arrays,
interval, structured query errors, and the type name of `other` columns.

The mapping follows Spin 3's `crates/factor-outbound-pg/src/types.rs`:

| PostgreSQL                          | column type     | value                           |
|-------------------------------------|-----------------|---------------------------------|
| uuid                                | uuid            | uuid (hyphenated, lower case)   |
| jsonb                               | jsonb           | jsonb (compact JSON bytes)      |
| numeric                             | decimal         | decimal (base-10 string)        |
| int4range / int8range / numrange    | range-int32/... | (lower, upper), bounds optional |
| int4[] / int8[] / numeric[]         | array-int32/... | one-dimensional, NULLs allowed  |
| text[] / varchar[] / bpchar[]       | array-str       |                                 |
| interval                            | interval        | {micros, days, months}          |
| anything else                       | other(name)     | unsupported(raw binary value)   |

Decimals are sent as text, so PostgreSQL parses them; the other new cases go in binary.
"""

from __future__ import annotations

import decimal
import json
import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasmtime.component import Record, Variant

UUID_OID = 2950
JSONB_OID = 3802
NUMERIC_OID = 1700
INT4RANGE_OID = 3904
NUMRANGE_OID = 3906
INT8RANGE_OID = 3926
INT4_ARRAY_OID = 1007
INT8_ARRAY_OID = 1016
NUMERIC_ARRAY_OID = 1231
TEXT_ARRAY_OID = 1009
BPCHAR_ARRAY_OID = 1014
VARCHAR_ARRAY_OID = 1015
INTERVAL_OID = 1186

TEXT_FORMAT = 0
BINARY_FORMAT = 1

# Names of common built-in types, so naming them needs no catalog query.
BUILTIN_TYPE_NAMES = {
    16: "bool", 17: "bytea", 18: "char", 19: "name", 20: "int8", 21: "int2", 23: "int4",
    25: "text", 26: "oid", 114: "json", 142: "xml", 600: "point", 650: "cidr",
    700: "float4", 701: "float8", 705: "unknown", 790: "money", 829: "macaddr",
    869: "inet", 1003: "_name", 1007: "_int4", 1009: "_text", 1014: "_bpchar",
    1015: "_varchar", 1016: "_int8", 1042: "bpchar", 1043: "varchar", 1082: "date",
    1083: "time", 1114: "timestamp", 1184: "timestamptz", 1186: "interval",
    1231: "_numeric", 1266: "timetz", 1560: "bit", 1562: "varbit", 1700: "numeric",
    2278: "void", 2950: "uuid", 3614: "tsvector", 3615: "tsquery", 3802: "jsonb",
    3904: "int4range", 3906: "numrange", 3926: "int8range",
}

_RANGE_EMPTY = 0x01
_RANGE_LOWER_INCLUSIVE = 0x02
_RANGE_UPPER_INCLUSIVE = 0x04
_RANGE_LOWER_INFINITE = 0x08
_RANGE_UPPER_INFINITE = 0x10

_NUMERIC_NEGATIVE = 0x4000
_DECIMAL_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_DECIMAL_CONTEXT = decimal.Context(prec=1000)

_INT4 = struct.Struct(">i")
_INT8 = struct.Struct(">q")
_INTERVAL = struct.Struct(">qii")


class ValueConversionError(ValueError):
    """A value from the server that the WIT types cannot carry (NaN decimal, 2-D array...)."""


class ParameterConversionError(ValueError):
    """A guest parameter that is not a valid value of its case (bad UUID, JSON, decimal)."""


@dataclass(frozen=True)
class DbErrorInfo:
    """The fields of a PostgreSQL error response that the v4 `db-error` record carries."""

    severity: str
    code: str
    message: str
    detail: str | None = None
    extras: list[tuple[str, str]] = field(default_factory=list)


# --- results ----------------------------------------------------------------------------


def decode_uuid(data: bytes) -> str:
    return str(uuid.UUID(bytes=bytes(data)))


def decode_jsonb(data: bytes) -> bytes:
    # Binary jsonb is a version byte (1) and the JSON text. Spin re-serializes the value
    # with serde_json::to_vec, which writes compact JSON.
    # NOTE: sorted keys assume serde_json without its preserve_order feature, which was
    # not checked; with it, Spin keeps PostgreSQL's key order (shorter keys first).
    value = json.loads(bytes(data[1:]))
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def decode_numeric(data: bytes) -> str:
    ndigits, weight, sign, scale = struct.unpack_from(">hhHH", data)
    if sign not in (0, _NUMERIC_NEGATIVE):
        raise ValueConversionError("cannot convert a NaN or infinite numeric to a decimal")
    groups = struct.unpack_from(f">{ndigits}h", data, 8)

    digits = 0
    for group in groups:
        digits = digits * 10000 + group
    exponent = (weight - ndigits + 1) * 4
    value = decimal.Decimal(digits).scaleb(exponent, _DECIMAL_CONTEXT)
    value = value.quantize(decimal.Decimal(1).scaleb(-scale), context=_DECIMAL_CONTEXT)
    if sign == _NUMERIC_NEGATIVE:
        value = -value
    return format(value, "f")


def _range_decoder(decode_bound: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> tuple[Any, Any]:
        flags = data[0]
        if flags & _RANGE_EMPTY:
            return (None, None)
        position = 1
        bounds: list[Any] = []
        for infinite, inclusive in (
            (_RANGE_LOWER_INFINITE, _RANGE_LOWER_INCLUSIVE),
            (_RANGE_UPPER_INFINITE, _RANGE_UPPER_INCLUSIVE),
        ):
            if flags & infinite:
                bounds.append(None)
                continue
            length = _INT4.unpack_from(data, position)[0]
            position += 4
            value = decode_bound(data[position : position + length])
            position += length
            bounds.append((value, "inclusive" if flags & inclusive else "exclusive"))
        return (bounds[0], bounds[1])

    return decode


def _array_decoder(decode_element: Callable[[bytes], Any]) -> Callable[[bytes], list[Any]]:
    def decode(data: bytes) -> list[Any]:
        dimensions, _has_nulls, _element_oid = struct.unpack_from(">iii", data)
        if dimensions == 0:
            return []
        if dimensions > 1:
            raise ValueConversionError(
                f"cannot convert a {dimensions}-dimensional array; only one dimension is supported"
            )
        size = _INT4.unpack_from(data, 12)[0]
        position = 20
        values: list[Any] = []
        for _ in range(size):
            length = _INT4.unpack_from(data, position)[0]
            position += 4
            if length < 0:
                values.append(None)
                continue
            values.append(decode_element(data[position : position + length]))
            position += length
        return values

    return decode


def make_record(**fields: Any) -> Record:
    """Build a WIT record; underscores in field names become the WIT dashes."""
    record = Record()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record


def decode_interval(data: bytes) -> Record:
    micros, days, months = _INTERVAL.unpack(data)
    return make_record(micros=micros, days=days, months=months)


def _decode_int(data: bytes) -> int:
    return int.from_bytes(data, "big", signed=True)


def _decode_text(data: bytes) -> str:
    return bytes(data).decode("utf-8")


# OID -> (case name, decoder); the case name is both the column type and the value case.
V4_ONLY_DECODERS: dict[int, tuple[str, Callable[[bytes], Any]]] = {
    UUID_OID: ("uuid", decode_uuid),
    JSONB_OID: ("jsonb", decode_jsonb),
    NUMERIC_OID: ("decimal", decode_numeric),
    INT4RANGE_OID: ("range-int32", _range_decoder(_decode_int)),
    INT8RANGE_OID: ("range-int64", _range_decoder(_decode_int)),
    NUMRANGE_OID: ("range-decimal", _range_decoder(decode_numeric)),
    INT4_ARRAY_OID: ("array-int32", _array_decoder(_decode_int)),
    INT8_ARRAY_OID: ("array-int64", _array_decoder(_decode_int)),
    NUMERIC_ARRAY_OID: ("array-decimal", _array_decoder(decode_numeric)),
    TEXT_ARRAY_OID: ("array-str", _array_decoder(_decode_text)),
    VARCHAR_ARRAY_OID: ("array-str", _array_decoder(_decode_text)),
    BPCHAR_ARRAY_OID: ("array-str", _array_decoder(_decode_text)),
    INTERVAL_OID: ("interval", decode_interval),
}


# --- parameters -------------------------------------------------------------------------


def _check_decimal(text: str) -> str:
    if not _DECIMAL_TEXT.fullmatch(text):
        raise ParameterConversionError(f"invalid decimal {text}")
    return text


def _range_text(value: Any, bound_text: Callable[[Any], str]) -> str:
    lower, upper = value
    text = "[" if lower is not None and lower[1] == "inclusive" else "("
    text += bound_text(lower[0]) if lower is not None else ""
    text += ","
    text += bound_text(upper[0]) if upper is not None else ""
    text += "]" if upper is not None and upper[1] == "inclusive" else ")"
    return text


def _array_text(values: list[Any], element_text: Callable[[Any], str]) -> str:
    items = ["NULL" if value is None else element_text(value) for value in values]
    return "{" + ",".join(items) + "}"


def _quote_array_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _encode_uuid(value: str) -> bytes:
    try:
        return uuid.UUID(value).bytes
    except ValueError as error:
        raise ParameterConversionError(f"invalid UUID {value}") from error


def _encode_jsonb(value: bytes) -> bytes:
    try:
        json.loads(bytes(value))
    except ValueError as error:
        text = bytes(value).decode("utf-8", "replace")
        raise ParameterConversionError(f"invalid JSON {text}") from error
    return b"\x01" + bytes(value)


def _encode_interval(value: Any) -> bytes:
    return _INTERVAL.pack(value.micros, value.days, value.months)


# case -> (OID, format, encoder to bytes)
V4_ONLY_ENCODERS: dict[str, tuple[int, int, Callable[[Any], bytes]]] = {
    "uuid": (UUID_OID, BINARY_FORMAT, _encode_uuid),
    "jsonb": (JSONB_OID, BINARY_FORMAT, _encode_jsonb),
    "decimal": (NUMERIC_OID, TEXT_FORMAT, lambda v: _check_decimal(v).encode()),
    "range-int32": (INT4RANGE_OID, TEXT_FORMAT, lambda v: _range_text(v, str).encode()),
    "range-int64": (INT8RANGE_OID, TEXT_FORMAT, lambda v: _range_text(v, str).encode()),
    "range-decimal": (
        NUMRANGE_OID, TEXT_FORMAT, lambda v: _range_text(v, _check_decimal).encode()
    ),
    "array-int32": (INT4_ARRAY_OID, TEXT_FORMAT, lambda v: _array_text(v, str).encode()),
    "array-int64": (INT8_ARRAY_OID, TEXT_FORMAT, lambda v: _array_text(v, str).encode()),
    "array-decimal": (
        NUMERIC_ARRAY_OID, TEXT_FORMAT, lambda v: _array_text(v, _check_decimal).encode()
    ),
    "array-str": (
        TEXT_ARRAY_OID, TEXT_FORMAT, lambda v: _array_text(v, _quote_array_string).encode()
    ),
    "interval": (INTERVAL_OID, BINARY_FORMAT, _encode_interval),
}


# --- errors -----------------------------------------------------------------------------


def query_error_to_wit(message: str, info: DbErrorInfo | None) -> Variant:
    """Build the v4 `query-error`: `db-error` when the server sent one, else `text`."""
    if info is None:
        return Variant("text", message)
    record = make_record(
        as_text=message,
        severity=info.severity,
        code=info.code,
        message=info.message,
        detail=info.detail,
        extras=list(info.extras),
    )
    return Variant("db-error", record)
