"""`wasi:filesystem/{types,preopens}@0.2.0` with no directories.

Spin gives a component no files unless its manifest lists `files`, which this runtime does
not support, so the guest sees no preopened directories. wasi-libc asks for them even to
print to stdout, so `get-directories` must answer rather than trap. The `types` functions
are left to `hosts.unsupported`, since no descriptor can ever reach the guest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wasmtime.component import LinkerInstance

from ._support import add_resource

if TYPE_CHECKING:
    from ..engine import HostState


def define(root: LinkerInstance, host: HostState) -> None:
    """Add the filesystem resources and an empty list of preopened directories."""
    with root.add_instance("wasi:filesystem/types@0.2.0") as instance:
        add_resource(instance, host, "descriptor", "wasi:filesystem/types.descriptor")
        add_resource(
            instance,
            host,
            "directory-entry-stream",
            "wasi:filesystem/types.directory-entry-stream",
        )

    with root.add_instance("wasi:filesystem/preopens@0.2.0") as instance:
        instance.add_func("get-directories", lambda store: [])
