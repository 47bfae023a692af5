"""HTTP plumbing shared by the components: routing, JSON bodies, query values, problems.

A component declares its routes as data (`Route(pattern, {method: handler})`) and its
entry point calls `serve(routes, request, open_context)`. `serve` responds to unknown paths
with 404 and unsupported methods with 405 plus `Allow` before it authenticates, then
opens the request context (settings, caller, database) and runs the handler. Every
`ProblemError` becomes an `application/problem+json` response, and any other exception
a logged 500 problem that reveals nothing about the failure.

Inside a component, `SpinHandler` is the Spin entry point: a component subclasses it
and sets `routes`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote

from .auth import authenticate
from .config import load_settings
from .db import Database, DatabaseError
from .platform import Fetch, KeyValue, Variables
from .problems import ProblemError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Request:
    """An incoming request; header names are lower case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def from_uri(
        cls, method: str, uri: str, headers: Mapping[str, str], body: bytes | None
    ) -> Request:
        """Build a request from a path-with-query such as `/api/post?limit=5`."""
        path, _, query = uri.partition("?")
        return cls(
            method=method.upper(),
            path=path or "/",
            query=query,
            headers={name.lower(): value for name, value in headers.items()},
            body=body or b"",
        )


@dataclass
class Response:
    """An outgoing response; header names are lower case."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Context:
    """Request context of a handler: the caller, the database, the time and an id source."""

    sub: str
    db: Database
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    new_id: Callable[[], str] = field(default=lambda: secrets.token_hex(16))


Handler = Callable[[Context, Request, Mapping[str, str]], Response]


@dataclass(frozen=True)
class Route:
    """A path pattern such as `/api/profile/{handle}` and the handler of each method.

    A `{name}` segment matches any one non-empty path segment, percent-decoded. Other
    segments match literally, and one trailing slash on the path is ignored. `serve` tries
    routes in order, so list literal routes (`/api/profile/me`) before patterns that would
    also match them.
    """

    pattern: str
    handlers: Mapping[str, Handler]

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(sorted(self.handlers))

    def match(self, path: str) -> dict[str, str] | None:
        """Return the path parameters if `path` matches, else None."""
        expected = self.pattern.split("/")
        # One trailing slash is ignored: /api/post/ is /api/post.
        actual = (path[:-1] if len(path) > 1 and path.endswith("/") else path).split("/")
        if len(expected) != len(actual):
            return None
        params: dict[str, str] = {}
        for want, got in zip(expected, actual, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = unquote(got)
            elif want != got:
                return None
        return params


def json_response(status: int, value: object, headers: Mapping[str, str] | None = None) -> Response:
    """Return a JSON response with `value` serialised compactly."""
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    all_headers = {"content-type": JSON_CONTENT_TYPE}
    all_headers.update({name.lower(): text for name, text in (headers or {}).items()})
    return Response(status, all_headers, body)


def no_content() -> Response:
    return Response(204)


def not_found(detail: str) -> ProblemError:
    return ProblemError(404, "Not Found", detail)


def problem_response(problem: ProblemError) -> Response:
    status, headers, body = problem.to_response_parts()
    return Response(status, headers, body)


def read_json_object(request: Request) -> dict[str, object]:
    """Parse the body as a JSON object; raise 413, 415 or 400 `ProblemError` otherwise."""
    if len(request.body) > MAX_BODY_BYTES:
        raise ProblemError(
            413,
            "Content Too Large",
            f"The request body is {len(request.body)} bytes; the limit is {MAX_BODY_BYTES} bytes.",
        )

    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != JSON_CONTENT_TYPE:
        raise ProblemError(
            415,
            "Unsupported Media Type",
            f"The request body must be sent with `Content-Type: {JSON_CONTENT_TYPE}`, "
            f"got {content_type or 'no Content-Type'!r}.",
        )

    try:
        value = json.loads(request.body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ProblemError(
            400, "Invalid JSON", f"The request body is not valid UTF-8 ({error.reason})."
        ) from error
    except json.JSONDecodeError as error:
        raise ProblemError(
            400,
            "Invalid JSON",
            f"The request body is not valid JSON: {error.msg} at line {error.lineno}, "
            f"column {error.colno}.",
        ) from error
    except RecursionError as error:
        raise ProblemError(400, "Invalid JSON", "The request body is nested too deeply.") from error
    except ValueError as error:
        # int() rejects numbers of more than 4,300 digits (sys.get_int_max_str_digits).
        raise ProblemError(
            400, "Invalid JSON", "The request body has an integer with too many digits."
        ) from error

    if not isinstance(value, dict):
        raise ProblemError(
            400,
            "Invalid JSON",
            f"The request body must be a JSON object, got a JSON {_json_kind(value)}.",
        )
    return value


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def query_value(request: Request, name: str) -> str | None:
    """Return the query parameter `name`, None if absent; raise 400 if it is repeated."""
    values = parse_qs(request.query, keep_blank_values=True).get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ProblemError(
            400,
            "Invalid query parameter",
            f"The query parameter `{name}` is given {len(values)} times; give it at most once.",
            errors=[{"field": name, "message": "must be given at most once"}],
        )
    return values[0]


OpenContext = Callable[[Request], Context]


def serve(routes: Sequence[Route], request: Request, open_context: OpenContext) -> Response:
    """Route `request`, run its handler and turn every error into a problem response."""
    try:
        route, params = _select_route(routes, request)
        context = open_context(request)
        return route.handlers[request.method](context, request, params)
    except ProblemError as problem:
        if problem.status >= 500:
            logger.error("%s %s failed: %s", request.method, request.path, problem)
        return problem_response(problem)
    except DatabaseError as error:
        # DatabaseError is logged where it is raised, so this only chooses the status.
        if error.is_unavailable:
            return problem_response(
                ProblemError(
                    503,
                    "Service Unavailable",
                    "The database is unavailable. Try again later.",
                    headers={"Retry-After": "5"},
                )
            )
        return problem_response(
            ProblemError(500, "Internal Server Error", "A database operation failed.")
        )
    except Exception:
        logger.exception("%s %s failed with an unexpected error", request.method, request.path)
        return problem_response(
            ProblemError(500, "Internal Server Error", "The server failed to handle the request.")
        )


def _select_route(routes: Sequence[Route], request: Request) -> tuple[Route, dict[str, str]]:
    path = request.path
    for route in routes:
        params = route.match(path)
        if params is None:
            continue
        if request.method not in route.handlers:
            allowed = ", ".join(route.methods)
            raise ProblemError(
                405,
                "Method Not Allowed",
                f"{request.method} is not supported on {path}; use one of: {allowed}.",
                headers={"Allow": allowed},
            )
        return route, params
    raise not_found(f"No resource at {path}.")


def find_non_utf8_header(entries: Iterable[tuple[str, bytes]]) -> str | None:
    """Return the name of the first header whose value is not valid UTF-8, or None."""
    for name, value in entries:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return name
    return None


def non_utf8_header_problem(name: str) -> ProblemError:
    return ProblemError(
        400,
        "Invalid header",
        f"The value of the request header `{name}` is not valid UTF-8. "
        "Header values must be UTF-8 text.",
        header=name,
    )


def open_context(
    request: Request,
    kv: KeyValue,
    variables: Variables,
    environ: Mapping[str, str],
    fetch: Fetch,
    open_database: Callable[[str | None], Database],
) -> Context:
    """Load settings, authenticate the caller and open the database for one request."""
    settings = load_settings(kv, variables, environ)
    identity = authenticate(request.headers, settings, kv, fetch, time.time())
    return Context(sub=identity.sub, db=open_database(settings.db_url))


if sys.platform == "wasi":
    from typing import ClassVar

    from spin_sdk import http as _spin_http
    from spin_sdk.wit.imports.types import (
        Fields,
        IncomingRequest,
        OutgoingBody,
        OutgoingResponse,
        ResponseOutparam,
    )
    from spin_sdk.wit.types import Ok

    from . import db, platform

    # wasi:io blocking-write-and-flush accepts at most 4096 bytes per call.
    _MAX_BLOCKING_WRITE_BYTES = 4096

    def _open_spin_context(request: Request) -> Context:
        return open_context(
            request,
            platform.open_default_store(),
            platform.SpinVariables(),
            os.environ,
            platform.spin_fetch,
            db.open_database,
        )

    class SpinHandler(_spin_http.IncomingHandler):
        """The `IncomingHandler` export of a component, whose subclass sets `routes`.

        A header value that is not UTF-8 gets a 400 problem response, and an exception
        raised outside `serve` a 500 one, where spin-sdk 3.4.1 sends 500 with an empty
        body. NOTE: an error while spin-sdk reads the request body or writes the
        response still ends the instance without a problem response.
        """

        routes: ClassVar[Sequence[Route]] = ()

        def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
            # spin-sdk 3.4.1 decodes every header value as UTF-8 before it calls
            # handle_request, and sends 500 with an empty body when one is not.
            name = find_non_utf8_header(request.headers().entries())
            if name is not None:
                logger.warning("rejected a request whose header %s is not valid UTF-8", name)
                _send(response_out, problem_response(non_utf8_header_problem(name)))
                return
            super().handle(request, response_out)

        def handle_request(self, request: _spin_http.Request) -> _spin_http.Response:
            try:
                incoming = Request.from_uri(
                    request.method, request.uri, request.headers, request.body
                )
                response = serve(self.routes, incoming, _open_spin_context)
            except Exception:
                # The path only, because a query string can carry a token.
                path = request.uri.partition("?")[0]
                logger.exception("%s %s failed outside its handler", request.method, path)
                response = problem_response(
                    ProblemError(
                        500, "Internal Server Error", "The server failed to handle the request."
                    )
                )
            return _spin_http.Response(response.status, response.headers, response.body)

    def _send(response_out: ResponseOutparam, response: Response) -> None:
        """Send `response` through `response_out`, as spin-sdk does for `handle_request`."""
        headers = {**response.headers, "content-length": str(len(response.body))}
        outgoing = OutgoingResponse(
            Fields.from_list([(name, value.encode("utf-8")) for name, value in headers.items()])
        )
        outgoing.set_status_code(response.status)
        body = outgoing.body()
        ResponseOutparam.set(response_out, Ok(outgoing))
        stream = body.write()
        for offset in range(0, len(response.body), _MAX_BLOCKING_WRITE_BYTES):
            stream.blocking_write_and_flush(
                response.body[offset : offset + _MAX_BLOCKING_WRITE_BYTES]
            )
        stream.__exit__(None, None, None)
        OutgoingBody.finish(body, None)
