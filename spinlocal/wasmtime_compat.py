"""Workarounds that reach into wasmtime-py internals, applied by `install()`.

wasmtime-py 51.0.0 has five behaviours that block or slow down a Spin host:

1. It guesses whether a `result` or `variant` value is tagged from the Python classes
   of its cases. For `result<option<T>, E>` the guess cannot tell `ok` from `err`, so an
   `err` never reaches the guest. `install()` makes every result and variant tagged:
   host functions return and receive `Variant("ok", x)`, `Variant("err", e)`,
   `Variant("closed")`. Options stay untagged (`None` or the payload).
2. `list<u8>` is converted one byte at a time through ctypes (about 0.66 s for 1 MB).
   `install()` copies the bytes in bulk in both directions.
3. Type introspection (`ListType.element`, `VariantType.cases`, `RecordType.fields`,
   ...) walks the C type again for every value, and every host call rebuilds its
   function's parameter and result types. `install()` memoises each property on the
   type object, keeps each host function's signature with the function, and lowers
   tagged variants through a case-lookup table.
4. A host function that receives a `borrow<T>` must release it before returning, or the
   call fails with "borrow handles still remain at the end of the call". `install()`
   wraps every function added with `LinkerInstance.add_func` so borrowed handles,
   including those inside a list argument, arrive as released `ResourceHost` objects.
5. Lowering a host function's result costs several ctypes calls per value: a Rust
   allocation for each variant case name, payload and string. A 500-row, 8-column
   query result took about 26 ms of CPU. For result types without resources,
   `install()` makes the host call trampoline write the whole C value tree into
   Python-owned memory and hand it to wasmtime with one deep copy (about 3 ms).

These patches depend on private names of exactly one wasmtime-py release, so
`install()` checks the installed version first.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import math
import struct
import threading
from collections.abc import Callable
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime.component import FuncType, LinkerInstance, ResourceAny, Variant
from wasmtime.component import _linker as component_linker
from wasmtime.component import _types as component_types
from wasmtime.component._enter import catch_exceptions

EXPECTED_WASMTIME_VERSION = "51.0.0"

_installed = False
_install_lock = threading.Lock()

# One wasmtime_component_val_t is {u8 kind; padding; union of} with a fixed stride, so the
# bytes of a list<u8> sit at offset `_VAL_PAYLOAD_OFFSET` of every `_VAL_SIZE`-byte slot.
_VAL = ffi.wasmtime_component_val_t
_VAL_SIZE = ctypes.sizeof(_VAL)
_VAL_PAYLOAD_OFFSET: int = _VAL.of.offset
_U8_KIND: int = ffi.WASMTIME_COMPONENT_U8.value
_U8_KIND_BYTE = bytes([_U8_KIND])

# Properties that re-read the C type on every access; all wasmtime types are immutable.
_MEMOISED_PROPERTIES: dict[type, tuple[str, ...]] = {
    component_types.ListType: ("element",),
    component_types.VariantType: ("cases",),
    component_types.RecordType: ("fields",),
    component_types.TupleType: ("elements",),
    component_types.OptionType: ("payload",),
    component_types.ResultType: ("ok", "err"),
    component_types.EnumType: ("names",),
    component_types.FlagsType: ("names",),
}


class WasmtimeVersionError(RuntimeError):
    """The installed wasmtime-py is not the release the workarounds were written for."""


def installed_wasmtime_version() -> str:
    """Return the version of the installed `wasmtime` distribution."""
    return importlib.metadata.version("wasmtime")


def check_version(installed: str | None = None) -> None:
    """Raise `WasmtimeVersionError` unless wasmtime-py is exactly the expected release."""
    installed = installed or installed_wasmtime_version()
    if installed != EXPECTED_WASMTIME_VERSION:
        raise WasmtimeVersionError(
            f"spinlocal needs wasmtime-py {EXPECTED_WASMTIME_VERSION} but {installed} is "
            "installed; its workarounds patch private parts of that exact release. "
            f"Fix: pip install wasmtime=={EXPECTED_WASMTIME_VERSION}"
        )


def is_installed() -> bool:
    return _installed


def install() -> None:
    """Check the wasmtime-py version and apply every workaround; later calls do nothing."""
    global _installed
    with _install_lock:
        if _installed:
            return
        check_version()
        _force_tagged_variants()
        _memoise_type_properties()
        _install_variant_lowering()
        _check_value_layout()
        _install_signature_cache()
        _install_bytes_fast_path()
        _install_borrow_release()
        _installed = True


# --- 1. tagged results and variants ----------------------------------------------------


def _always_tagged(self: Any) -> bool:
    return True


def _force_tagged_variants() -> None:
    component_types.ResultType._tagged = _always_tagged  # type: ignore[method-assign]
    component_types.VariantType._tagged = _always_tagged  # type: ignore[method-assign]


# --- 3. memoised type introspection and variant lowering -----------------------------


def _memoise(cls: type, name: str) -> None:
    original = getattr(cls, name)
    if not isinstance(original, property) or original.fget is None:
        raise WasmtimeVersionError(f"wasmtime-py changed: {cls.__name__}.{name} is no longer a property")
    compute = original.fget
    slot = f"_spinlocal_{name}"

    def get(self: Any) -> Any:
        cache = self.__dict__
        try:
            return cache[slot]
        except KeyError:
            value = cache[slot] = compute(self)
            return value

    get.__doc__ = original.__doc__
    setattr(cls, name, property(get))


def _memoise_type_properties() -> None:
    for cls, names in _MEMOISED_PROPERTIES.items():
        for name in names:
            _memoise(cls, name)

    # The case list of options and results is rebuilt from the memoised parts.
    for cls in (component_types.OptionType, component_types.ResultType):
        _memoise_method(cls, "_cases")
    _memoise_method(component_types.ListType, "_is_bytes")


def _memoise_method(cls: type, name: str) -> None:
    compute = getattr(cls, name)
    slot = f"_spinlocal_{name}"

    @functools.wraps(compute)
    def get(self: Any) -> Any:
        cache = self.__dict__
        try:
            return cache[slot]
        except KeyError:
            value = cache[slot] = compute(self)
            return value

    setattr(cls, name, get)


_original_lower = component_types.VariantLikeType._lower


def _case_table(variant_type: Any) -> dict[str, Any]:
    cache = variant_type.__dict__
    table = cache.get("_spinlocal_case_table")
    if table is None:
        table = cache["_spinlocal_case_table"] = dict(variant_type._cases())
    return table


def _lower_variant(self: Any, store: Any, val: Any) -> tuple[str, Any]:
    """Lower a tagged variant or result with one dict lookup; options keep their shape."""
    if isinstance(self, component_types.OptionType):
        if val is None:
            return ("none", None)
        raw = ffi.wasmtime_component_val_t()
        self.payload.convert_to_c(store, val, ctypes.pointer(raw))
        return ("some", ffi.wasmtime_component_val_new(ctypes.byref(raw)))

    if not self._tagged():
        return _original_lower(self, store, val)
    if not isinstance(val, Variant):
        raise TypeError(f"expected a wasmtime.component.Variant for a variant or result, got {val!r}")

    table = _case_table(self)
    try:
        payload_type = table[val.tag]
    except KeyError:
        raise ValueError(
            f"variant case {val.tag!r} does not exist; expected one of {sorted(table)}"
        ) from None
    if payload_type is None:
        return (val.tag, None)
    raw = ffi.wasmtime_component_val_t()
    payload_type.convert_to_c(store, val.payload, ctypes.pointer(raw))
    return (val.tag, ffi.wasmtime_component_val_new(ctypes.byref(raw)))


def _install_variant_lowering() -> None:
    component_types.VariantLikeType._lower = _lower_variant  # type: ignore[method-assign]


_original_func_impl = component_linker.func_impl


def _cached_signature(func: Any, ty_raw: Any, store: Any) -> tuple[list[Any], Any, Encoder | None]:
    """Return (parameter types, result type, result encoder) of a host function.

    They are computed once per function. The encoder is None when the result type
    contains resources, which the stock conversion lowers.

    The signature is stored on the function object itself, so a slab index that wasmtime-py
    reuses for another function after a linker is freed never sees a stale signature.
    """
    signature = getattr(func, "_spinlocal_signature", None)
    if signature is None:
        with FuncType._from_ptr(ty_raw, owner=store) as func_type:
            result_type = func_type.result
            result_encoder = plain_encoder(result_type) if result_type is not None else None
            signature = ([ty for _, ty in func_type.params], result_type, result_encoder)
        try:
            func._spinlocal_signature = signature
        except AttributeError:  # a builtin or bound method: no cache, still correct
            pass
    return signature


@ffi.wasmtime_component_func_callback_t
def _func_impl(
    idx: Any, context: Any, ty_raw: Any, args: Any, nargs: int, results: Any, nresults: int
) -> Any:
    """Host call trampoline: wasmtime-py's `func_impl` with a cached signature."""

    def run(store: Any) -> None:
        func = component_linker.FUNCTIONS.get(idx or 0)
        param_types, result_type, result_encoder = _cached_signature(func, ty_raw, store)
        if len(param_types) != nargs or (result_type is None) != (nresults == 0):
            raise WasmtimeVersionError("host function called with a signature it was not built for")

        python_args = [param_types[i].convert_from_c(args[i]) for i in range(nargs)]
        result = func(store, *python_args)

        if result_encoder is not None:
            lower_plain(result_encoder, result, results)
        elif result_type is not None:
            result_type.convert_to_c(store, result, results)
        elif result is not None:
            raise TypeError(f"host function {func!r} returned {result!r} for a call with no result")

    return catch_exceptions(context, run)


