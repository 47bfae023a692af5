"""Test component: one route per host feature the runtime tests exercise.

Every import sits at module top level because componentize-py bundles only modules
imported while it builds. Query parameters select what a route does; results come back
as JSON so tests can assert on single fields.
"""

# Routes report any error to the test as JSON, whatever its type.
# ruff: noqa: BLE001

import asyncio
import json
import os
import random
import sys
import time
from urllib.parse import parse_qs, urlparse

from spin_sdk import http, key_value, llm, mqtt, variables
from spin_sdk.http import Request, Response
from spin_sdk.http.poll_loop import PollLoop
from spin_sdk.wit.imports import outgoing_handler
from spin_sdk.wit.imports.streams import StreamError_Closed
from spin_sdk.wit.imports.types import (
    Fields,
    IncomingBody,
    Method_Get,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    RequestOptions,
    ResponseOutparam,
    Scheme_Http,
)
from spin_sdk.wit.types import Err, Ok

# A fresh instance per request means this is 0 at the start of every request.
REQUEST_COUNTER = 0


def _json(status: int, value: object) -> Response:
    return Response(status, {"content-type": "application/json"}, json.dumps(value).encode())


def _error_name(error: Exception) -> str:
    if isinstance(error, Err):
        return type(error.value).__name__
    return type(error).__name__


def _error_detail(error: Exception) -> str:
    if isinstance(error, Err):
        return repr(error.value)
    return repr(error)


class IncomingHandler(http.IncomingHandler):
    def handle(self, request, response_out):  # type: ignore[no-untyped-def]
        path = request.path_with_query() or "/"
        if path.startswith("/stream-echo"):
            _stream_echo(request, response_out)
            return
        if path.startswith("/raise-in-handle"):
            raise RuntimeError("raised outside handle_request")
        super().handle(request, response_out)

    def handle_request(self, request: Request) -> Response:
        url = urlparse(request.uri)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        route = ROUTES.get(url.path)
        if route is None:
            return _json(404, {"error": f"no route {url.path}"})
        return route(request, query)


def echo(request: Request, query: dict) -> Response:
    body = request.body or b""
    headers = {"content-type": "application/octet-stream", "x-echo-length": str(len(body))}
    return Response(200, headers, body)


def headers(request: Request, query: dict) -> Response:
    response = _json(200, {"headers": dict(request.headers), "method": request.method, "uri": request.uri})
    response.headers["x-custom"] = "custom value"
    response.headers["x-number"] = "42"
    return response


def big(request: Request, query: dict) -> Response:
    size = int(query.get("size", "0"))
    return Response(200, {"content-type": "application/octet-stream"}, bytes(i % 251 for i in range(size)))


def counter(request: Request, query: dict) -> Response:
    global REQUEST_COUNTER
    REQUEST_COUNTER += 1
    return _json(200, {"counter": REQUEST_COUNTER})


def environment(request: Request, query: dict) -> Response:
    return _json(200, {"environment": dict(os.environ)})


