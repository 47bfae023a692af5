"""Imports that no host module implements: they log one clear line, then trap.

spin-sdk components import many interfaces they may never call (`fermyon:spin/llm`,
`fermyon:spin/mqtt`, `wasi:sockets/*`, ...). Every one must be defined for the component
to link. After the other host modules ran, this module walks the component's imports and
defines each missing function as a host function that logs the interface and function the
component called, then traps. The request then fails with a 500 instead of hanging or
failing silently. Missing resources get a host resource type of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Self

import wasmtime
from wasmtime.component import ComponentInstanceType, FuncType, LinkerInstance, ResourceType

from ._support import add_resource

if TYPE_CHECKING:
    from ..engine import HostState


class UnsupportedImport(Exception):
    """The component called an import that this runtime does not implement."""


class DefinitionRecorder:
    """A linker instance wrapper that records the names each host module defines.

    Host modules receive it in place of the linker root, so `define_missing` can tell
    which imports are still undefined.
    """

    def __init__(
        self, instance: LinkerInstance, path: str = "", defined: dict[str, set[str]] | None = None
    ) -> None:
        self._instance = instance
        self._path = path
        self.defined: dict[str, set[str]] = defined if defined is not None else {}

    def add_instance(self, name: str) -> DefinitionRecorder:
        self.defined.setdefault(name, set())
        return DefinitionRecorder(self._instance.add_instance(name), name, self.defined)

    def add_func(self, name: str, func: Callable[..., Any]) -> None:
        self._instance.add_func(name, func)
        self.defined.setdefault(self._path, set()).add(name)

    def add_resource(self, name: str, ty: ResourceType, dtor: Callable[[Any, int], None]) -> None:
        self._instance.add_resource(name, ty, dtor)
        self.defined.setdefault(self._path, set()).add(name)

    def __enter__(self) -> Self:
        self._instance.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:  # noqa: PYI036 - passed through unchanged
        self._instance.__exit__(*exc_info)


def define_missing(
    root: DefinitionRecorder,
    host: HostState,
    imports: Mapping[str, Any],
    engine: wasmtime.Engine,
) -> list[str]:
    """Define a logging trap for every imported function left undefined; return their names.

    An interface a host module already added is reopened: wasmtime merges the new
    definitions into it, so a partly implemented interface gets traps for the rest.
    """
    seen_resources: list[ResourceType] = []
    stubbed: list[str] = []

    for interface, extern in imports.items():
        item = extern.ty
        if not isinstance(item, ComponentInstanceType):
            host.log.warning(
                "import %s is not an interface instance; it will trap if used", interface
            )
            continue

        exports = item.exports(engine)
        defined = root.defined.get(interface, set())
        resources = [
            name for name in _own_resources(exports, seen_resources) if name not in defined
        ]
        functions = [
            name
            for name, ext in exports.items()
            if isinstance(ext.ty, FuncType) and name not in defined
        ]
        if not resources and not functions:
            continue

        with root.add_instance(interface) as instance:
            for name in resources:
                add_resource(instance, host, name, f"{interface}.{name}")
            for name in functions:
                instance.add_func(name, _trap(host, interface, name))
                stubbed.append(f"{interface}#{name}")

    host.log.debug("imports defined as logging traps: %s", ", ".join(stubbed) or "none")
    return stubbed


def _own_resources(exports: Mapping[str, Any], seen: list[ResourceType]) -> list[str]:
    """Return the resources an interface defines itself, skipping those it `use`s.

    A `use`d resource shows up in the importing interface too, with a type equal to the
    one of the interface that defines it, which comes earlier in the import list.
    """
    names = []
    for name, ext in exports.items():
        ty = ext.ty
        if not isinstance(ty, ResourceType):
            continue
        if any(ty == earlier for earlier in seen):
            continue
        seen.append(ty)
        names.append(name)
    return names


def _trap(host: HostState, interface: str, function: str) -> Callable[..., Any]:
    def unsupported(store: Any, *args: Any) -> Any:
        host.log.error(
            "component %s called %s#%s, which spinlocal does not implement; "
            "the request fails with a trap",
            host.spec.id,
            interface,
            function,
        )
        raise UnsupportedImport(f"{interface}#{function} is not implemented by spinlocal")

    return unsupported


