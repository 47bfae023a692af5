"""The WSGI adapter in front of LocalApp: targets, headers, body limit and client address."""

from __future__ import annotations

import io
from typing import Any

from spinlocal.server import _client_addr, _read_body, _request_headers, _request_target


def environ(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(b"")}
    base.update(values)
    return base


def test_target_raw_uri_kept() -> None:
    assert _request_target(environ(RAW_URI="/a%2Fb?x=1")) == "/a%2Fb?x=1"


def test_target_absolute_form() -> None:
    assert _request_target(environ(RAW_URI="http://example.test/p?q")) == "/p?q"


def test_target_without_raw_uri() -> None:
    assert _request_target(environ(PATH_INFO="/p", QUERY_STRING="a=1")) == "/p?a=1"


def test_headers_from_environ() -> None:
    headers = _request_headers(
        environ(HTTP_X_TRACE_ID="t1", CONTENT_TYPE="text/plain", CONTENT_LENGTH="")
    )
    assert ("x-trace-id", b"t1") in headers
    assert ("content-type", b"text/plain") in headers
    assert all(name != "content-length" for name, _ in headers)


def test_body_with_length() -> None:
    env = environ(CONTENT_LENGTH="3", **{"wsgi.input": io.BytesIO(b"abcdef")})
    assert _read_body(env, 10) == b"abc"


def test_body_length_over_limit() -> None:
    env = environ(CONTENT_LENGTH="11", **{"wsgi.input": io.BytesIO(b"x" * 11)})
    assert _read_body(env, 10) is None


def test_body_chunked_at_limit() -> None:
    env = environ(**{"wsgi.input": io.BytesIO(b"x" * 10)})
    assert _read_body(env, 10) == b"x" * 10


def test_body_chunked_over_limit() -> None:
    env = environ(**{"wsgi.input": io.BytesIO(b"x" * 11)})
    assert _read_body(env, 10) is None


def test_client_addr_ipv4() -> None:
    assert _client_addr(environ(REMOTE_ADDR="127.0.0.1", REMOTE_PORT="5000")) == "127.0.0.1:5000"


def test_client_addr_ipv6() -> None:
    assert _client_addr(environ(REMOTE_ADDR="::1", REMOTE_PORT="5000")) == "[::1]:5000"
