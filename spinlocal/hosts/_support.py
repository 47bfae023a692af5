"""Small helpers shared by the host interface modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wasmtime.component import Variant

from ..resources import RequestContext, resource_type

if TYPE_CHECKING:
    from ..engine import HostState

OK = Variant("ok")


def ok(value: Any = None) -> Variant:
    """Return the `ok` case of a WIT `result`."""
    return Variant("ok", value)


def err(value: Any = None) -> Variant:
    """Return the `err` case of a WIT `result`."""
    return Variant("err", value)


class NoActiveRequest(RuntimeError):
    """A host function ran while no request was being served."""


def current(host: HostState) -> RequestContext:
    """Return the context of the request being served, or raise `NoActiveRequest`."""
    context = host.current
    if context is None:
        raise NoActiveRequest(f"component {host.spec.id!r} called the host outside of a request")
    return context


def add_resource(instance: Any, host: HostState, wit_name: str, kind: str) -> None:
    """Define resource `wit_name` with the host type `kind`, closed when the guest drops it.

    `instance` is a `LinkerInstance` or anything with the same `add_resource` method.
    """

    def drop(store: Any, rep: int) -> None:
        context = host.current
        if context is None:
            return

        obj = context.table.pop(rep)
        close = getattr(obj, "close", None)
        if callable(close):
            close()

    instance.add_resource(wit_name, resource_type(kind)[1], drop)
