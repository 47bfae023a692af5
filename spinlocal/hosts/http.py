"""`wasi:http/{types,outgoing-handler}@0.2.0`: the request the component serves, and the
requests it sends.

Incoming side: the runner builds an `IncomingRequest` and a `ResponseOutparam`, calls
the component's real `wasi:http/incoming-handler.handle` export with them, and reads the
`OutgoingResponse` the guest set. Bodies are buffered in memory, at most
`max_body_bytes` each way.

Outgoing side: `outgoing-handler.handle` checks the component's `allowed_outbound_hosts`
and returns a future at once. spin-sdk calls `handle` before it writes the request body,
so the request is handed to `services.http_client` only when the body is finished (or at
once if the guest never asked for a body), on a worker thread. The guest's `poll` wakes
when the response arrives, so several outbound requests can overlap.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from wasmtime.component import LinkerInstance, Variant

from ._support import OK, add_resource, current, err, ok
from .io import (
    INPUT_STREAM,
    OUTPUT_STREAM,
    POLLABLE,
    BytesInputStream,
    OutputStream,
    Pollable,
    StreamClosed,
    StreamError,
    notify_progress,
)

if TYPE_CHECKING:
    from ..engine import HostState, HttpRequest, HttpResponse
    from ..resources import RequestContext

FIELDS = "wasi:http/types.fields"
INCOMING_REQUEST = "wasi:http/types.incoming-request"
OUTGOING_REQUEST = "wasi:http/types.outgoing-request"
REQUEST_OPTIONS = "wasi:http/types.request-options"
RESPONSE_OUTPARAM = "wasi:http/types.response-outparam"
INCOMING_RESPONSE = "wasi:http/types.incoming-response"
INCOMING_BODY = "wasi:http/types.incoming-body"
FUTURE_TRAILERS = "wasi:http/types.future-trailers"
OUTGOING_RESPONSE = "wasi:http/types.outgoing-response"
OUTGOING_BODY = "wasi:http/types.outgoing-body"
FUTURE_INCOMING_RESPONSE = "wasi:http/types.future-incoming-response"

_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_OUTBOUND_THREADS = 8


def method_variant(method: str) -> Variant:
    """Return the `method` variant for an HTTP method name."""
    upper = method.upper()
    if upper in _METHODS:
        return Variant(upper.lower())
    return Variant("other", method)


def method_name(method: Variant) -> str:
    """Return the HTTP method name of a `method` variant."""
    if method.tag == "other":
        return str(method.payload)
    return method.tag.upper()


def scheme_variant(scheme: str) -> Variant:
    """Return the `scheme` variant for "http", "https" or another scheme."""
    lower = scheme.lower()
    if lower in ("http", "https"):
        return Variant(lower.upper())
    return Variant("other", scheme)


def internal_error(message: str) -> Variant:
    """Return `error-code.internal-error` with a message."""
    return Variant("internal-error", message)


class HeaderError(Exception):
    """A `fields` operation failed with the `header-error` case `case`."""

    def __init__(self, case: str) -> None:
        super().__init__(case)
        self.case = case


class Fields:
    """Header or trailer fields: ordered (name, value) pairs with lower-case names."""

    def __init__(self, entries: list[tuple[str, bytes]] | None = None, mutable: bool = True):
        self.entries = list(entries or [])
        self.mutable = mutable

    @classmethod
    def checked(cls, entries: list[tuple[str, bytes]]) -> Fields:
        """Return mutable fields from guest entries, raising `HeaderError` on bad syntax."""
        return cls([(_checked_name(name), _checked_value(value)) for name, value in entries])

    def get(self, name: str) -> list[bytes]:
        key = name.lower()
        return [value for entry, value in self.entries if entry == key]

    def has(self, name: str) -> bool:
        key = name.lower()
        return any(entry == key for entry, _ in self.entries)

    def set(self, name: str, values: list[bytes]) -> None:
        self._check_mutable()
        key = _checked_name(name)
        checked = [_checked_value(value) for value in values]
        self.entries = [entry for entry in self.entries if entry[0] != key]
        self.entries.extend((key, value) for value in checked)

    def delete(self, name: str) -> None:
        self._check_mutable()
        key = _checked_name(name)
        self.entries = [entry for entry in self.entries if entry[0] != key]

    def append(self, name: str, value: bytes) -> None:
        self._check_mutable()
        self.entries.append((_checked_name(name), _checked_value(value)))

    def _check_mutable(self) -> None:
        if not self.mutable:
            raise HeaderError("immutable")


def _checked_name(name: str) -> str:
    if not _TOKEN.match(name):
        raise HeaderError("invalid-syntax")
    return name.lower()


def _checked_value(value: bytes) -> bytes:
    if b"\r" in value or b"\n" in value or b"\0" in value:
        raise HeaderError("invalid-syntax")
    return bytes(value)


@dataclass
class IncomingRequest:
    """The request a component serves, as built by the runner."""

    method: str
    path_with_query: str
    headers: list[tuple[str, bytes]]
    body: bytes
    scheme: str = "http"
    authority: str = "127.0.0.1:3000"
    consumed: bool = False


class IncomingBody:
    """The body of an incoming request or response, readable once as a stream."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.stream_taken = False

    def stream(self) -> BytesInputStream:
        self.stream_taken = True
        return BytesInputStream(self._data)


