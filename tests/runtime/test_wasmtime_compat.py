"""Each wasmtime-py workaround in `spinlocal.wasmtime_compat` is active and correct.

Value conversions run on real WIT types taken from the probe component's imports.
"""

from __future__ import annotations

import ctypes
import functools
import math
import time
from pathlib import Path
from typing import Any

import pytest
from wasmtime import _ffi as ffi
from wasmtime.component import (
    Component,
    EnumType,
    LinkerInstance,
    ListType,
    OptionType,
    Record,
    RecordType,
    ResourceAny,
    ResultType,
    TupleType,
    Variant,
    VariantType,
)

from spinlocal import wasmtime_compat
from tests.support.runtime import component_wasm, shared_cache, shared_engine

ONE_MB = 1024 * 1024


@functools.cache
def probe_component() -> Component:
    return shared_cache().load(shared_engine(), component_wasm("probe"), "probe")


def interface_item(interface: str, name: str) -> Any:
    engine = shared_engine()
    instance_type: Any = probe_component().type.imports(engine)[interface].ty
    return instance_type.exports(engine)[name].ty


def byte_list_type() -> Any:
    """The `list<u8>` inside the result of `store.get`."""
    ok_type: Any = kv_get_result().ok
    return ok_type.payload


def kv_get_result() -> ResultType:
    """The result type of `store.get`: result<option<list<u8>>, error>."""
    result = interface_item("fermyon:spin/key-value@2.0.0", "[method]store.get").result
    assert isinstance(result, ResultType)
    return result


def round_trip(value_type: Any, value: Any) -> Any:
    """Lower `value` to a C component value and lift it back, as a host call does."""
    raw = ffi.wasmtime_component_val_t()
    value_type.convert_to_c(None, value, ctypes.pointer(raw))
    return value_type.convert_from_c(raw)


def test_version_check_rejects_other_release() -> None:
    with pytest.raises(wasmtime_compat.WasmtimeVersionError) as caught:
        wasmtime_compat.check_version("52.0.0")

    message = str(caught.value)
    assert "52.0.0 is installed" in message
    assert "needs wasmtime-py 51.0.0" in message
    assert "pip install wasmtime==51.0.0" in message


def test_version_check_accepts_pinned_release() -> None:
    wasmtime_compat.check_version("51.0.0")

    assert wasmtime_compat.installed_wasmtime_version() == "51.0.0"


def test_install_is_idempotent() -> None:
    wasmtime_compat.install()
    patched = ListType.convert_from_c

    wasmtime_compat.install()

    assert wasmtime_compat.is_installed()
    assert ListType.convert_from_c is patched


def test_result_err_of_option_round_trips() -> None:
    result_type = kv_get_result()

    lifted = round_trip(result_type, Variant("err", Variant("no-such-store")))

    assert lifted == Variant("err", Variant("no-such-store"))


def test_result_err_with_payload_round_trips() -> None:
    lifted = round_trip(kv_get_result(), Variant("err", Variant("other", "disk full")))

    assert lifted == Variant("err", Variant("other", "disk full"))


def test_result_ok_none_round_trips() -> None:
    assert round_trip(kv_get_result(), Variant("ok", None)) == Variant("ok", None)


def test_result_ok_bytes_round_trips() -> None:
    assert round_trip(kv_get_result(), Variant("ok", b"value")) == Variant("ok", b"value")


def test_results_and_variants_tagged() -> None:
    error_code = interface_item("wasi:http/types@0.2.0", "error-code")

    assert isinstance(error_code, VariantType)
    assert error_code._tagged() is True
    assert kv_get_result()._tagged() is True


def test_variant_unknown_case_names_cases() -> None:
    error_code = interface_item("wasi:http/types@0.2.0", "error-code")

    with pytest.raises(ValueError, match="'no-such-case' does not exist; expected one of"):
        round_trip(error_code, Variant("no-such-case"))


def test_variant_lowering_uses_case_table() -> None:
    error_code = interface_item("wasi:http/types@0.2.0", "error-code")

    lifted = round_trip(error_code, Variant("HTTP-response-body-size", 123))

    assert lifted == Variant("HTTP-response-body-size", 123)
    assert "_spinlocal_case_table" in error_code.__dict__


def test_bytes_one_megabyte_round_trip() -> None:
    list_type = byte_list_type()
    data = bytes((i * 31) % 256 for i in range(ONE_MB))

    lifted = round_trip(list_type, data)

    assert isinstance(list_type, ListType)
    assert lifted == data


def test_bytes_empty_round_trip() -> None:
    list_type = byte_list_type()

    assert round_trip(list_type, b"") == b""