def output(request: Request, query: dict) -> Response:
    print("line to stdout", query.get("tag", ""))
    print("line to stderr", query.get("tag", ""), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    return _json(200, {"printed": True})


def clocks(request: Request, query: dict) -> Response:
    first = time.monotonic_ns()
    time.sleep(0.01)
    second = time.monotonic_ns()
    return _json(
        200,
        {
            "wall": time.time(),
            "monotonic_delta_ns": second - first,
            "random_hex": os.urandom(16).hex(),
            "random_float": random.random(),
        },
    )


def trap(request: Request, query: dict) -> Response:
    os._exit(3)


def fail(request: Request, query: dict) -> Response:
    raise ValueError("guest exception in handle_request")


def kv(request: Request, query: dict) -> Response:
    label = query.get("store", "default")
    operation = query.get("op", "get")
    key = query.get("key", "")
    try:
        store = key_value.open(label)
        if operation == "get":
            value = store.get(key)
            result: object = None if value is None else value.decode()
        elif operation == "set":
            store.set(key, query.get("value", "").encode())
            result = "ok"
        elif operation == "delete":
            store.delete(key)
            result = "ok"
        elif operation == "exists":
            result = store.exists(key)
        elif operation == "keys":
            result = sorted(store.get_keys())
        else:
            return _json(400, {"error": f"unknown op {operation}"})
    except Exception as error:
        return _json(200, {"error": _error_name(error), "detail": _error_detail(error)})
    return _json(200, {"result": result})


def variable(request: Request, query: dict) -> Response:
    try:
        return _json(200, {"value": variables.get(query.get("name", ""))})
    except Exception as error:
        return _json(200, {"error": _error_name(error), "detail": _error_detail(error)})


def call_llm(request: Request, query: dict) -> Response:
    result = llm.infer("llama2-chat", "hello")
    return _json(200, {"text": result.text})


def call_mqtt(request: Request, query: dict) -> Response:
    mqtt.open("mqtt://127.0.0.1:1883", "user", "password", 30)
    return _json(200, {"opened": True})


def outbound(request: Request, query: dict) -> Response:
    method = query.get("method", "GET")
    size = int(query.get("size", "0"))
    body = bytes(i % 256 for i in range(size)) if size else None
    headers = {"x-probe": "outbound"}
    try:
        response = http.send(Request(method, query["url"], headers, body))
    except Exception as error:
        return _json(200, {"error": _error_name(error), "detail": _error_detail(error)})
    return _json(
        200,
        {
            "status": response.status,
            "headers": dict(response.headers),
            "body": (response.body or b"").decode("latin-1"),
        },
    )


def outbound_gather(request: Request, query: dict) -> Response:
    urls = [query["url1"], query["url2"]]

    async def both() -> list:
        return await asyncio.gather(*(http.send_async(Request("GET", url, {}, None)) for url in urls))

    loop = PollLoop()
    asyncio.set_event_loop(loop)
    started = time.monotonic()
    try:
        responses = loop.run_until_complete(both())
    except Exception as error:
        return _json(200, {"error": _error_name(error), "detail": _error_detail(error)})
    elapsed = time.monotonic() - started
    return _json(200, {"statuses": [r.status for r in responses], "elapsed": elapsed})


def outbound_timeout(request: Request, query: dict) -> Response:
    """GET `authority` + `path` with a first-byte timeout of `ms` milliseconds (raw WASI calls)."""
    outgoing = OutgoingRequest(Fields())
    outgoing.set_method(Method_Get())
    outgoing.set_scheme(Scheme_Http())
    outgoing.set_authority(query["authority"])
    outgoing.set_path_with_query(query.get("path", "/"))
    options = RequestOptions()
    timeout_ns = int(query.get("ms", "200")) * 1_000_000
    options.set_connect_timeout(timeout_ns)
    options.set_first_byte_timeout(timeout_ns)
    started = time.monotonic()
    try:
        future = outgoing_handler.handle(outgoing, options)
        while True:
            result = future.get()
            if result is not None:
                break
            future.subscribe().block()
    except Exception as error:
        return _json(200, {"error": _error_name(error), "detail": _error_detail(error)})
    elapsed = time.monotonic() - started
    if isinstance(result, Ok) and isinstance(result.value, Ok):
        return _json(200, {"status": result.value.value.status(), "elapsed": elapsed})
    inner = result.value if isinstance(result, Ok) else result
    error_value = inner.value if isinstance(inner, Err) else inner
    return _json(200, {"error": type(error_value).__name__, "elapsed": elapsed})


def _stream_echo(request, response_out) -> None:  # type: ignore[no-untyped-def]
    """Echo the body with streamed reads and writes of up to 64 KiB, no buffering."""
    body = request.consume()
    stream = body.stream()
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/octet-stream")]))
    response_body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    sink = response_body.write()
    while True:
        try:
            chunk = stream.blocking_read(65536)
        except Err as error:
            if isinstance(error.value, StreamError_Closed):
                break
            raise
        offset = 0
        while offset < len(chunk):
            allowed = sink.check_write()
            if allowed == 0:
                sink.subscribe().block()
                continue
            piece = chunk[offset : offset + allowed]
            sink.write(piece)
            offset += len(piece)
    sink.blocking_flush()
    stream.__exit__(None, None, None)
    IncomingBody.finish(body)
    sink.__exit__(None, None, None)
    OutgoingBody.finish(response_body, None)


ROUTES = {
    "/echo": echo,
    "/headers": headers,
    "/big": big,
    "/counter": counter,
    "/env": environment,
    "/print": output,
    "/clocks": clocks,
    "/trap": trap,
    "/fail": fail,
    "/kv": kv,
    "/variable": variable,
    "/llm": call_llm,
    "/mqtt": call_mqtt,
    "/outbound": outbound,
    "/outbound-gather": outbound_gather,
    "/outbound-timeout": outbound_timeout,
}
