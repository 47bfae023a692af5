"""Seams over the Spin SDK: key-value store, Spin variables and outbound HTTP.

The rest of the library depends only on the protocols here, so it runs under plain
CPython in unit tests. The Spin implementations (`open_default_store`,
`SpinVariables`, `spin_fetch`) exist only inside a component (`sys.platform ==
"wasi"`), because `spin_sdk` is importable only there. componentize-py imports
modules at build time, so they import `spin_sdk` at module top level.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Protocol

# JWKS documents and other fetched bodies stay below the Fermyon Cloud key-value value
# limit (1 MB), so a body larger than this is rejected while it is read.
MAX_FETCH_BODY_BYTES = 1_000_000


class KeyValue(Protocol):
    """A key-value store holding bytes, like Spin's `default` store."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes) -> None: ...

    def get_keys(self) -> list[str]: ...


class Variables(Protocol):
    """Spin variables visible to the component; `get` returns None for an undefined name."""

    def get(self, name: str) -> str | None: ...


class Fetch(Protocol):
    """Send a GET request and return `(status, body)`; raise `FetchError` on failure.

    `timeout_ms` bounds the whole exchange: connecting, waiting for the response and
    reading the body.
    """

    def __call__(self, url: str, timeout_ms: int) -> tuple[int, bytes]: ...


class FetchError(Exception):
    """An outbound request failed before a complete response arrived."""


class KeyValueError(Exception):
    """A key-value store operation failed in the host (store missing, access denied, I/O)."""


class MemoryKeyValue:
    """Key-value store in a dict, for tests and host-side tools."""

    def __init__(self, initial: Mapping[str, bytes] | None = None) -> None:
        self.data: dict[str, bytes] = dict(initial or {})
        self.get_calls = 0
        self.set_calls = 0

    def get(self, key: str) -> bytes | None:
        self.get_calls += 1
        return self.data.get(key)

    def set(self, key: str, value: bytes) -> None:
        self.set_calls += 1
        self.data[key] = bytes(value)

    def get_keys(self) -> list[str]:
        return list(self.data)