def test_bytes_accepts_bytearray_and_memoryview() -> None:
    list_type = byte_list_type()

    assert round_trip(list_type, bytearray(b"abc")) == b"abc"
    assert round_trip(list_type, memoryview(b"xyz")) == b"xyz"


def test_bytes_fast_path_is_faster() -> None:
    list_type = byte_list_type()
    data = bytes(200_000)

    started = time.perf_counter()
    raw = ffi.wasmtime_component_val_t()
    no_store: Any = None  # list<u8> conversion never touches the store
    wasmtime_compat._original_list_to_c(list_type, no_store, data, ctypes.pointer(raw))
    wasmtime_compat._original_list_from_c(list_type, raw)
    slow = time.perf_counter() - started

    started = time.perf_counter()
    round_trip(list_type, data)
    fast = time.perf_counter() - started

    assert fast * 5 < slow


def test_non_byte_lists_keep_stock_conversion() -> None:
    keys_result = interface_item("fermyon:spin/key-value@2.0.0", "[method]store.get-keys").result

    lifted = round_trip(keys_result, Variant("ok", ["a", "bb", ""]))

    assert lifted == Variant("ok", ["a", "bb", ""])


@pytest.mark.parametrize(
    ("interface", "name", "expected_type", "attribute"),
    [
        ("wasi:http/types@0.2.0", "error-code", VariantType, "cases"),
        ("wasi:clocks/wall-clock@0.2.0", "datetime", RecordType, "fields"),
        ("wasi:filesystem/types@0.2.0", "error-code", EnumType, "names"),
    ],
)
def test_type_introspection_memoised(interface: str, name: str, expected_type: type, attribute: str) -> None:
    value_type = interface_item(interface, name)

    assert isinstance(value_type, expected_type)
    assert getattr(value_type, attribute) is getattr(value_type, attribute)


def test_list_tuple_option_result_memoised() -> None:
    from_list = interface_item("wasi:http/types@0.2.0", "[static]fields.from-list")
    entries = from_list.params[0][1]
    path = interface_item("wasi:http/types@0.2.0", "[method]incoming-request.path-with-query").result
    result_type = kv_get_result()

    assert isinstance(entries, ListType)
    assert entries.element is entries.element
    assert isinstance(entries.element, TupleType)
    assert entries.element.elements is entries.element.elements
    assert isinstance(path, OptionType)
    assert path.payload is path.payload
    assert result_type.ok is result_type.ok
    assert result_type.err is result_type.err


class _FakeHandle(ResourceAny):
    """A stand-in for a wasmtime resource handle that records its release."""

    def __init__(self, owned: bool) -> None:
        self._owned = owned

    @property
    def owned(self) -> bool:
        return self._owned

    def to_host(self, store: Any) -> Any:
        return ("released", self)


def test_borrow_arguments_released() -> None:
    seen: list[Any] = []
    wrapped = wasmtime_compat.releasing_borrows(lambda store, *args: seen.extend(args))
    borrowed, owned = _FakeHandle(owned=False), _FakeHandle(owned=True)

    wrapped("store", borrowed, owned, 7)

    assert seen[0] == ("released", borrowed)
    assert seen[1] is owned
    assert seen[2] == 7


def test_borrow_list_arguments_released() -> None:
    seen: list[Any] = []
    wrapped = wasmtime_compat.releasing_borrows(lambda store, handles: seen.extend(handles))
    handles = [_FakeHandle(owned=False), _FakeHandle(owned=False)]

    wrapped("store", handles)

    assert seen == [("released", handles[0]), ("released", handles[1])]


def test_add_func_wraps_host_functions() -> None:
    assert LinkerInstance.add_func is wasmtime_compat._add_func_releasing_borrows


def test_host_call_trampoline_installed() -> None:
    from wasmtime.component import _linker

    assert _linker.func_impl is wasmtime_compat._func_impl


def test_signature_cached_on_function(tmp_path: Path) -> None:
    from wasmtime.component import _linker

    from tests.support.runtime import call, make_runner, make_services, make_spec

    runner = make_runner(make_spec("probe"), make_services(tmp_path))
    assert call(runner, "/counter").status == 200

    cached = [
        func for func in _linker.FUNCTIONS.handles.values() if hasattr(func, "_spinlocal_signature")
    ]
    assert cached


# --- plain-data results lowered through the arena and one deep copy ----------------------


@functools.cache
def pg_probe_component() -> Component:
    return shared_cache().load(shared_engine(), component_wasm("pg_probe"), "pg-probe")


