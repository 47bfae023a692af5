"""Call a component's routes in-process, as `serve` does inside the component."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

from codethings.web import Context, Request, Response, serve

ContextFactory = Callable[[str], Context]


class Caller:
    """Send requests to one component's ROUTES as a given subject."""

    def __init__(self, module: ModuleType, make_context: ContextFactory) -> None:
        self.module = module
        self.make_context = make_context

    def __call__(
        self,
        sub: str,
        method: str,
        uri: str,
        body: object = None,
        content_type: str = "application/json",
    ) -> Response:
        headers: dict[str, str] = {}
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            headers["content-type"] = content_type
        request = Request.from_uri(method, uri, headers, data)
        return serve(self.module.ROUTES, request, lambda r: self.make_context(sub))


def json_body(response: Response) -> dict[str, Any]:
    value = json.loads(response.body)
    assert isinstance(value, dict)
    return value
