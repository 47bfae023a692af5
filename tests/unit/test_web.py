"""Routing, body parsing and error mapping in codethings.web."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from codethings.db import DatabaseError
from codethings.problems import ProblemError
from codethings.web import (
    MAX_BODY_BYTES,
    Context,
    Handler,
    Request,
    Response,
    Route,
    find_non_utf8_header,
    json_response,
    non_utf8_header_problem,
    query_value,
    read_json_object,
    serve,
)

from .conftest import SqliteTestDatabase


def echo(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    return json_response(200, {"sub": ctx.sub, "params": dict(params)})


def fail_with(error: Exception) -> Handler:
    def handler(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
        raise error

    return handler


ROUTES = (
    Route("/api/thing", {"GET": echo, "POST": echo}),
    Route("/api/thing/me", {"GET": echo}),
    Route("/api/thing/{name}", {"GET": echo, "DELETE": echo}),
)


def request(method: str, uri: str, body: bytes = b"", **headers: str) -> Request:
    return Request.from_uri(method, uri, {k.replace("_", "-"): v for k, v in headers.items()}, body)


def run(req: Request, routes: tuple[Route, ...] = ROUTES) -> Response:
    opened: list[str] = []

    def open_context(r: Request) -> Context:
        opened.append(r.path)
        return Context(sub="auth0|alice", db=SqliteTestDatabase.__new__(SqliteTestDatabase))

    return serve(routes, req, open_context)


def body_of(response: Response) -> dict[str, object]:
    value = json.loads(response.body)
    assert isinstance(value, dict)
    return value


def test_request_splits_query() -> None:
    req = request("get", "/api/thing?limit=5&offset=2")
    assert (req.method, req.path, req.query) == ("GET", "/api/thing", "limit=5&offset=2")


def test_route_literal_before_pattern() -> None:
    response = run(request("GET", "/api/thing/me"))
    assert body_of(response)["params"] == {}


def test_route_pattern_decodes_segment() -> None:
    response = run(request("GET", "/api/thing/a%20b"))
    assert body_of(response)["params"] == {"name": "a b"}


def test_route_trailing_slash_matches() -> None:
    assert run(request("GET", "/api/thing/")).status == 200


@pytest.mark.parametrize("path", ["/api/thing/a/b", "/api/thingx", "/api/thing//", "/other"])
def test_route_unknown_path_404(path: str) -> None:
    response = run(request("GET", path))
    assert response.status == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_route_method_405_with_allow() -> None:
    response = run(request("PUT", "/api/thing/me"))
    assert response.status == 405
    assert response.headers["allow"] == "GET"


def test_route_405_lists_all_methods() -> None:
    response = run(request("PATCH", "/api/thing/x"))
    assert response.headers["allow"] == "DELETE, GET"


def test_route_405_before_authentication() -> None:
    def refuse(r: Request) -> Context:
        raise ProblemError(401, "Unauthorized", "no token")

    assert serve(ROUTES, request("PATCH", "/api/thing"), refuse).status == 405


def test_serve_problem_from_context() -> None:
    def refuse(r: Request) -> Context:
        raise ProblemError(401, "Unauthorized", "no token", headers={"WWW-Authenticate": "Bearer"})

    response = serve(ROUTES, request("GET", "/api/thing"), refuse)
    assert response.status == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_serve_unexpected_error_500() -> None:
    routes = (Route("/x", {"GET": fail_with(KeyError("secret detail"))}),)
    response = run(request("GET", "/x"), routes)
    assert response.status == 500
    assert b"secret detail" not in response.body


def test_serve_database_unavailable_503() -> None:
    routes = (Route("/x", {"GET": fail_with(DatabaseError("connection-failed", "refused"))}),)
    response = run(request("GET", "/x"), routes)
    assert response.status == 503
    assert response.headers["retry-after"] == "5"


def test_serve_query_failure_500() -> None:
    routes = (Route("/x", {"GET": fail_with(DatabaseError("query-failed", "syntax error"))}),)
    response = run(request("GET", "/x"), routes)
    assert response.status == 500
    assert b"syntax error" not in response.body


def test_problem_body_members() -> None:
    response = run(request("GET", "/nowhere"))
    body = body_of(response)
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["type"] == "about:blank"
    assert "/nowhere" in str(body["detail"])


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_body_accepted(content_type: str) -> None:
    req = request("POST", "/x", b'{"a": 1}', content_type=content_type)
    assert read_json_object(req) == {"a": 1}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_json_body_wrong_type_415(content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    req = Request.from_uri("POST", "/x", headers, b'{"a": 1}')
    with pytest.raises(ProblemError) as caught:
        read_json_object(req)
    assert caught.value.status == 415


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b"[" * 100_00 + b"]" * 100_00],
)
def test_json_body_invalid_400(body: bytes) -> None:
    req = request("POST", "/x", body, content_type="application/json")
    with pytest.raises(ProblemError) as caught:
        read_json_object(req)
    assert caught.value.status == 400


def test_json_body_huge_integer_400() -> None:
    # CPython's int() rejects more than 4,300 digits with a ValueError that is not a
    # JSONDecodeError.
    body = b'{"a": 1' + b"0" * 5000 + b"}"
    req = request("POST", "/x", body, content_type="application/json")
    with pytest.raises(ProblemError) as caught:
        read_json_object(req)
    assert caught.value.status == 400


def test_json_body_at_limit_accepted() -> None:
    padding = MAX_BODY_BYTES - len(b'{"a":""}')
    body = b'{"a":"' + b"x" * padding + b'"}'
    req = request("POST", "/x", body, content_type="application/json")
    assert len(body) == MAX_BODY_BYTES
    assert read_json_object(req)["a"] == "x" * padding


def test_json_body_over_limit_413() -> None:
    body = b'{"a":"' + b"x" * MAX_BODY_BYTES + b'"}'
    req = request("POST", "/x", body, content_type="application/json")
    with pytest.raises(ProblemError) as caught:
        read_json_object(req)
    assert caught.value.status == 413


def test_query_value_absent() -> None:
    assert query_value(request("GET", "/x?a=1"), "b") is None


def test_query_value_decoded() -> None:
    assert query_value(request("GET", "/x?a=%2B3"), "a") == "+3"


def test_query_value_repeated_400() -> None:
    with pytest.raises(ProblemError) as caught:
        query_value(request("GET", "/x?a=1&a=2"), "a")
    assert caught.value.status == 400


def test_find_non_utf8_header_names_first() -> None:
    entries = [("host", b"example.com"), ("x-note", b"caf\xe9"), ("x-other", b"\xff")]
    assert find_non_utf8_header(entries) == "x-note"


def test_find_non_utf8_header_accepts_utf8() -> None:
    entries = [("x-note", "café".encode()), ("x-empty", b"")]
    assert find_non_utf8_header(entries) is None


def test_non_utf8_header_problem_names_header() -> None:
    problem = non_utf8_header_problem("x-note")
    assert problem.status == 400
    assert "`x-note`" in problem.detail
    assert "must be UTF-8 text" in problem.detail
    assert problem.to_dict()["header"] == "x-note"
