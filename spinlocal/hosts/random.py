"""`wasi:random/{random,insecure,insecure-seed}@0.2.0`.

Secure bytes come from the operating system (`secrets`); the insecure interfaces use a
per-process `random.Random`, as WASI allows.
"""

from __future__ import annotations

import random
import secrets
from typing import TYPE_CHECKING

from wasmtime.component import LinkerInstance

if TYPE_CHECKING:
    from ..engine import HostState

_insecure = random.Random()


def define(root: LinkerInstance, host: HostState) -> None:
    """Add the three random interfaces to the linker."""
    with root.add_instance("wasi:random/random@0.2.0") as instance:
        instance.add_func("get-random-bytes", lambda store, size: secrets.token_bytes(size))
        instance.add_func("get-random-u64", lambda store: secrets.randbits(64))

    with root.add_instance("wasi:random/insecure@0.2.0") as instance:
        instance.add_func(
            "get-insecure-random-bytes", lambda store, size: _insecure.randbytes(size)
        )
        instance.add_func("get-insecure-random-u64", lambda store: _insecure.getrandbits(64))

    with root.add_instance("wasi:random/insecure-seed@0.2.0") as instance:
        instance.add_func(
            "insecure-seed", lambda store: (_insecure.getrandbits(64), _insecure.getrandbits(64))
        )
