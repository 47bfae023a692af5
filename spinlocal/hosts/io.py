"""`wasi:io/{error,poll,streams}@0.2.0`: pollables, byte streams and stream errors.

The host objects here are the building blocks other families hand to the guest: the body
of an incoming request is a `BytesInputStream`, stdout is a `LineLogStream`, a timer is a
`DeadlinePollable`. Work that finishes on another thread (an outbound HTTP request) calls
`notify_progress()` so that a guest blocked in `poll` wakes up.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from wasmtime.component import LinkerInstance, Variant

from ._support import OK, add_resource, current, err, ok

if TYPE_CHECKING:
    from ..engine import HostState

ERROR = "wasi:io/error.error"
POLLABLE = "wasi:io/poll.pollable"
INPUT_STREAM = "wasi:io/streams.input-stream"
OUTPUT_STREAM = "wasi:io/streams.output-stream"

# Maximum bytes `check-write` allows at once; WASI lets a host choose any positive value.
WRITE_BUDGET = 1 << 20

_progress = threading.Condition()


def notify_progress() -> None:
    """Wake every guest blocked in `poll`, because some pollable may have become ready."""
    with _progress:
        _progress.notify_all()


class Pollable:
    """A pollable that is always ready; subclasses override `ready` and `deadline_ns`."""

    def ready(self) -> bool:
        return True

    def deadline_ns(self) -> int | None:
        """Return the monotonic time at which the pollable becomes ready, if known."""
        return None

    def stalled(self) -> bool:
        """Return True if only the guest itself could make this pollable ready."""
        return False

    def on_stall(self) -> None:
        """Give up waiting: called when every pollable being polled is stalled."""


class DeadlinePollable(Pollable):
    """A pollable that becomes ready at a monotonic time, in nanoseconds."""

    def __init__(self, deadline: int) -> None:
        self.deadline = deadline

    def ready(self) -> bool:
        return time.monotonic_ns() >= self.deadline

    def deadline_ns(self) -> int | None:
        return self.deadline


class StreamError(Exception):
    """A stream operation failed; `message` becomes the guest's `wasi:io/error.error`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StreamClosed(Exception):
    """The stream has ended (input) or can take no more data (output)."""


class InputStream:
    """A readable byte stream; `read` returns at most `size` bytes."""

    def read(self, size: int) -> bytes:
        raise StreamClosed

    def subscribe(self) -> Pollable:
        return Pollable()

    def close(self) -> None:
        pass