def postgres_item(name: str, interface: str = "spin:postgres/postgres@4.0.0") -> Any:
    engine = shared_engine()
    instance_type: Any = pg_probe_component().type.imports(engine)[interface].ty
    return instance_type.exports(engine)[name].ty


def query_result_type() -> ResultType:
    """result<row-set, error> of the version 4 `connection.query`."""
    result = postgres_item("[method]connection.query").result
    assert isinstance(result, ResultType)
    return result


def lower_with_arena(value_type: Any, value: Any) -> Any:
    """Lower `value` through the arena encoder and lift it back with the stock code."""
    encoder = wasmtime_compat.plain_encoder(value_type)
    assert encoder is not None
    raw = ffi.wasmtime_component_val_t()
    wasmtime_compat.lower_plain(encoder, value, ctypes.pointer(raw))
    return value_type.convert_from_c(raw)


def record_fields(value: Any) -> dict[str, Any]:
    return dict(vars(value))


def test_arena_scalar_cases_round_trip() -> None:
    db_value = postgres_item("db-value")
    values = [
        Variant("boolean", True),
        Variant("boolean", False),
        Variant("int8", -128),
        Variant("int16", 32767),
        Variant("int32", -(2**31)),
        Variant("int64", 2**63 - 1),
        Variant("floating32", 1.5),
        Variant("floating64", -0.0),
        Variant("floating64", float("inf")),
        Variant("timestamp", -1),
    ]

    for value in values:
        assert lower_with_arena(db_value, value) == value


def test_arena_nan_keeps_nan() -> None:
    db_value = postgres_item("db-value")

    lifted = lower_with_arena(db_value, Variant("floating64", float("nan")))

    assert lifted.tag == "floating64"
    assert math.isnan(lifted.payload)


def test_arena_unicode_and_empty_strings() -> None:
    db_value = postgres_item("db-value")

    for text in ["", "plain", "żółw ☃ 𝄞 ✓", "nul\x00inside", "x" * 10_000]:
        assert lower_with_arena(db_value, Variant("str", text)) == Variant("str", text)


def test_arena_variant_without_payload() -> None:
    db_value = postgres_item("db-value")

    assert lower_with_arena(db_value, Variant("db-null")) == Variant("db-null")


def test_arena_bytes_payloads() -> None:
    db_value = postgres_item("db-value")

    assert lower_with_arena(db_value, Variant("binary", b"")) == Variant("binary", b"")
    assert lower_with_arena(db_value, Variant("binary", bytes(range(256)))) == Variant(
        "binary", bytes(range(256))
    )
    assert lower_with_arena(db_value, Variant("jsonb", bytearray(b'{"a": 1}'))) == Variant(
        "jsonb", b'{"a": 1}'
    )
    assert lower_with_arena(db_value, Variant("unsupported", memoryview(b"\x01\x02"))) == Variant(
        "unsupported", b"\x01\x02"
    )


def test_arena_options_inside_lists() -> None:
    db_value = postgres_item("db-value")
    values = [
        Variant("array-int32", [1, None, -3]),
        Variant("array-int32", []),
        Variant("array-int32", [None]),
        Variant("array-str", ["a", None, "ü", ""]),
        Variant("array-int64", [2**63 - 1, None]),
    ]

    for value in values:
        assert lower_with_arena(db_value, value) == value


def test_arena_tuples_enums_records() -> None:
    db_value = postgres_item("db-value")
    date = Variant("date", (2024, 2, 29))
    datetime = Variant("datetime", (1999, 12, 31, 23, 59, 59, 999_999_000))
    unbounded = Variant("range-int32", (None, None))
    bounded = Variant("range-int64", ((1, "inclusive"), (10, "exclusive")))

    assert lower_with_arena(db_value, date) == date
    assert lower_with_arena(db_value, datetime) == datetime
    assert lower_with_arena(db_value, unbounded) == unbounded
    assert lower_with_arena(db_value, bounded) == bounded

    interval: Any = Record()
    interval.micros, interval.days, interval.months = 1, -2, 3
    lifted = lower_with_arena(db_value, Variant("interval", interval))
    assert lifted.tag == "interval"
    assert record_fields(lifted.payload) == {"micros": 1, "days": -2, "months": 3}


def make_row_set(rows: list[list[Any]], columns: list[Any]) -> Variant:
    row_set = Record()
    row_set.columns = columns  # type: ignore[attr-defined]
    row_set.rows = rows  # type: ignore[attr-defined]
    return Variant("ok", row_set)


def make_column(name: str, data_type: Variant) -> Record:
    column = Record()
    column.name = name  # type: ignore[attr-defined]
    setattr(column, "data-type", data_type)  # a WIT field name, not a Python identifier
    return column


