"""Benchmark component: the smallest useful spin-http handler, plus body routes.

- any path not listed below: 200 with "Hello, world!";
- POST /echo: 200 with the request body as the response body;
- POST /upload: 200 with the request body's length in bytes as text;
- GET /download?size=N: 200 with a body of N bytes.

The component does no I/O besides the request and response, so a request's time is the
runtime's own cost: instantiation, the request and response resources, and body copies.
"""

from urllib.parse import parse_qs, urlparse

from spin_sdk import http
from spin_sdk.http import Request, Response

HELLO = b"Hello, world!\n"
TEXT = {"content-type": "text/plain; charset=utf-8"}
BINARY = {"content-type": "application/octet-stream"}


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        url = urlparse(request.uri)
        if url.path == "/echo" and request.method == "POST":
            return Response(200, dict(BINARY), request.body or b"")
        if url.path == "/upload" and request.method == "POST":
            return Response(200, dict(TEXT), str(len(request.body or b"")).encode())
        if url.path == "/download":
            values = parse_qs(url.query).get("size", ["0"])
            if not values[0].isdigit():
                return Response(400, dict(TEXT), b"size must be a whole number of bytes\n")
            return Response(200, dict(BINARY), b"x" * int(values[0]))
        return Response(200, dict(TEXT), HELLO)
