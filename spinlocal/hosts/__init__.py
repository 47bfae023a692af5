"""Host implementations of the interfaces a `spin-http` component imports.

One module per interface family. Each module exposes

    def define(root: wasmtime.component.LinkerInstance, host: HostState) -> None

which adds its instances (for example ``root.add_instance("wasi:io/streams@0.2.0")``),
resources and functions to the linker root. Host functions are closures over ``host``;
per-request state is reached through ``host.current`` (a ``RequestContext``), never
through module globals, because one linker serves many requests.
"""