class BodySink(OutputStream):
    """The output stream of an outgoing body: collects bytes up to a limit."""

    def __init__(self, body: OutgoingBody) -> None:
        self._body = body

    def write(self, data: bytes) -> None:
        self._body.append(data)


class OutgoingBody:
    """The body of an outgoing response or request, buffered until `finish`."""

    def __init__(self, limit: int, what: str) -> None:
        self.data = bytearray()
        self.limit = limit
        self.what = what
        self.stream_taken = False
        self.finished = False
        self.overflowed = False
        self.on_finish: Callable[[], None] | None = None

    def append(self, data: bytes) -> None:
        if self.finished:
            raise StreamClosed
        if len(self.data) + len(data) > self.limit:
            self.overflowed = True
            raise StreamError(
                f"the {self.what} body is larger than the limit of {self.limit} bytes"
            )
        self.data += data

    def finish(self) -> None:
        self.finished = True
        if self.on_finish is not None:
            self.on_finish()


class OutgoingResponse:
    """The response the guest builds: status, headers and an optional body."""

    def __init__(self, headers: Fields) -> None:
        self.status = 200
        self.headers = headers
        self.body: OutgoingBody | None = None


class ResponseOutparam:
    """The slot for the guest's response: `result` is `ok(response)` or `err(code)`."""

    def __init__(self) -> None:
        self.result: Variant | None = None


class FutureTrailers:
    """Trailers of an incoming body; this host never receives any."""


@dataclass
class RequestOptions:
    """Timeouts the guest set for an outbound request, in nanoseconds."""

    connect_timeout: int | None = None
    first_byte_timeout: int | None = None
    between_bytes_timeout: int | None = None


class OutgoingRequest:
    """An outbound request the guest is building."""

    def __init__(self, headers: Fields) -> None:
        self.headers = headers
        self.method = Variant("get")
        self.path_with_query: str | None = None
        self.scheme: Variant | None = None
        self.authority: str | None = None
        self.body: OutgoingBody | None = None


@dataclass
class OutboundRequest:
    """An outbound request as handed to the host's HTTP client."""

    method: str
    scheme: str
    authority: str
    path_with_query: str
    headers: list[tuple[str, bytes]]
    body: bytes
    connect_timeout: float | None = None
    first_byte_timeout: float | None = None
    between_bytes_timeout: float | None = None
    # A request with no host (spin-sdk sends a relative URL as ":80") goes to the app
    # itself, as `http://self` in `allowed_outbound_hosts` permits.
    to_self: bool = False

    @property
    def url(self) -> str:
        authority = "self" if self.to_self else self.authority
        return f"{self.scheme}://{authority}{self.path_with_query}"

    @property
    def url_for_log(self) -> str:
        """The URL without its query string, which may carry credentials."""
        return self.url.partition("?")[0]


@dataclass
class OutboundResponse:
    """The response of an outbound request."""

    status: int
    headers: list[tuple[str, bytes]]
    body: bytes = b""


