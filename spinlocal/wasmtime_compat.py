"""Workarounds that reach into wasmtime-py internals, applied by `install()`.

wasmtime-py 51.0.0 has four behaviours that block or slow down a Spin host:

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

These patches depend on private names of exactly one wasmtime-py release, so
`install()` checks the installed version first.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
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


def _cached_signature(func: Any, ty_raw: Any, store: Any) -> tuple[list[Any], Any]:
    """Return (parameter types, result type) of a host function, computed once per function.

    The signature is stored on the function object itself, so a slab index that wasmtime-py
    reuses for another function after a linker is freed never sees a stale signature.
    """
    signature = getattr(func, "_spinlocal_signature", None)
    if signature is None:
        with FuncType._from_ptr(ty_raw, owner=store) as func_type:
            signature = ([ty for _, ty in func_type.params], func_type.result)
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
        param_types, result_type = _cached_signature(func, ty_raw, store)
        if len(param_types) != nargs or (result_type is None) != (nresults == 0):
            raise WasmtimeVersionError("host function called with a signature it was not built for")

        python_args = [param_types[i].convert_from_c(args[i]) for i in range(nargs)]
        result = func(store, *python_args)

        if result_type is not None:
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
