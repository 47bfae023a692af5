"""Test component: exercises the WASI and wasi:http host interfaces on fixed paths."""

import asyncio
import json
import os
import random
import sys
import time
from urllib.parse import parse_qs, urlparse

from spin_sdk import http, llm
from spin_sdk.http import Request, Response
from spin_sdk.http.poll_loop import PollLoop


def _json(status, value):
    return Response(status, {"content-type": "application/json"}, json.dumps(value).encode())


def _send(method, url, body=None, headers=None):
    try:
        response = http.send(Request(method, url, headers or {}, body))
    except Exception as error:  # noqa: BLE001 - the probe reports every failure to the test
        return {"error": repr(error)}
    return {
        "status": response.status,
        "body": response.body.decode("utf-8", "replace"),
        "headers": dict(response.headers),
    }


async def _send_pair(first, second):
    started = time.monotonic()
    await asyncio.gather(
        http.send_async(Request("GET", first, {}, None)),
        http.send_async(Request("GET", second, {}, None)),
    )
    return time.monotonic() - started


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        url = urlparse(request.uri)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        path = url.path

        if path == "/echo":
            return Response(
                201,
                {
                    "content-type": "application/octet-stream",
                    "x-method": request.method,
                    "x-uri": request.uri,
                    "x-test": request.headers.get("x-test", ""),
                },
                request.body,
            )
        if path == "/env":
            return _json(200, dict(os.environ))
        if path == "/stdio":
            print("line one to stdout")
            print("line two to stdout", flush=True)
            print("a warning to stderr", file=sys.stderr)
            sys.stdout.write("no newline at the end")
            return _json(200, {"printed": True})
        if path == "/clock":
            wall = time.time()
            started = time.monotonic()
            time.sleep(float(query.get("sleep", "0.05")))
            return _json(200, {"wall": wall, "slept": time.monotonic() - started})
        if path == "/random":
            return _json(200, {"secure": os.urandom(16).hex(), "insecure": random.random()})
        if path == "/big":
            return Response(200, {"content-type": "application/octet-stream"}, b"x" * int(query["n"]))
        if path == "/file":
            try:
                with open("/etc/hostname") as file:
                    return _json(200, {"content": file.read()})
            except OSError as error:
                return _json(200, {"error": repr(error)})
        if path == "/raise":
            raise RuntimeError("the handler failed on purpose")
        if path == "/exit":
            os._exit(3)
        if path == "/unsupported":
            llm.infer("llama2-chat", "hello")
            return _json(200, {"unexpected": "llm.infer returned"})
        if path == "/outbound":
            method = query.get("method", "GET")
            body = request.body if method != "GET" else None
            return _json(200, _send(method, query["url"], body, {"x-probe": "yes"}))
        if path == "/outbound-pair":
            loop = PollLoop()
            asyncio.set_event_loop(loop)
            elapsed = loop.run_until_complete(_send_pair(query["first"], query["second"]))
            return _json(200, {"elapsed": elapsed})
        return _json(404, {"error": "no such probe", "path": path})
