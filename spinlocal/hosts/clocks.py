"""`wasi:clocks/{monotonic-clock,wall-clock}@0.2.0`, from the host's clocks in nanoseconds."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from wasmtime.component import LinkerInstance, Record

from ._support import current
from .io import POLLABLE, DeadlinePollable

if TYPE_CHECKING:
    from ..engine import HostState


def datetime_record(nanoseconds: int) -> Record:
    """Return a `wall-clock.datetime` record for a count of nanoseconds."""
    record = Record()
    seconds, remainder = divmod(nanoseconds, 1_000_000_000)
    record.seconds = seconds  # type: ignore[attr-defined]
    record.nanoseconds = remainder  # type: ignore[attr-defined]
    return record


def define(root: LinkerInstance, host: HostState) -> None:
    """Add the monotonic and wall clocks to the linker."""

    def subscribe_instant(store: Any, when: int) -> Any:
        return current(host).own(POLLABLE, DeadlinePollable(when))

    def subscribe_duration(store: Any, duration: int) -> Any:
        return current(host).own(POLLABLE, DeadlinePollable(time.monotonic_ns() + duration))

    with root.add_instance("wasi:clocks/monotonic-clock@0.2.0") as instance:
        instance.add_func("now", lambda store: time.monotonic_ns())
        instance.add_func("resolution", lambda store: 1)
        instance.add_func("subscribe-instant", subscribe_instant)
        instance.add_func("subscribe-duration", subscribe_duration)

    with root.add_instance("wasi:clocks/wall-clock@0.2.0") as instance:
        instance.add_func("now", lambda store: datetime_record(time.time_ns()))
        instance.add_func("resolution", lambda store: datetime_record(1))
