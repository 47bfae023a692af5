"""Request handling common to both components: authentication, methods, paths, bodies."""

from __future__ import annotations

import time

import pytest

from .client import User, post_body, unique_handle
from .conftest import AppUnderTest

PATHS = ["/api/profile/me", "/api/post"]


@pytest.mark.parametrize("path", PATHS)
def test_no_token_401(app: AppUnderTest, path: str) -> None:
    reply = app.client.request("GET", path)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.content_type == "application/problem+json"


@pytest.mark.parametrize("path", PATHS)
def test_garbage_token_401(app: AppUnderTest, path: str) -> None:
    assert app.client.request("GET", path, token="not.a.jwt").status == 401


def test_expired_token_401(app: AppUnderTest) -> None:
    now = int(time.time())
    token = app.idp.mint("e2e|expired", iat=now - 7200, exp=now - 3600)
    assert app.client.request("GET", "/api/profile/me", token=token).status == 401


def test_wrong_audience_401(app: AppUnderTest) -> None:
    token = app.idp.mint("e2e|aud", aud="someone-else")
    assert app.client.request("GET", "/api/post", token=token).status == 401


def test_wrong_issuer_401(app: AppUnderTest) -> None:
    token = app.idp.mint("e2e|iss", iss="https://evil.example/")
    assert app.client.request("GET", "/api/post", token=token).status == 401


def test_tampered_token_401(app: AppUnderTest, alice: User) -> None:
    header, payload, signature = alice.token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    token = f"{header}.{payload}.{flipped}"
    assert app.client.request("GET", "/api/post", token=token).status == 401


@pytest.mark.parametrize("sub", ["e2e|nul\x00", "e2e|surrogate\ud800"], ids=["nul", "surrogate"])
def test_unstorable_sub_401(app: AppUnderTest, sub: str) -> None:
    token = app.idp.mint(sub)
    reply = app.client.request(
        "POST", "/api/profile", token=token, json_body={"handle": unique_handle()}
    )
    assert reply.status == 401
    assert reply.content_type == "application/problem+json"


# http.client sends str header values as Latin-1, so "\u00e9" is the byte 0xE9.
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("name", "value"), [("X-Note", "caf\u00e9"), ("Host", "\u00ff")])
def test_non_utf8_header_value_400(alice: User, path: str, name: str, value: str) -> None:
    reply = alice.client.request("GET", path, token=alice.token, headers={name: value})
    assert reply.status == 400
    assert reply.content_type == "application/problem+json"
    problem = reply.json()
    assert problem["status"] == 400
    assert f"`{name.lower()}`" in problem["detail"].lower()
    assert "must be UTF-8 text" in problem["detail"]


@pytest.mark.parametrize("path", ["/api/profile/me/extra", "/api/post/a/b", "/api/post//"])
def test_unknown_path_under_route_404(alice: User, path: str) -> None:
    reply = alice.get(path)
    assert reply.status == 404
    assert reply.content_type == "application/problem+json"


def test_path_outside_routes_404(alice: User) -> None:
    # No trigger route matches, so the runtime responds and no component runs.
    assert alice.get("/api/postx").status == 404


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/profile", "POST"),
        ("PATCH", "/api/profile/me", "DELETE, GET, PUT"),
        ("PUT", "/api/profile/someone", "GET"),
        ("DELETE", "/api/post", "GET, POST"),
        ("POST", "/api/post/" + "0" * 32, "DELETE, GET, PUT"),
    ],
)
def test_unsupported_method_405(alice: User, method: str, path: str, allow: str) -> None:
    reply = alice.client.request(method, path, token=alice.token)
    assert reply.status == 405
    assert reply.headers["allow"] == allow
    assert reply.content_type == "application/problem+json"


def test_trailing_slash_accepted(alice: User) -> None:
    assert alice.get("/api/post/").status == 200


@pytest.mark.parametrize("path", ["/api/profile", "/api/post"])
def test_body_over_64k_413(alice: User, path: str) -> None:
    alice.create_profile()
    body = post_body(content="x" * 70_000) if path == "/api/post" else {"handle": "x" * 70_000}
    reply = alice.post(path, body)
    assert reply.status == 413
    assert reply.content_type == "application/problem+json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_415(alice: User, content_type: str | None) -> None:
    reply = alice.client.request(
        "POST",
        "/api/profile",
        token=alice.token,
        body=b'{"handle": "abc_def"}',
        content_type=content_type,
    )
    assert reply.status == 415


@pytest.mark.parametrize("body", [b"{", b"", b"[1]", b'"handle"', b"\xff\xfe{}", b"null"])
def test_invalid_json_400(alice: User, body: bytes) -> None:
    reply = alice.client.request(
        "POST", "/api/profile", token=alice.token, body=body, content_type="application/json"
    )
    assert reply.status == 400
    assert reply.content_type == "application/problem+json"


def test_huge_integer_400(alice: User) -> None:
    body = b'{"handle": "x", "avatar": 1' + b"0" * 5000 + b"}"
    reply = alice.client.request(
        "POST", "/api/profile", token=alice.token, body=body, content_type="application/json"
    )
    assert reply.status == 400
    assert reply.content_type == "application/problem+json"


def test_json_charset_accepted(alice: User) -> None:
    reply = alice.client.request(
        "POST",
        "/api/profile",
        token=alice.token,
        body=f'{{"handle": "{unique_handle()}"}}'.encode(),
        content_type="application/json; charset=utf-8",
    )
    assert reply.status == 201


def test_sql_injection_inert(alice: User, bob: User) -> None:
    alice.create_profile()
    reply = bob.get("/api/profile/x'%20OR%20'1'='1")
    assert reply.status == 404
