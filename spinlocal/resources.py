"""Host-side resource handles and the per-request context that owns them.

A component instance lives for one request. Every host object handed to the guest
(streams, fields, connections, outbound requests) is stored in that request's
`ResourceTable`. When the request ends, `RequestContext.close()` releases whatever
the guest did not drop, so nothing leaks into the next request.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasmtime.component import ResourceAny, ResourceHost, ResourceType

# Representation numbers are unique across requests and stores, so a stale handle from
# an earlier request can never resolve to an object of the current one.
_next_rep = itertools.count(1)

_resource_types: dict[str, tuple[int, ResourceType]] = {}
_next_type_id = itertools.count(100)


def resource_type(name: str) -> tuple[int, ResourceType]:
    """Return the (type id, ResourceType) registered for a host resource name.

    Names are the WIT resource names qualified by their interface when they could clash,
    for example "wasi:io/streams.input-stream". The same name always yields the same type.
    """
    entry = _resource_types.get(name)
    if entry is None:
        type_id = next(_next_type_id)
        entry = (type_id, ResourceType.host(type_id))
        _resource_types[name] = entry
    return entry


class ResourceTable:
    """Objects behind the resource handles of one request, keyed by representation."""

    def __init__(self) -> None:
        self._items: dict[int, Any] = {}

    def push(self, obj: Any) -> int:
        rep = next(_next_rep) & 0xFFFFFFFF
        self._items[rep] = obj
        return rep

    def get(self, rep: int) -> Any:
        return self._items[rep]

    def pop(self, rep: int) -> Any:
        return self._items.pop(rep, None)

    def drain(self) -> list[Any]:
        """Remove and return every object still in the table."""
        leftovers = list(self._items.values())
        self._items.clear()
        return leftovers

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class RequestContext:
    """State of one request served by one component instance.

    `cleanups` run when the request ends, in reverse order of registration; objects left
    in the table that have a `close()` method are closed too.
    """

    component_id: str
    log: logging.LoggerAdapter[logging.Logger]
    table: ResourceTable = field(default_factory=ResourceTable)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def own(self, kind: str, obj: Any) -> ResourceHost:
        """Store `obj` and return an owned handle of resource type `kind` for the guest."""
        return ResourceHost.own(self.table.push(obj), resource_type(kind)[0])

    def get(self, store: Any, handle: ResourceAny | ResourceHost) -> Any:
        """Return the object behind a borrowed or owned handle, leaving it in the table."""
        host_handle = handle if isinstance(handle, ResourceHost) else handle.to_host(store)
        return self.table.get(host_handle.rep)

    def take(self, store: Any, handle: ResourceAny | ResourceHost) -> Any:
        """Remove the object behind an owned handle the guest passed to the host."""
        host_handle = handle if isinstance(handle, ResourceHost) else handle.to_host(store)
        return self.table.pop(host_handle.rep)

    def close(self) -> None:
        """Release everything the request still owns, logging each error instead of raising it."""
        while self.cleanups:
            cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception:
                self.log.exception("cleanup failed at the end of the request")

        for obj in self.table.drain():
            close = getattr(obj, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    self.log.exception("closing a leftover %s failed", type(obj).__name__)