def _install_signature_cache() -> None:
    # `LinkerInstance.add_func` reads the module global at each call, so every function
    # added after install() gets this trampoline.
    component_linker.func_impl = _func_impl


# --- 2. bulk list<u8> ----------------------------------------------------------------

_original_list_from_c = component_types.ListType.convert_from_c
_original_list_to_c = component_types.ListType.convert_to_c


def _list_from_c(self: Any, c: Any) -> Any:
    if not self._is_bytes():
        return _original_list_from_c(self, c)
    size = c.of.list.size
    data = b""
    if size:
        data = ctypes.string_at(c.of.list.data, size * _VAL_SIZE)[_VAL_PAYLOAD_OFFSET::_VAL_SIZE]
    ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))
    return data


def _list_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
    if not self._is_bytes() or not isinstance(val, (bytes, bytearray, memoryview)):
        return _original_list_to_c(self, store, val, ptr)
    data = bytes(val)
    size = len(data)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, size)
    if size:
        slots = bytearray(size * _VAL_SIZE)
        slots[0::_VAL_SIZE] = bytes([_U8_KIND]) * size
        slots[_VAL_PAYLOAD_OFFSET::_VAL_SIZE] = data
        ctypes.memmove(raw.data, bytes(slots), len(slots))
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw
    return None