class OutboundError(Exception):
    """An outbound request failed; `code` is the `wasi:http` `error-code` variant."""

    def __init__(self, code: Variant, message: str = "") -> None:
        super().__init__(message or code.tag)
        self.code = code


class OutboundSender(Protocol):
    """The interface `HostServices.http_client` provides; `send` may run on a worker thread."""

    def send(self, request: OutboundRequest) -> OutboundResponse: ...


@dataclass
class IncomingResponse:
    """The response of an outbound request, as the guest reads it."""

    status: int
    headers: list[tuple[str, bytes]]
    body: bytes
    consumed: bool = False


_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid = 0


def _outbound_executor() -> ThreadPoolExecutor:
    # A forked worker inherits the executor but not its threads, so each process makes its own.
    global _executor, _executor_pid
    with _executor_lock:
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(_OUTBOUND_THREADS, thread_name_prefix="spinlocal-http")
            _executor_pid = os.getpid()
        return _executor


@dataclass
class FutureIncomingResponse:
    """The pending result of an outbound request.

    States: waiting for the guest to finish the body, sending on a worker thread, done.
    `outcome` is `ok(IncomingResponse)` or `err(error-code)` once done.
    """

    host: HostState
    request: OutboundRequest | None = None
    started: bool = False
    outcome: Variant | None = None
    taken: bool = False
    abandoned: bool = False
    _done: threading.Event = field(default_factory=threading.Event)

    def start(self, request: OutboundRequest) -> None:
        self.request = request
        self.started = True
        _outbound_executor().submit(self._send, request)

    def fail(self, code: Variant) -> None:
        self.started = True
        self.outcome = err(code)
        self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def close(self) -> None:
        self.abandoned = True

    def _send(self, request: OutboundRequest) -> None:
        log = self.host.log
        started = time.perf_counter()
        sender = self.host.services.http_client
        try:
            if sender is None:
                raise OutboundError(internal_error("outbound HTTP is not configured"))
            response = sender.send(request)
            outcome = ok(IncomingResponse(response.status, response.headers, response.body))
            log.debug(
                "outbound %s %s -> %d in %.1f ms",
                request.method,
                request.url_for_log,
                response.status,
                (time.perf_counter() - started) * 1000,
            )
        except OutboundError as error:
            log.warning("outbound %s %s failed: %s", request.method, request.url_for_log, error)
            outcome = err(error.code)
        except Exception as error:
            log.exception(
                "outbound %s %s failed in the host", request.method, request.url_for_log
            )
            outcome = err(internal_error(f"{type(error).__name__}: {error}"))

        if not self.abandoned:
            self.outcome = outcome
        self._done.set()
        notify_progress()


class FuturePollable(Pollable):
    """Ready once an outbound response (or its error) is there."""

    def __init__(self, future: FutureIncomingResponse) -> None:
        self.future = future

    def ready(self) -> bool:
        return self.future.done()

    def stalled(self) -> bool:
        return not self.future.started

    def on_stall(self) -> None:
        if not self.future.started:
            self.future.host.log.warning(
                "outbound request failed: the component waits for a response but never "
                "finished the request body"
            )
            self.future.fail(internal_error("the outgoing request body was never finished"))


class ResponseError(Exception):
    """The guest did not produce a usable response; the message explains why."""


@dataclass
class IncomingHandles:
    """The owned handle of the incoming request passed to the export, and its table rep."""

    handle: Any
    rep: int


@dataclass
class OutparamHandles:
    """The owned handle of the response outparam passed to the export, and its state."""

    handle: Any
    state: ResponseOutparam


def incoming_request(
    context: RequestContext, request: HttpRequest
) -> tuple[IncomingHandles, OutparamHandles]:
    """Store `request` and a fresh response outparam in `context`; return their handles.

    The guest never drops the incoming-request handle, so the caller pops `rep` from the
    context's table after the call (closing the context does that too).
    """
    incoming = IncomingRequest(
        method=request.method,
        path_with_query=request.path_with_query,
        headers=[(name.lower(), bytes(value)) for name, value in request.headers],
        body=request.body,
        scheme=request.scheme,
        authority=request.authority,
    )
    request_handle = context.own(INCOMING_REQUEST, incoming)
    state = ResponseOutparam()
    return (
        IncomingHandles(request_handle, request_handle.rep),
        OutparamHandles(context.own(RESPONSE_OUTPARAM, state), state),
    )


