"""Test component: echoes the request and exposes host features on fixed paths."""

from spin_sdk import http
from spin_sdk.http import Request, Response


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        return Response(200, {"content-type": "text/plain"}, b"echo:" + (request.body or b""))