def _install_bytes_fast_path() -> None:
    if ctypes.sizeof(_VAL) % 8 or _VAL.kind.offset != 0:
        raise WasmtimeVersionError("wasmtime-py changed the layout of wasmtime_component_val_t")
    component_types.ListType.convert_from_c = _list_from_c  # type: ignore[method-assign]
    component_types.ListType.convert_to_c = _list_to_c  # type: ignore[method-assign]


# --- 4. automatic release of borrowed handles ------------------------------------------

_original_add_func = LinkerInstance.add_func


def _release_borrow(store: Any, value: Any) -> Any:
    if isinstance(value, ResourceAny) and not value.owned:
        return value.to_host(store)
    if isinstance(value, list) and value and isinstance(value[0], ResourceAny):
        return [_release_borrow(store, item) for item in value]
    return value


def releasing_borrows(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a host function so every borrowed handle argument is released on entry."""

    @functools.wraps(func)
    def wrapper(store: Any, *args: Any) -> Any:
        released = [_release_borrow(store, arg) for arg in args]
        return func(store, *released)

    return wrapper


def _add_func_releasing_borrows(self: LinkerInstance, name: str, func: Callable[..., Any]) -> None:
    _original_add_func(self, name, releasing_borrows(func))


def _install_borrow_release() -> None:
    LinkerInstance.add_func = _add_func_releasing_borrows  # type: ignore[method-assign]


# --- 5. plain-data results lowered with one deep copy ----------------------------------
#
# Lowering a value through wasmtime-py costs several ctypes calls per node (a Rust
# allocation for every variant case name, payload box and string). For a result that
# contains no resources, `_func_impl` instead writes the whole `wasmtime_component_val_t`
# tree into Python-owned memory (`_Arena`) and makes one `wasmtime_component_val_clone`
# call, which deep-copies the tree into memory that wasmtime owns and frees. The Python
# copy is released with the arena, so nothing leaks when an encoder raises halfway.

_ENTRY_SIZE = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry_t)
_ENTRY_VALUE_OFFSET: int = ffi.wasmtime_component_valrecord_entry_t.val.offset
_NAME_SIZE = ctypes.sizeof(ffi.wasm_name_t)

_BOOL_KIND: int = ffi.WASMTIME_COMPONENT_BOOL.value
_CHAR_KIND: int = ffi.WASMTIME_COMPONENT_CHAR.value
_F32_KIND: int = ffi.WASMTIME_COMPONENT_F32.value
_F64_KIND: int = ffi.WASMTIME_COMPONENT_F64.value
_STRING_KIND: int = ffi.WASMTIME_COMPONENT_STRING.value
_LIST_KIND: int = ffi.WASMTIME_COMPONENT_LIST.value
_RECORD_KIND: int = ffi.WASMTIME_COMPONENT_RECORD.value
_TUPLE_KIND: int = ffi.WASMTIME_COMPONENT_TUPLE.value
_VARIANT_KIND: int = ffi.WASMTIME_COMPONENT_VARIANT.value
_ENUM_KIND: int = ffi.WASMTIME_COMPONENT_ENUM.value
_OPTION_KIND: int = ffi.WASMTIME_COMPONENT_OPTION.value
_RESULT_KIND: int = ffi.WASMTIME_COMPONENT_RESULT.value
_FLAGS_KIND: int = ffi.WASMTIME_COMPONENT_FLAGS.value

# Integer kinds with the mask that ctypes applies when it stores an out-of-range int.
_INTEGER_TYPES: dict[type, tuple[int, int]] = {
    component_types.S8: (ffi.WASMTIME_COMPONENT_S8.value, 0xFF),
    component_types.U8: (ffi.WASMTIME_COMPONENT_U8.value, 0xFF),
    component_types.S16: (ffi.WASMTIME_COMPONENT_S16.value, 0xFFFF),
    component_types.U16: (ffi.WASMTIME_COMPONENT_U16.value, 0xFFFF),
    component_types.S32: (ffi.WASMTIME_COMPONENT_S32.value, 0xFFFF_FFFF),
    component_types.U32: (ffi.WASMTIME_COMPONENT_U32.value, 0xFFFF_FFFF),
    component_types.S64: (ffi.WASMTIME_COMPONENT_S64.value, 0xFFFF_FFFF_FFFF_FFFF),
    component_types.U64: (ffi.WASMTIME_COMPONENT_U64.value, 0xFFFF_FFFF_FFFF_FFFF),
}

# Little-endian images of one value: the kind byte, padding up to the union, the union.
_PACK_WORD = struct.Struct("<B7xQ").pack_into  # integers, bool, option payload pointer
_PACK_F32 = struct.Struct("<B7xf").pack_into
_PACK_F64 = struct.Struct("<B7xd").pack_into
_PACK_VECTOR = struct.Struct("<B7xQQ").pack_into  # {size, data}: string, list, record, ...
_PACK_VARIANT = struct.Struct("<B7xQQQ").pack_into  # case name {size, data}, payload pointer
_PACK_RESULT = struct.Struct("<B7x?7xQ").pack_into  # is_ok, payload pointer
_PACK_NAME = struct.Struct("<QQ").pack_into  # wasm_name_t {size, data}

_FIRST_CHUNK_BYTES = 512  # most host call results fit; large ones grow it fourfold per chunk

_val_clone = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(
    ("wasmtime_component_val_clone", ffi.dll)
)

Encoder = Callable[["_Arena", bytearray, int, Any], None]


class _Arena:
    """Python-owned memory for one C value tree, valid while the arena object lives.

    Each chunk is a bytearray pinned by a ctypes view, so its address never moves.
    `alloc` hands out 8-byte aligned blocks, zero-filled.
    """

    __slots__ = ("_views", "base", "buffer", "capacity", "used")

    def __init__(self) -> None:
        self._views: list[Any] = []
        self.buffer, self.base = self._pinned_chunk(_FIRST_CHUNK_BYTES)
        self.used = 0
        self.capacity = _FIRST_CHUNK_BYTES

    def _pinned_chunk(self, size: int) -> tuple[bytearray, int]:
        buffer = bytearray(size)
        view = (ctypes.c_char * size).from_buffer(buffer)
        self._views.append(view)
        return buffer, ctypes.addressof(view)

    def alloc(self, size: int) -> tuple[bytearray, int, int]:
        """Return (buffer, offset, address) of a new block of `size` bytes."""
        start = self.used
        end = start + ((size + 7) & -8)
        if end <= self.capacity:
            self.used = end
            return self.buffer, start, self.base + start

        if size > self.capacity:
            # A block larger than the current chunk (a big string or byte list) gets a
            # chunk of its own, so later small blocks do not inflate the chunk size.
            buffer, base = self._pinned_chunk(size)
            return buffer, 0, base

        self.capacity *= 4
        self.buffer, self.base = self._pinned_chunk(self.capacity)
        self.used = (size + 7) & -8
        return self.buffer, 0, self.base


class _StaticName:
    """A name that lives as long as its encoder, so values can point at it."""

    __slots__ = ("address", "buffer", "size")

    def __init__(self, name: str) -> None:
        data = name.encode("utf-8")
        self.buffer = ctypes.create_string_buffer(data, len(data) + 1)
        self.size = len(data)
        self.address = ctypes.addressof(self.buffer)


def _copy_bytes(arena: _Arena, data: bytes) -> int:
    """Copy `data` into the arena and return its address (any non-null one when empty)."""
    size = len(data)
    if not size:
        return arena.base
    buffer, start, address = arena.alloc(size)
    buffer[start : start + size] = data
    return address


def plain_encoder(value_type: Any) -> Encoder | None:
    """Return the arena encoder of `value_type`, or None if it contains resources.

    Encoders are built once per type object and kept on it.
    """
    cache = getattr(value_type, "__dict__", None)
    if cache is not None and "_spinlocal_encoder" in cache:
        encoder: Encoder | None = cache["_spinlocal_encoder"]
        return encoder
    encoder = _build_encoder(value_type)
    if cache is not None:
        cache["_spinlocal_encoder"] = encoder
    return encoder


def _build_encoder(value_type: Any) -> Encoder | None:
    cls = type(value_type)
    if cls in _INTEGER_TYPES:
        return _integer_encoder(cls.__name__, *_INTEGER_TYPES[cls])
    builder = _ENCODER_BUILDERS.get(cls)
    if builder is None:  # own, borrow, future, stream, error-context
        return None
    return builder(value_type)


def _integer_encoder(type_name: str, kind: int, mask: int) -> Encoder:
    message = f"expected int for {type_name} type"

    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, int):
            raise TypeError(message)
        _PACK_WORD(buffer, offset, kind, value & mask)

    return encode


def _bool_encoder(value_type: Any) -> Encoder:
    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, bool):
            raise TypeError("expected bool for Bool type")
        _PACK_WORD(buffer, offset, _BOOL_KIND, value)

    return encode


def _f32_encoder(value_type: Any) -> Encoder:
    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, float):
            raise TypeError("expected float for F32 type")
        try:
            _PACK_F32(buffer, offset, _F32_KIND, value)
        except OverflowError:  # ctypes stores an out-of-range float as infinity
            _PACK_F32(buffer, offset, _F32_KIND, math.copysign(math.inf, value))

    return encode


def _f64_encoder(value_type: Any) -> Encoder:
    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, float):
            raise TypeError("expected float for F64 type")
        _PACK_F64(buffer, offset, _F64_KIND, value)

    return encode


def _char_encoder(value_type: Any) -> Encoder:
    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, str) or len(value) != 1:
            raise TypeError("expected single-character string for Char type")
        _PACK_WORD(buffer, offset, _CHAR_KIND, ord(value))

    return encode


def _string_encoder(value_type: Any) -> Encoder:
    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, str):
            raise TypeError("expected string type")
        data = value.encode("utf-8")
        _PACK_VECTOR(buffer, offset, _STRING_KIND, len(data), _copy_bytes(arena, data))

    return encode


def _list_encoder(value_type: Any) -> Encoder | None:
    if value_type._is_bytes():
        return _encode_byte_list
    encode_element = plain_encoder(value_type.element)
    if encode_element is None:
        return None
    variant_cases = getattr(encode_element, "variant_cases", None)
    if variant_cases is not None:
        return _variant_list_encoder(variant_cases, encode_element)

    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, list):
            raise TypeError("expected list value")
        size = len(value)
        if not size:
            _PACK_VECTOR(buffer, offset, _LIST_KIND, 0, arena.base)
            return
        items, start, address = arena.alloc(size * _VAL_SIZE)
        for item in value:
            encode_element(arena, items, start, item)
            start += _VAL_SIZE
        _PACK_VECTOR(buffer, offset, _LIST_KIND, size, address)

    return encode


def _variant_list_encoder(
    cases: dict[str, tuple[int, int, Encoder | None]], encode_element: Encoder
) -> Encoder:
    """Encode a list<variant> with the elements and all payload slots in one block.

    This is the shape of a database row, so it is the hot loop of large query results.
    `cases` comes from the element encoder `encode_element`, which owns the case names.
    """
    expected = sorted(cases)

    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, list):
            raise TypeError("expected list value")
        size = len(value)
        if not size:
            _PACK_VECTOR(buffer, offset, _LIST_KIND, 0, arena.base)
            return
        items, start, address = arena.alloc(2 * size * _VAL_SIZE)
        payload_start = start + size * _VAL_SIZE
        payload_address = address + size * _VAL_SIZE
        for item in value:
            if not isinstance(item, Variant):
                raise TypeError(_not_a_variant(item))
            try:
                name_size, name_address, encode_payload = cases[item.tag]
            except KeyError:
                raise ValueError(_unknown_case(item.tag, expected)) from None
            if encode_payload is None:
                _PACK_VARIANT(items, start, _VARIANT_KIND, name_size, name_address, 0)
            else:
                encode_payload(arena, items, payload_start, item.payload)
                _PACK_VARIANT(items, start, _VARIANT_KIND, name_size, name_address, payload_address)
            start += _VAL_SIZE
            payload_start += _VAL_SIZE
            payload_address += _VAL_SIZE
        _PACK_VECTOR(buffer, offset, _LIST_KIND, size, address)

    encode.element_encoder = encode_element  # type: ignore[attr-defined]  # keeps the names alive
    return encode


def _encode_byte_list(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
    """Write a list<u8> as the C API wants it: one U8 value slot per byte."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("expected bytes value")
    data = bytes(value)
    size = len(data)
    if not size:
        _PACK_VECTOR(buffer, offset, _LIST_KIND, 0, arena.base)
        return
    slots, start, address = arena.alloc(size * _VAL_SIZE)
    end = start + size * _VAL_SIZE
    slots[start:end:_VAL_SIZE] = _U8_KIND_BYTE * size
    slots[start + _VAL_PAYLOAD_OFFSET : end : _VAL_SIZE] = data
    _PACK_VECTOR(buffer, offset, _LIST_KIND, size, address)


def _record_encoder(value_type: Any) -> Encoder | None:
    fields = []
    for name, field_type in value_type.fields:
        encode_field = plain_encoder(field_type)
        if encode_field is None:
            return None
        fields.append((name, _StaticName(name), encode_field))
    count = len(fields)

    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        entries, start, address = arena.alloc(count * _ENTRY_SIZE)
        for name, static_name, encode_field in fields:
            _PACK_NAME(entries, start, static_name.size, static_name.address)
            encode_field(arena, entries, start + _ENTRY_VALUE_OFFSET, getattr(value, name))
            start += _ENTRY_SIZE
        _PACK_VECTOR(buffer, offset, _RECORD_KIND, count, address)

    return encode


def _tuple_encoder(value_type: Any) -> Encoder | None:
    encoders = [plain_encoder(element) for element in value_type.elements]
    if any(encode is None for encode in encoders):
        return None
    count = len(encoders)

    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, tuple):
            raise TypeError("expected tuple type")
        if len(value) != count:
            raise TypeError("tuple length mismatch")
        items, start, address = arena.alloc(count * _VAL_SIZE)
        for encode_element, item in zip(encoders, value):
            encode_element(arena, items, start, item)  # type: ignore[misc]
            start += _VAL_SIZE
        _PACK_VECTOR(buffer, offset, _TUPLE_KIND, count, address)

    return encode