def collect_response(
    context: RequestContext, outparam_state: ResponseOutparam, max_body_bytes: int
) -> HttpResponse:
    """Return the response the guest set, or raise `ResponseError` saying what is wrong."""
    from ..engine import HttpResponse

    result = outparam_state.result
    if result is None:
        raise ResponseError("the component returned without setting a response")
    if result.tag != "ok":
        raise ResponseError(f"the component responded with the error {_describe(result.payload)}")

    response = result.payload
    assert isinstance(response, OutgoingResponse)
    body = response.body
    data = b""
    if body is not None:
        if body.overflowed or len(body.data) > max_body_bytes:
            raise ResponseError(
                f"the response body is larger than the limit of {max_body_bytes} bytes"
            )
        if not body.finished:
            raise ResponseError("the component did not finish the response body")
        data = bytes(body.data)
    return HttpResponse(response.status, list(response.headers.entries), data)


def _describe(code: Any) -> str:
    if isinstance(code, Variant):
        return code.tag if code.payload is None else f"{code.tag}({code.payload!r})"
    return repr(code)


def split_authority(authority: str) -> tuple[str, int | None]:
    """Split "host:port" (or "[v6]:port") into host and port; port None when absent."""
    if authority.startswith("["):
        end = authority.find("]")
        host = authority[1:end] if end > 0 else authority
        rest = authority[end + 1 :] if end > 0 else ""
        port = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        host, port = authority.split(":")
    else:
        host, port = authority, ""

    if not port:
        return host, None
    if not port.isdigit():
        raise ValueError(f"invalid port {port!r} in authority {authority!r}")
    return host, int(port)


def define(root: LinkerInstance, host: HostState) -> None:
    """Add `wasi:http/types` and `wasi:http/outgoing-handler` to the linker."""
    with root.add_instance("wasi:http/types@0.2.0") as instance:
        _define_fields(instance, host)
        _define_incoming(instance, host)
        _define_outgoing_response(instance, host)
        _define_outgoing_request(instance, host)
        _define_incoming_response(instance, host)
        instance.add_func("http-error-code", lambda store, error: None)

    with root.add_instance("wasi:http/outgoing-handler@0.2.0") as instance:
        instance.add_func("handle", _outgoing_handler(host))


def _header_result(operation: Callable[[], Any]) -> Variant:
    try:
        operation()
    except HeaderError as error:
        return err(Variant(error.case))
    return OK


def _take_headers(host: HostState, store: Any, handle: Any) -> Fields:
    """Take the `fields` passed to an outgoing request or response constructor, made mutable."""
    fields: Fields = current(host).take(store, handle)
    fields.mutable = True
    return fields


def _consume(host: HostState, message: IncomingRequest | IncomingResponse) -> Variant:
    """Hand out the body of an incoming request or response: `ok` on the first call, then `err`."""
    if message.consumed:
        return err()
    message.consumed = True
    return ok(current(host).own(INCOMING_BODY, IncomingBody(message.body)))


def _open_body(host: HostState, message: OutgoingRequest | OutgoingResponse, what: str) -> Variant:
    """Create the body of an outgoing request or response: `ok` on the first call, then `err`.

    `what` names the body in the error raised when it grows over `max_body_bytes`.
    """
    if message.body is not None:
        return err()
    message.body = OutgoingBody(host.services.max_body_bytes, what)
    return ok(current(host).own(OUTGOING_BODY, message.body))