def test_arena_row_set_nested_lists() -> None:
    result_type = query_result_type()
    columns = [make_column("id", Variant("int32")), make_column("名前", Variant("str"))]
    rows = [
        [Variant("int32", i), Variant("str", f"row {i} ✓") if i % 3 else Variant("db-null")]
        for i in range(300)
    ]

    lifted = lower_with_arena(result_type, make_row_set(rows, columns))

    assert lifted.tag == "ok"
    assert lifted.payload.rows == rows
    assert [record_fields(column)["name"] for column in lifted.payload.columns] == ["id", "名前"]
    assert [record_fields(column)["data-type"] for column in lifted.payload.columns] == [
        Variant("int32"),
        Variant("str"),
    ]


def test_arena_empty_row_set() -> None:
    lifted = lower_with_arena(query_result_type(), make_row_set([], []))

    assert lifted == Variant("ok", lifted.payload)
    assert lifted.payload.rows == []
    assert lifted.payload.columns == []


def test_arena_empty_rows_inside_list() -> None:
    lifted = lower_with_arena(query_result_type(), make_row_set([[], [Variant("db-null")], []], []))

    assert lifted.payload.rows == [[], [Variant("db-null")], []]


def test_arena_result_err_with_nested_variant() -> None:
    error = Variant("err", Variant("connection-failed", "refused ☹"))

    assert lower_with_arena(query_result_type(), error) == error


def test_arena_matches_stock_lowering() -> None:
    result_type = query_result_type()
    rows = [
        [Variant("int16", 7), Variant("array-str", ["x", None]), Variant("binary", b"\x00\xff")],
        [Variant("db-null"), Variant("floating32", 0.25), Variant("decimal", "1.50")],
    ]
    value = make_row_set(rows, [make_column("c", Variant("int16"))])

    raw = ffi.wasmtime_component_val_t()
    no_store: Any = None  # plain values never touch the store
    result_type.convert_to_c(no_store, value, ctypes.pointer(raw))
    stock = result_type.convert_from_c(raw)
    arena = lower_with_arena(result_type, value)

    assert arena.payload.rows == stock.payload.rows
    assert [vars(c) for c in arena.payload.columns] == [vars(c) for c in stock.payload.columns]


def test_arena_wraps_integers_like_ctypes() -> None:
    db_value = postgres_item("db-value")

    assert lower_with_arena(db_value, Variant("int16", 2**16 + 5)) == Variant("int16", 5)
    assert lower_with_arena(db_value, Variant("int8", 255)) == Variant("int8", -1)


def test_arena_f32_overflow_becomes_infinity() -> None:
    db_value = postgres_item("db-value")

    assert lower_with_arena(db_value, Variant("floating32", 1e300)) == Variant(
        "floating32", float("inf")
    )
    assert lower_with_arena(db_value, Variant("floating32", -1e300)) == Variant(
        "floating32", float("-inf")
    )


def test_arena_unsigned_parameter_cases() -> None:
    parameter = postgres_item("parameter-value", "fermyon:spin/postgres@2.0.0")

    for case, value in [
        ("uint8", 255),
        ("uint16", 65535),
        ("uint32", 2**32 - 1),
        ("uint64", 2**64 - 1),
    ]:
        assert lower_with_arena(parameter, Variant(case, value)) == Variant(case, value)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (Variant("int32", "7"), TypeError, "expected int for S32 type"),
        (Variant("floating64", 1), TypeError, "expected float for F64 type"),
        (Variant("boolean", 1), TypeError, "expected bool for Bool type"),
        (Variant("str", b"bytes"), TypeError, "expected string type"),
        (Variant("binary", [1, 2]), TypeError, "expected bytes value"),
        (Variant("array-int32", (1, 2)), TypeError, "expected list value"),
        (Variant("date", [2024, 1, 1]), TypeError, "expected tuple type"),
        (Variant("date", (2024, 1)), TypeError, "tuple length mismatch"),
        (Variant("no-such-case"), ValueError, "'no-such-case' does not exist"),
        ("int32", TypeError, "expected a wasmtime.component.Variant"),
    ],
)
def test_arena_rejects_invalid_values(value: Any, error: type[Exception], message: str) -> None:
    encoder = wasmtime_compat.plain_encoder(postgres_item("db-value"))
    assert encoder is not None

    with pytest.raises(error, match=message):
        wasmtime_compat.lower_plain(encoder, value, ctypes.pointer(ffi.wasmtime_component_val_t()))