def _variant_encoder(value_type: Any) -> Encoder | None:
    # Case name -> (name size, name address, payload encoder or None).
    cases: dict[str, tuple[int, int, Encoder | None]] = {}
    names = []
    for name, payload_type in value_type.cases:
        encode_payload = None
        if payload_type is not None:
            encode_payload = plain_encoder(payload_type)
            if encode_payload is None:
                return None
        static_name = _StaticName(name)
        names.append(static_name)
        cases[name] = (static_name.size, static_name.address, encode_payload)
    expected = sorted(cases)

    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, Variant):
            raise TypeError(_not_a_variant(value))
        try:
            name_size, name_address, encode_payload = cases[value.tag]
        except KeyError:
            raise ValueError(_unknown_case(value.tag, expected)) from None
        payload_address = 0
        if encode_payload is not None:
            slot, start, payload_address = arena.alloc(_VAL_SIZE)
            encode_payload(arena, slot, start, value.payload)
        _PACK_VARIANT(buffer, offset, _VARIANT_KIND, name_size, name_address, payload_address)

    encode.variant_cases = cases  # type: ignore[attr-defined]
    encode.case_names = names  # type: ignore[attr-defined]  # keeps the name buffers alive
    return encode


def _not_a_variant(value: Any) -> str:
    return f"expected a wasmtime.component.Variant for a variant or result, got {value!r}"


