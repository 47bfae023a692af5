"""`wasi:cli/*@0.2.0`: environment, stdio, terminals and exit.

The guest sees the component's `environment` table from the manifest, no arguments and
no working directory. Its stdin is empty; each line it writes to stdout or stderr is
logged with the component id. It is never attached to a terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wasmtime.component import LinkerInstance, Variant

from ._support import add_resource, current
from .io import INPUT_STREAM, OUTPUT_STREAM, BytesInputStream, LineLogStream

if TYPE_CHECKING:
    from ..engine import HostState


class GuestExit(Exception):
    """Exit requested by the guest through `wasi:cli/exit.exit` with status `success`."""

    def __init__(self, success: bool) -> None:
        status = "success" if success else "failure"
        super().__init__(f"the component called exit with status {status}")
        self.success = success


def define(root: LinkerInstance, host: HostState) -> None:
    """Add the `wasi:cli` interfaces that a `spin-http` component imports."""
    environment = sorted(host.spec.environment.items())

    with root.add_instance("wasi:cli/environment@0.2.0") as instance:
        instance.add_func("get-environment", lambda store: list(environment))
        instance.add_func("get-arguments", lambda store: [])
        instance.add_func("initial-cwd", lambda store: None)

    def exit_(store: Any, status: Variant) -> None:
        raise GuestExit(status.tag == "ok")

    with root.add_instance("wasi:cli/exit@0.2.0") as instance:
        instance.add_func("exit", exit_)

    def stdin(store: Any) -> Any:
        return current(host).own(INPUT_STREAM, BytesInputStream(b""))

    def stdout(store: Any) -> Any:
        log = host.log
        return current(host).own(
            OUTPUT_STREAM, LineLogStream(lambda line: log.info("stdout: %s", line))
        )

    def stderr(store: Any) -> Any:
        log = host.log
        return current(host).own(
            OUTPUT_STREAM, LineLogStream(lambda line: log.warning("stderr: %s", line))
        )

    with root.add_instance("wasi:cli/stdin@0.2.0") as instance:
        instance.add_func("get-stdin", stdin)
    with root.add_instance("wasi:cli/stdout@0.2.0") as instance:
        instance.add_func("get-stdout", stdout)
    with root.add_instance("wasi:cli/stderr@0.2.0") as instance:
        instance.add_func("get-stderr", stderr)

    with root.add_instance("wasi:cli/terminal-input@0.2.0") as instance:
        add_resource(instance, host, "terminal-input", "wasi:cli/terminal-input.terminal-input")
    with root.add_instance("wasi:cli/terminal-output@0.2.0") as instance:
        add_resource(instance, host, "terminal-output", "wasi:cli/terminal-output.terminal-output")
    for stream in ("stdin", "stdout", "stderr"):
        with root.add_instance(f"wasi:cli/terminal-{stream}@0.2.0") as instance:
            instance.add_func(f"get-terminal-{stream}", lambda store: None)