def _define_fields(instance: LinkerInstance, host: HostState) -> None:
    add_resource(instance, host, "fields", FIELDS)

    def from_list(store: Any, entries: list[tuple[str, bytes]]) -> Variant:
        try:
            fields = Fields.checked(entries)
        except HeaderError as error:
            return err(Variant(error.case))
        return ok(current(host).own(FIELDS, fields))

    def fields_of(store: Any, handle: Any) -> Fields:
        return current(host).get(store, handle)

    instance.add_func("[constructor]fields", lambda store: current(host).own(FIELDS, Fields()))
    instance.add_func("[static]fields.from-list", from_list)
    instance.add_func("[method]fields.get", lambda s, f, name: fields_of(s, f).get(name))
    instance.add_func("[method]fields.has", lambda s, f, name: fields_of(s, f).has(name))
    instance.add_func(
        "[method]fields.set",
        lambda s, f, name, values: _header_result(lambda: fields_of(s, f).set(name, values)),
    )
    instance.add_func(
        "[method]fields.delete",
        lambda s, f, name: _header_result(lambda: fields_of(s, f).delete(name)),
    )
    instance.add_func(
        "[method]fields.append",
        lambda s, f, name, value: _header_result(lambda: fields_of(s, f).append(name, value)),
    )
    instance.add_func("[method]fields.entries", lambda s, f: list(fields_of(s, f).entries))
    instance.add_func(
        "[method]fields.clone",
        lambda s, f: current(host).own(FIELDS, Fields(fields_of(s, f).entries)),
    )


def _define_incoming(instance: LinkerInstance, host: HostState) -> None:
    for name, kind in (
        ("incoming-request", INCOMING_REQUEST),
        ("incoming-body", INCOMING_BODY),
        ("future-trailers", FUTURE_TRAILERS),
        ("response-outparam", RESPONSE_OUTPARAM),
    ):
        add_resource(instance, host, name, kind)

    def request_of(store: Any, handle: Any) -> IncomingRequest:
        return current(host).get(store, handle)

    def body_stream(store: Any, handle: Any) -> Variant:
        context = current(host)
        body: IncomingBody = context.get(store, handle)
        if body.stream_taken:
            return err()
        return ok(context.own(INPUT_STREAM, body.stream()))

    def finish_body(store: Any, handle: Any) -> Any:
        context = current(host)
        context.take(store, handle)
        return context.own(FUTURE_TRAILERS, FutureTrailers())

    def set_response(store: Any, param: Any, response: Variant) -> None:
        context = current(host)
        outparam: ResponseOutparam = context.take(store, param)
        if outparam is None:
            raise RuntimeError("response-outparam.set called twice")
        payload: Any = response.payload
        if response.tag == "ok":
            outparam.result = ok(context.take(store, payload))
        else:
            outparam.result = response

    instance.add_func(
        "[method]incoming-request.method", lambda s, r: method_variant(request_of(s, r).method)
    )
    instance.add_func(
        "[method]incoming-request.path-with-query", lambda s, r: request_of(s, r).path_with_query
    )
    instance.add_func(
        "[method]incoming-request.scheme", lambda s, r: scheme_variant(request_of(s, r).scheme)
    )
    instance.add_func("[method]incoming-request.authority", lambda s, r: request_of(s, r).authority)
    instance.add_func(
        "[method]incoming-request.headers",
        lambda s, r: current(host).own(FIELDS, Fields(request_of(s, r).headers, mutable=False)),
    )
    instance.add_func(
        "[method]incoming-request.consume", lambda s, r: _consume(host, request_of(s, r))
    )
    instance.add_func("[method]incoming-body.stream", body_stream)
    instance.add_func("[static]incoming-body.finish", finish_body)
    instance.add_func(
        "[method]future-trailers.subscribe", lambda s, f: current(host).own(POLLABLE, Pollable())
    )
    # some(ok(ok(none))): the trailers are ready, and there are none.
    instance.add_func("[method]future-trailers.get", lambda s, f: ok(ok(None)))
    instance.add_func("[static]response-outparam.set", set_response)