def _unknown_case(tag: Any, expected: list[str]) -> str:
    return f"variant case {tag!r} does not exist; expected one of {expected}"


def _option_encoder(value_type: Any) -> Encoder | None:
    encode_payload = plain_encoder(value_type.payload)
    if encode_payload is None:
        return None

    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        payload_address = 0
        if value is not None:
            slot, start, payload_address = arena.alloc(_VAL_SIZE)
            encode_payload(arena, slot, start, value)
        _PACK_WORD(buffer, offset, _OPTION_KIND, payload_address)

    return encode


def _result_encoder(value_type: Any) -> Encoder | None:
    cases: dict[str, tuple[bool, Encoder | None]] = {}
    for name, payload_type in value_type._cases():
        encode_payload = None
        if payload_type is not None:
            encode_payload = plain_encoder(payload_type)
            if encode_payload is None:
                return None
        cases[name] = (name == "ok", encode_payload)
    expected = sorted(cases)

    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, Variant):
            raise TypeError(_not_a_variant(value))
        try:
            is_ok, encode_payload = cases[value.tag]
        except KeyError:
            raise ValueError(_unknown_case(value.tag, expected)) from None
        payload_address = 0
        if encode_payload is not None:
            slot, start, payload_address = arena.alloc(_VAL_SIZE)
            encode_payload(arena, slot, start, value.payload)
        _PACK_RESULT(buffer, offset, _RESULT_KIND, is_ok, payload_address)

    return encode