class MappingVariables:
    """Variables from a mapping, for tests and host-side tools."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values = dict(values or {})

    def get(self, name: str) -> str | None:
        return self.values.get(name)


if sys.platform == "wasi":
    from urllib.parse import urlsplit

    from spin_sdk import key_value as _spin_key_value
    from spin_sdk import variables as _spin_variables
    from spin_sdk.wit.imports import monotonic_clock as _monotonic_clock
    from spin_sdk.wit.imports import outgoing_handler as _outgoing_handler
    from spin_sdk.wit.imports import poll as _poll
    from spin_sdk.wit.imports import streams as _streams
    from spin_sdk.wit.imports import types as _http_types
    from spin_sdk.wit.imports import variables as _variables_wit
    from spin_sdk.wit.types import Err as _Err

    def open_default_store() -> KeyValue:
        """Open Spin's `default` key-value store; the manifest must list it."""
        try:
            return SpinKeyValue(_spin_key_value.open_default())
        except _Err as error:
            raise KeyValueError(
                f"opening the key-value store 'default' failed: {error.value!r}; "
                "list it in the component's key_value_stores"
            ) from error

    class SpinKeyValue:
        """A Spin key-value store whose host errors are raised as `KeyValueError`."""

        def __init__(self, store: _spin_key_value.Store) -> None:
            self._store = store

        def get(self, key: str) -> bytes | None:
            try:
                return self._store.get(key)
            except _Err as error:
                raise KeyValueError(f"key-value get of {key!r} failed: {error.value!r}") from error

        def set(self, key: str, value: bytes) -> None:
            try:
                self._store.set(key, value)
            except _Err as error:
                raise KeyValueError(f"key-value set of {key!r} failed: {error.value!r}") from error

        def get_keys(self) -> list[str]:
            try:
                return self._store.get_keys()
            except _Err as error:
                raise KeyValueError(f"key-value get_keys failed: {error.value!r}") from error

    class SpinVariables:
        """Spin variables of the current component."""

        def get(self, name: str) -> str | None:
            try:
                return _spin_variables.get(name)
            except _Err as error:
                if isinstance(error.value, _variables_wit.Error_Undefined):
                    return None
                raise

    def spin_fetch(url: str, timeout_ms: int) -> tuple[int, bytes]:
        """GET `url` through `wasi:http/outgoing-handler` within `timeout_ms`.

        spin-sdk's `http.send` has no timeout, so this drives the request directly:
        it sets the host's per-phase timeouts and also waits on a monotonic-clock
        deadline, so a host that ignores the options still cannot block past it.
        """
        deadline = _monotonic_clock.now() + timeout_ms * 1_000_000
        request = _build_get_request(url)
        options = _http_types.RequestOptions()
        for setter in (
            options.set_connect_timeout,
            options.set_first_byte_timeout,
            options.set_between_bytes_timeout,
        ):
            try:
                setter(timeout_ms * 1_000_000)
            except _Err:
                pass  # The host does not support this timeout; the deadline still applies.

        try:
            future = _outgoing_handler.handle(request, options)
        except _Err as error:
            raise FetchError(f"GET {url} was rejected by the host: {error.value!r}") from error

        with future:
            response = _wait_for_response(future, url, deadline)
        with response:
            status = response.status()
            body = _read_body(response.consume(), url, deadline)
        return status, body

    def _build_get_request(url: str) -> _http_types.OutgoingRequest:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise FetchError(f"cannot fetch {url!r}: expected an absolute http(s) URL")
        request = _http_types.OutgoingRequest(
            _http_types.Fields.from_list([("accept", b"application/json")])
        )
        request.set_method(_http_types.Method_Get())
        scheme: _http_types.Scheme = (
            _http_types.Scheme_Https() if parts.scheme == "https" else _http_types.Scheme_Http()
        )
        request.set_scheme(scheme)
        request.set_authority(parts.netloc)
        path = parts.path or "/"
        request.set_path_with_query(f"{path}?{parts.query}" if parts.query else path)
        # A GET has no body, but the body must still be taken and finished.
        _http_types.OutgoingBody.finish(request.body(), None)
        return request

    def _wait_until(pollable: _poll.Pollable, url: str, deadline: int, phase: str) -> None:
        remaining = deadline - _monotonic_clock.now()
        if remaining <= 0:
            raise FetchError(f"GET {url} timed out while {phase}")
        with _monotonic_clock.subscribe_duration(remaining) as timer:
            ready = _poll.poll([pollable, timer])
        if 0 not in ready:
            raise FetchError(f"GET {url} timed out while {phase}")

    def _wait_for_response(
        future: _http_types.FutureIncomingResponse, url: str, deadline: int
    ) -> _http_types.IncomingResponse:
        while True:
            result = future.get()
            if result is not None:
                break
            with future.subscribe() as pollable:
                _wait_until(pollable, url, deadline, "waiting for the response")
        if isinstance(result, _Err):
            raise FetchError(f"GET {url}: the response was already taken")
        inner = result.value
        if isinstance(inner, _Err):
            raise FetchError(f"GET {url} failed: {inner.value!r}")
        return inner.value

    def _read_body(incoming: _http_types.IncomingBody, url: str, deadline: int) -> bytes:
        body = bytearray()
        stream = incoming.stream()
        try:
            while True:
                try:
                    chunk = stream.read(64 * 1024)
                except _Err as error:
                    if isinstance(error.value, _streams.StreamError_Closed):
                        break
                    raise FetchError(f"GET {url}: reading the body failed: {error.value!r}") from error
                if chunk:
                    body += chunk
                    if len(body) > MAX_FETCH_BODY_BYTES:
                        raise FetchError(
                            f"GET {url}: body exceeds {MAX_FETCH_BODY_BYTES} bytes"
                        )
                    continue
                with stream.subscribe() as pollable:
                    _wait_until(pollable, url, deadline, "reading the body")
        finally:
            stream.__exit__(None, None, None)
        _http_types.IncomingBody.finish(incoming).__exit__(None, None, None)
        return bytes(body)
