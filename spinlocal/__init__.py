"""A Spin-compatible local runtime for `spin-http` components, built on wasmtime-py.

It runs the same `.wasm` files that `spin up` runs, from the same `spin.toml`.
"""

__version__ = "0.1.0"