def test_arena_rejects_bad_row_elements() -> None:
    result_type = query_result_type()
    encoder = wasmtime_compat.plain_encoder(result_type)
    assert encoder is not None

    with pytest.raises(TypeError, match="expected a wasmtime.component.Variant"):
        wasmtime_compat.lower_plain(
            encoder, make_row_set([["bare"]], []), ctypes.pointer(ffi.wasmtime_component_val_t())
        )
    with pytest.raises(ValueError, match="'nope' does not exist"):
        wasmtime_compat.lower_plain(
            encoder,
            make_row_set([[Variant("nope")]], []),
            ctypes.pointer(ffi.wasmtime_component_val_t()),
        )
    with pytest.raises(ValueError, match="'maybe' does not exist"):
        wasmtime_compat.lower_plain(
            encoder, Variant("maybe", None), ctypes.pointer(ffi.wasmtime_component_val_t())
        )


def test_arena_flags_and_enums() -> None:
    flags_type = interface_item("wasi:filesystem/types@0.2.0", "descriptor-flags")
    enum_type = interface_item("wasi:filesystem/types@0.2.0", "error-code")

    assert lower_with_arena(flags_type, {"read", "write"}) == {"read", "write"}
    assert lower_with_arena(flags_type, set()) == set()
    assert lower_with_arena(enum_type, "access") == "access"


def test_arena_fallback_for_resources() -> None:
    open_result = postgres_item("[static]connection.open").result
    query = postgres_item("[method]connection.query")
    from_list = interface_item("wasi:http/types@0.2.0", "[static]fields.from-list")

    assert wasmtime_compat.plain_encoder(open_result) is None
    assert wasmtime_compat.plain_encoder(query.params[0][1]) is None
    assert wasmtime_compat.plain_encoder(from_list.result) is None
    assert wasmtime_compat.plain_encoder(query.result) is not None


def test_arena_stock_path_still_lowers_resource_results() -> None:
    open_result = postgres_item("[static]connection.open").result
    error = Variant("err", Variant("connection-failed", "no route"))

    assert round_trip(open_result, error) == error


def test_arena_encoder_cached_on_type() -> None:
    result_type = query_result_type()

    assert wasmtime_compat.plain_encoder(result_type) is wasmtime_compat.plain_encoder(result_type)
    assert "_spinlocal_encoder" in result_type.__dict__


def test_arena_chunks_grow_for_large_values() -> None:
    db_value = postgres_item("db-value")
    text = "ä" * 100_000
    data = bytes(range(256)) * 200

    assert lower_with_arena(db_value, Variant("str", text)) == Variant("str", text)
    assert lower_with_arena(db_value, Variant("binary", data)) == Variant("binary", data)


def test_arena_large_and_small_blocks_mixed() -> None:
    rows = [
        [Variant("binary", bytes([i]) * 50_000), Variant("int32", i), Variant("str", "é" * i)]
        for i in range(40)
    ]

    lifted = lower_with_arena(query_result_type(), make_row_set(rows, []))

    assert lifted.payload.rows == rows


def test_arena_is_faster_than_stock_for_rows() -> None:
    result_type = query_result_type()
    rows = [
        [
            Variant("int32", i),
            Variant("str", f"row {i}"),
            Variant("db-null"),
            Variant("floating64", i / 7),
        ]
        for i in range(500)
    ]
    value = make_row_set(rows, [])
    encoder = wasmtime_compat.plain_encoder(result_type)
    assert encoder is not None

    no_store: Any = None  # plain values never touch the store
    started = time.process_time()
    raw = ffi.wasmtime_component_val_t()
    result_type.convert_to_c(no_store, value, ctypes.pointer(raw))
    ffi.wasmtime_component_val_delete(ctypes.byref(raw))
    stock = time.process_time() - started

    started = time.process_time()
    raw = ffi.wasmtime_component_val_t()
    wasmtime_compat.lower_plain(encoder, value, ctypes.pointer(raw))
    ffi.wasmtime_component_val_delete(ctypes.byref(raw))
    arena = time.process_time() - started

    assert arena * 3 < stock


def test_host_call_results_use_arena(tmp_path: Path) -> None:
    from wasmtime.component import _linker

    from tests.support.runtime import call, make_runner, make_services, make_spec

    runner = make_runner(make_spec("probe"), make_services(tmp_path))
    assert call(runner, "/counter").status == 200

    signatures = [
        func._spinlocal_signature
        for func in _linker.FUNCTIONS.handles.values()
        if hasattr(func, "_spinlocal_signature")
    ]
    assert any(encoder is not None for _, _, encoder in signatures)
    assert any(result is not None and encoder is None for _, result, encoder in signatures)