def _enum_encoder(value_type: Any) -> Encoder:
    names = {name: _StaticName(name) for name in value_type.names}

    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, str):
            raise TypeError("expected str type")
        static_name = names.get(value)
        if static_name is None:  # wasmtime rejects it when it lowers the value
            data = value.encode("utf-8")
            _PACK_VECTOR(buffer, offset, _ENUM_KIND, len(data), _copy_bytes(arena, data))
            return
        _PACK_VECTOR(buffer, offset, _ENUM_KIND, static_name.size, static_name.address)

    return encode


def _flags_encoder(value_type: Any) -> Encoder:
    def encode(arena: _Arena, buffer: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, set):
            raise TypeError("expected set type for Flags type")
        for name in value:
            if not isinstance(name, str):
                raise TypeError("expected set of strings for Flags type")
        count = len(value)
        if not count:
            _PACK_VECTOR(buffer, offset, _FLAGS_KIND, 0, arena.base)
            return
        names, start, address = arena.alloc(count * _NAME_SIZE)
        for name in value:
            data = name.encode("utf-8")
            _PACK_NAME(names, start, len(data), _copy_bytes(arena, data))
            start += _NAME_SIZE
        _PACK_VECTOR(buffer, offset, _FLAGS_KIND, count, address)

    return encode


