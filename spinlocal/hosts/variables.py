"""`fermyon:spin/variables@2.0.0`: a component reads its own variables.

A component can read only the names in its `[component.<id>.variables]` table; each value is
that table's template rendered from the application variables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wasmtime.component import LinkerInstance, Variant

from ..variables import VariableError
from ._support import err, ok

if TYPE_CHECKING:
    from ..engine import HostState

# VariableError kinds are named after the cases of the interface's `error` variant.
_ERROR_CASES = frozenset({"invalid-name", "undefined", "provider", "other"})


def error_variant(error: VariableError) -> Variant:
    """Return the WIT `error` case for a `VariableError`; unknown kinds become `other`."""
    case = error.kind if error.kind in _ERROR_CASES else "other"
    return Variant(case, error.message)


def define(root: LinkerInstance, host: HostState) -> None:
    """Add `fermyon:spin/variables@2.0.0` to the linker."""

    def get(store: Any, name: str) -> Variant:
        try:
            return ok(host.services.variables.component_variable(host.spec, name))
        except VariableError as error:
            host.log.info("variable %r: %s", name, error.message)
            return err(error_variant(error))

    with root.add_instance("fermyon:spin/variables@2.0.0") as instance:
        instance.add_func("get", get)
