"""Each wasmtime-py workaround in `spinlocal.wasmtime_compat` is active and correct.

Value conversions run on real WIT types taken from the probe component's imports.
"""

from __future__ import annotations

import ctypes
import functools
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