_ENCODER_BUILDERS: dict[type, Callable[[Any], Encoder | None]] = {
    component_types.Bool: _bool_encoder,
    component_types.F32: _f32_encoder,
    component_types.F64: _f64_encoder,
    component_types.Char: _char_encoder,
    component_types.String: _string_encoder,
    component_types.ListType: _list_encoder,
    component_types.RecordType: _record_encoder,
    component_types.TupleType: _tuple_encoder,
    component_types.VariantType: _variant_encoder,
    component_types.OptionType: _option_encoder,
    component_types.ResultType: _result_encoder,
    component_types.EnumType: _enum_encoder,
    component_types.FlagsType: _flags_encoder,
}


def lower_plain(encode: Encoder, value: Any, ptr: Any) -> None:
    """Write `value` into the C value at `ptr` (wasmtime then owns it) with one copy call."""
    arena = _Arena()
    root, start, address = arena.alloc(_VAL_SIZE)
    encode(arena, root, start, value)
    _val_clone(address, ptr)


def _check_value_layout() -> None:
    """Raise unless `wasmtime_component_val_t` has the layout the encoders write."""

    def field(structure: Any, name: str) -> Any:
        return getattr(structure, name)

    expected = {
        "value size": (_VAL_SIZE, 32),
        "union offset": (_VAL_PAYLOAD_OFFSET, 8),
        "record entry size": (_ENTRY_SIZE, 48),
        "record entry value offset": (_ENTRY_VALUE_OFFSET, 16),
        "name size": (_NAME_SIZE, 16),
        "name data offset": (field(ffi.wasm_name_t, "data").offset, 8),
        "list data offset": (field(ffi.wasmtime_component_vallist_t, "data").offset, 8),
        "record data offset": (field(ffi.wasmtime_component_valrecord_t, "data").offset, 8),
        "tuple data offset": (field(ffi.wasmtime_component_valtuple_t, "data").offset, 8),
        "flags data offset": (field(ffi.wasmtime_component_valflags_t, "data").offset, 8),
        "variant payload offset": (field(ffi.wasmtime_component_valvariant_t, "val").offset, 16),
        "result payload offset": (field(ffi.wasmtime_component_valresult_t, "val").offset, 8),
        "option size": (field(ffi.wasmtime_component_valunion_t, "option").size, 8),
    }
    for what, (actual, wanted) in expected.items():
        if actual != wanted:
            raise WasmtimeVersionError(
                f"wasmtime-py changed the layout of wasmtime_component_val_t: "
                f"{what} is {actual}, expected {wanted}"
            )