class BytesInputStream(InputStream):
    """An input stream over bytes that are already in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._position = 0

    def read(self, size: int) -> bytes:
        if self._position >= len(self._data):
            raise StreamClosed

        chunk = bytes(self._data[self._position : self._position + size])
        self._position += len(chunk)
        return chunk


class OutputStream:
    """A writable byte stream; `write` takes at most what `check_write` allowed."""

    def check_write(self) -> int:
        return WRITE_BUDGET

    def write(self, data: bytes) -> None:
        raise StreamClosed

    def flush(self) -> None:
        pass

    def subscribe(self) -> Pollable:
        return Pollable()

    def close(self) -> None:
        pass


class LineLogStream(OutputStream):
    """An output stream that logs each complete line with `log` (a callable taking a str)."""

    def __init__(self, log: Any, max_line_bytes: int = 16 * 1024) -> None:
        self._log = log
        self._pending = bytearray()
        self._max_line_bytes = max_line_bytes

    def write(self, data: bytes) -> None:
        self._pending += data
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                break
            self._emit(bytes(self._pending[:end]))
            del self._pending[: end + 1]

        # A guest that never writes a newline still gets its output logged, in pieces.
        if len(self._pending) >= self._max_line_bytes:
            self._emit_pending()

    def flush(self) -> None:
        # Guests flush after every write, often before the newline, so a flush must not end
        # a line. A partial last line is logged when the stream is closed.
        pass

    def close(self) -> None:
        self._emit_pending()

    def _emit_pending(self) -> None:
        if self._pending:
            self._emit(bytes(self._pending))
            self._pending.clear()

    def _emit(self, line: bytes) -> None:
        self._log(line.rstrip(b"\r").decode("utf-8", errors="replace"))


def poll_until_ready(pollables: list[Pollable]) -> list[int]:
    """Block until at least one pollable is ready; return the indexes of the ready ones."""
    if not pollables:
        raise ValueError("poll needs at least one pollable")

    while True:
        ready = [index for index, pollable in enumerate(pollables) if pollable.ready()]
        if ready:
            return ready

        # A guest blocked on pollables that only it could make ready would wait forever.
        if all(pollable.stalled() for pollable in pollables):
            for pollable in pollables:
                pollable.on_stall()
            continue

        deadlines = [d for d in (p.deadline_ns() for p in pollables) if d is not None]
        timeout = 1.0
        if deadlines:
            timeout = min(timeout, max(0, min(deadlines) - time.monotonic_ns()) / 1e9)

        with _progress:
            if not any(p.ready() for p in pollables):
                _progress.wait(timeout)


def stream_error(host: HostState, message: str) -> Variant:
    """Return `stream-error.last-operation-failed` carrying a new `error` with `message`."""
    return Variant("last-operation-failed", current(host).own(ERROR, message))


def define(root: LinkerInstance, host: HostState) -> None:
    """Add `wasi:io/error`, `wasi:io/poll` and `wasi:io/streams` to the linker."""
    with root.add_instance("wasi:io/error@0.2.0") as instance:
        add_resource(instance, host, "error", ERROR)
        instance.add_func(
            "[method]error.to-debug-string",
            lambda store, error: str(current(host).get(store, error)),
        )

    with root.add_instance("wasi:io/poll@0.2.0") as instance:
        _define_poll(instance, host)

    with root.add_instance("wasi:io/streams@0.2.0") as instance:
        _define_streams(instance, host)


def _define_poll(instance: LinkerInstance, host: HostState) -> None:
    add_resource(instance, host, "pollable", POLLABLE)

    def ready(store: Any, pollable: Any) -> bool:
        return bool(current(host).get(store, pollable).ready())

    def block(store: Any, pollable: Any) -> None:
        poll_until_ready([current(host).get(store, pollable)])

    def poll(store: Any, pollables: list[Any]) -> list[int]:
        context = current(host)
        return poll_until_ready([context.get(store, p) for p in pollables])

    instance.add_func("[method]pollable.ready", ready)
    instance.add_func("[method]pollable.block", block)
    instance.add_func("poll", poll)


def _define_streams(instance: LinkerInstance, host: HostState) -> None:
    add_resource(instance, host, "input-stream", INPUT_STREAM)
    add_resource(instance, host, "output-stream", OUTPUT_STREAM)

    def guarded(operation: Any) -> Variant:
        """Run a stream operation and map its outcome onto `result<T, stream-error>`."""
        try:
            return ok(operation())
        except StreamClosed:
            return err(Variant("closed"))
        except StreamError as error:
            host.log.warning("stream operation failed: %s", error.message)
            return err(stream_error(host, error.message))

    def read(store: Any, stream: Any, size: int) -> Variant:
        source: InputStream = current(host).get(store, stream)
        return guarded(lambda: source.read(size))

    def skip(store: Any, stream: Any, size: int) -> Variant:
        source: InputStream = current(host).get(store, stream)
        return guarded(lambda: len(source.read(size)))

    def subscribe(store: Any, stream: Any) -> Any:
        context = current(host)
        return context.own(POLLABLE, context.get(store, stream).subscribe())

    def check_write(store: Any, stream: Any) -> Variant:
        sink: OutputStream = current(host).get(store, stream)
        return guarded(sink.check_write)

    def write(store: Any, stream: Any, contents: bytes) -> Variant:
        sink: OutputStream = current(host).get(store, stream)
        result = guarded(lambda: sink.write(contents))
        return OK if result.tag == "ok" else result

    def write_and_flush(store: Any, stream: Any, contents: bytes) -> Variant:
        sink: OutputStream = current(host).get(store, stream)

        def operation() -> None:
            sink.write(contents)
            sink.flush()

        result = guarded(operation)
        return OK if result.tag == "ok" else result

    def flush(store: Any, stream: Any) -> Variant:
        sink: OutputStream = current(host).get(store, stream)
        result = guarded(sink.flush)
        return OK if result.tag == "ok" else result

    def write_zeroes(store: Any, stream: Any, size: int) -> Variant:
        return write(store, stream, bytes(size))

    def write_zeroes_and_flush(store: Any, stream: Any, size: int) -> Variant:
        return write_and_flush(store, stream, bytes(size))

    def splice(store: Any, stream: Any, source_stream: Any, size: int) -> Variant:
        context = current(host)
        sink: OutputStream = context.get(store, stream)
        source: InputStream = context.get(store, source_stream)

        def operation() -> int:
            chunk = source.read(min(size, sink.check_write()))
            sink.write(chunk)
            return len(chunk)

        return guarded(operation)

    instance.add_func("[method]input-stream.read", read)
    instance.add_func("[method]input-stream.blocking-read", read)
    instance.add_func("[method]input-stream.skip", skip)
    instance.add_func("[method]input-stream.blocking-skip", skip)
    instance.add_func("[method]input-stream.subscribe", subscribe)
    instance.add_func("[method]output-stream.check-write", check_write)
    instance.add_func("[method]output-stream.write", write)
    instance.add_func("[method]output-stream.blocking-write-and-flush", write_and_flush)
    instance.add_func("[method]output-stream.flush", flush)
    instance.add_func("[method]output-stream.blocking-flush", flush)
    instance.add_func("[method]output-stream.subscribe", subscribe)
    instance.add_func("[method]output-stream.write-zeroes", write_zeroes)
    instance.add_func(
        "[method]output-stream.blocking-write-zeroes-and-flush", write_zeroes_and_flush
    )
    instance.add_func("[method]output-stream.splice", splice)
    instance.add_func("[method]output-stream.blocking-splice", splice)