def _define_outgoing_response(instance: LinkerInstance, host: HostState) -> None:
    add_resource(instance, host, "outgoing-response", OUTGOING_RESPONSE)
    add_resource(instance, host, "outgoing-body", OUTGOING_BODY)

    def response_of(store: Any, handle: Any) -> OutgoingResponse:
        return current(host).get(store, handle)

    def construct(store: Any, headers: Any) -> Any:
        fields = _take_headers(host, store, headers)
        return current(host).own(OUTGOING_RESPONSE, OutgoingResponse(fields))

    def set_status(store: Any, handle: Any, status: int) -> Variant:
        if not 100 <= status <= 999:
            return err()
        response_of(store, handle).status = status
        return OK

    def body_write(store: Any, handle: Any) -> Variant:
        context = current(host)
        body: OutgoingBody = context.get(store, handle)
        if body.stream_taken:
            return err()
        body.stream_taken = True
        return ok(context.own(OUTPUT_STREAM, BodySink(body)))

    def body_finish(store: Any, handle: Any, trailers: Any) -> Variant:
        context = current(host)
        body: OutgoingBody = context.take(store, handle)
        if trailers is not None:
            context.take(store, trailers)
            host.log.warning("trailers are not supported and were dropped")
        body.finish()
        return OK

    instance.add_func("[constructor]outgoing-response", construct)
    instance.add_func(
        "[method]outgoing-response.status-code", lambda s, r: response_of(s, r).status
    )
    instance.add_func("[method]outgoing-response.set-status-code", set_status)
    instance.add_func(
        "[method]outgoing-response.headers",
        lambda s, r: current(host).own(FIELDS, response_of(s, r).headers),
    )
    instance.add_func(
        "[method]outgoing-response.body",
        lambda s, r: _open_body(host, response_of(s, r), "response"),
    )
    instance.add_func("[method]outgoing-body.write", body_write)
    instance.add_func("[static]outgoing-body.finish", body_finish)


def _define_outgoing_request(instance: LinkerInstance, host: HostState) -> None:
    add_resource(instance, host, "outgoing-request", OUTGOING_REQUEST)
    add_resource(instance, host, "request-options", REQUEST_OPTIONS)

    def request_of(store: Any, handle: Any) -> OutgoingRequest:
        return current(host).get(store, handle)

    def construct(store: Any, headers: Any) -> Any:
        fields = _take_headers(host, store, headers)
        return current(host).own(OUTGOING_REQUEST, OutgoingRequest(fields))

    def setter(attribute: str, check: Callable[[Any], bool] = lambda value: True) -> Any:
        def set_value(store: Any, handle: Any, value: Any) -> Variant:
            if not check(value):
                return err()
            setattr(request_of(store, handle), attribute, value)
            return OK

        return set_value

    def valid_method(method: Variant) -> bool:
        return method.tag != "other" or bool(_TOKEN.match(str(method.payload)))

    instance.add_func("[constructor]outgoing-request", construct)
    instance.add_func(
        "[method]outgoing-request.body",
        lambda s, r: _open_body(host, request_of(s, r), "outbound request"),
    )
    instance.add_func("[method]outgoing-request.method", lambda s, r: request_of(s, r).method)
    instance.add_func("[method]outgoing-request.set-method", setter("method", valid_method))
    instance.add_func(
        "[method]outgoing-request.path-with-query", lambda s, r: request_of(s, r).path_with_query
    )
    instance.add_func("[method]outgoing-request.set-path-with-query", setter("path_with_query"))
    instance.add_func("[method]outgoing-request.scheme", lambda s, r: request_of(s, r).scheme)
    instance.add_func("[method]outgoing-request.set-scheme", setter("scheme"))
    instance.add_func("[method]outgoing-request.authority", lambda s, r: request_of(s, r).authority)
    instance.add_func("[method]outgoing-request.set-authority", setter("authority"))
    instance.add_func(
        "[method]outgoing-request.headers",
        lambda s, r: current(host).own(FIELDS, request_of(s, r).headers),
    )

    def options_of(store: Any, handle: Any) -> RequestOptions:
        return current(host).get(store, handle)

    instance.add_func(
        "[constructor]request-options",
        lambda store: current(host).own(REQUEST_OPTIONS, RequestOptions()),
    )
    for wit_name in ("connect-timeout", "first-byte-timeout", "between-bytes-timeout"):
        attribute = wit_name.replace("-", "_")

        def get_timeout(store: Any, handle: Any, attribute: str = attribute) -> int | None:
            return getattr(options_of(store, handle), attribute)

        def set_timeout(
            store: Any, handle: Any, value: int | None, attribute: str = attribute
        ) -> Variant:
            setattr(options_of(store, handle), attribute, value)
            return OK

        instance.add_func(f"[method]request-options.{wit_name}", get_timeout)
        instance.add_func(f"[method]request-options.set-{wit_name}", set_timeout)


