"""Test component: returns the request's spin-* headers as JSON, plus a few fixed paths.

- `.../trap`: raises, so the component traps and the runtime must answer 500.
- `.../slow?ms=N`: sleeps N milliseconds before answering (for shutdown tests).
- `.../kv?key=K`: returns the value of K in the default key-value store.
- `.../var?name=N`: returns component variable N.

The JSON also carries the component variable `who`, so a test can tell which of several
components declared with this same source served a request.
"""

import json
import time
from urllib.parse import parse_qs, urlparse

from spin_sdk import http, key_value, variables
from spin_sdk.http import Request, Response
from spin_sdk.wit.types import Err


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        parsed = urlparse(request.uri)
        query = {name: values[0] for name, values in parse_qs(parsed.query).items()}
        path = parsed.path

        if path.endswith("/trap"):
            raise RuntimeError("trap requested by the test")
        if path.endswith("/slow"):
            time.sleep(int(query.get("ms", "1000")) / 1000)
            return Response(200, {"content-type": "text/plain"}, b"slow done")
        if path.endswith("/kv"):
            value = key_value.open_default().get(query["key"])
            return Response(200, {"content-type": "text/plain"}, value or b"<missing>")
        if path.endswith("/var"):
            return Response(
                200, {"content-type": "text/plain"}, variables.get(query["name"]).encode()
            )

        try:
            who = variables.get("who")
        except Err:  # the component variable `who` is not declared
            who = None
        spin = {name: value for name, value in request.headers.items() if name.startswith("spin-")}
        payload = {
            "who": who,
            "method": request.method,
            "uri": request.uri,
            "headers": spin,
            "body_length": len(request.body or b""),
        }
        return Response(200, {"content-type": "application/json"}, json.dumps(payload).encode())