def _define_incoming_response(instance: LinkerInstance, host: HostState) -> None:
    add_resource(instance, host, "incoming-response", INCOMING_RESPONSE)
    add_resource(instance, host, "future-incoming-response", FUTURE_INCOMING_RESPONSE)

    def response_of(store: Any, handle: Any) -> IncomingResponse:
        return current(host).get(store, handle)

    def subscribe(store: Any, handle: Any) -> Any:
        context = current(host)
        return context.own(POLLABLE, FuturePollable(context.get(store, handle)))

    def get(store: Any, handle: Any) -> Variant | None:
        context = current(host)
        future: FutureIncomingResponse = context.get(store, handle)
        if not future.done():
            return None
        if future.taken or future.outcome is None:
            return err()

        future.taken = True
        outcome = future.outcome
        if outcome.tag == "ok":
            return ok(ok(context.own(INCOMING_RESPONSE, outcome.payload)))
        return ok(outcome)

    instance.add_func("[method]incoming-response.status", lambda s, r: response_of(s, r).status)
    instance.add_func(
        "[method]incoming-response.headers",
        lambda s, r: current(host).own(FIELDS, Fields(response_of(s, r).headers, mutable=False)),
    )
    instance.add_func(
        "[method]incoming-response.consume", lambda s, r: _consume(host, response_of(s, r))
    )
    instance.add_func("[method]future-incoming-response.subscribe", subscribe)
    instance.add_func("[method]future-incoming-response.get", get)


def _seconds(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else nanoseconds / 1e9


def _checked_target(host: HostState, request: OutgoingRequest) -> tuple[str, str, bool] | Variant:
    """Return (scheme, authority, to_self) of an allowed request, or the error code to send."""
    scheme = "http"
    if request.scheme is not None:
        scheme = request.scheme.tag.lower()
        if request.scheme.tag == "other":
            scheme = str(request.scheme.payload)
    if scheme not in ("http", "https"):
        host.log.warning("outbound request rejected: unsupported scheme %r", scheme)
        return Variant("HTTP-protocol-error")

    authority = request.authority or ""
    try:
        hostname, port = split_authority(authority)
    except ValueError as error:
        host.log.warning("outbound request rejected: %s", error)
        return Variant("HTTP-request-URI-invalid")

    path = request.path_with_query or "/"
    if not hostname:
        if host.allowed_hosts.allows_self((scheme,)):
            return scheme, authority, True
        host.log.warning(
            'outbound request to %s (the app itself) denied: add "http://self" to the '
            "component's allowed_outbound_hosts to permit it",
            path,
        )
        return Variant("HTTP-request-denied")

    if not host.allowed_hosts.allows(scheme, hostname, port):
        host.log.warning(
            "outbound request to %s://%s%s denied: add %s://%s to the component's "
            "allowed_outbound_hosts to permit it",
            scheme,
            authority,
            path,
            scheme,
            authority,
        )
        return Variant("HTTP-request-denied")
    return scheme, authority, False


def _outgoing_handler(host: HostState) -> Callable[..., Variant]:
    def handle(store: Any, request_handle: Any, options_handle: Any) -> Variant:
        context = current(host)
        request: OutgoingRequest = context.take(store, request_handle)
        options = RequestOptions()
        if options_handle is not None:
            options = context.take(store, options_handle)

        target = _checked_target(host, request)
        if isinstance(target, Variant):
            return err(target)
        scheme, authority, to_self = target
        path = request.path_with_query or "/"

        future = FutureIncomingResponse(host)
        body = request.body

        def start() -> None:
            if body is not None and body.overflowed:
                future.fail(Variant("HTTP-request-body-size", len(body.data)))
                return
            future.start(
                OutboundRequest(
                    method=method_name(request.method),
                    scheme=scheme,
                    authority=authority,
                    path_with_query=path,
                    headers=list(request.headers.entries),
                    body=bytes(body.data) if body is not None else b"",
                    connect_timeout=_seconds(options.connect_timeout),
                    first_byte_timeout=_seconds(options.first_byte_timeout),
                    between_bytes_timeout=_seconds(options.between_bytes_timeout),
                    to_self=to_self,
                )
            )

        if body is None or body.finished:
            start()
        else:
            body.on_finish = start
        return ok(context.own(FUTURE_INCOMING_RESPONSE, future))

    return handle
