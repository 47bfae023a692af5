"""Posts component handlers over a real SQLite database (posts_api/app.py)."""

from __future__ import annotations

import pytest

from .conftest import SqliteTestDatabase, load_component_module
from .handler_support import Caller, ContextFactory, json_body

ALICE = "auth0|alice"
BOB = "auth0|bob"
MISSING_ID = "f" * 32


def post_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "content": "A neat loop",
        "type": "permalink-range",
        "data": {
            "url": "https://github.com/o/r/blob/abc/x.py#L1-L3",
            "start_line": 1,
            "end_line": 3,
        },
        "visibility": "public",
    }
    body.update(changes)
    return body


@pytest.fixture
def call(make_context: ContextFactory) -> Caller:
    profile_call = Caller(load_component_module("profile_api"), make_context)
    assert profile_call(ALICE, "POST", "/api/profile", {"handle": "alice"}).status == 201
    assert profile_call(BOB, "POST", "/api/profile", {"handle": "bob"}).status == 201
    return Caller(load_component_module("posts_api"), make_context)


@pytest.fixture
def profile_call(make_context: ContextFactory) -> Caller:
    return Caller(load_component_module("profile_api"), make_context)


def create(call: Caller, sub: str = ALICE, **changes: object) -> dict[str, object]:
    response = call(sub, "POST", "/api/post", post_body(**changes))
    assert response.status == 201, response.body
    return json_body(response)


def test_create_201_location(call: Caller) -> None:
    response = call(ALICE, "POST", "/api/post", post_body())
    body = json_body(response)
    assert response.status == 201
    assert response.headers["location"] == f"/api/post/{body['id']}"


def test_create_body_fields(call: Caller) -> None:
    body = create(call)
    assert body["author_id"] == ALICE
    assert body["data"] == post_body()["data"]
    assert body["created_at"] == body["updated_at"]


def test_data_keys_in_documented_order(call: Caller) -> None:
    data = {"end_line": 3, "start_line": 1, "url": "https://github.com/o/r/blob/abc/x.py"}
    expected = ["url", "start_line", "end_line"]
    created = create(call, data=data)
    post_path = f"/api/post/{created['id']}"
    assert isinstance(created["data"], dict)
    assert list(created["data"]) == expected
    assert list(json_body(call(ALICE, "GET", post_path))["data"]) == expected
    updated = json_body(call(ALICE, "PUT", post_path, post_body(data=data)))
    assert list(updated["data"]) == expected


def test_create_without_profile_403(call: Caller) -> None:
    response = call("auth0|carol", "POST", "/api/post", post_body())
    assert response.status == 403
    assert "POST /api/profile" in str(json_body(response)["detail"])


def test_create_other_author_403(call: Caller) -> None:
    assert call(ALICE, "POST", "/api/post", post_body(author_id=BOB)).status == 403


def test_create_invalid_names_fields(call: Caller) -> None:
    response = call(ALICE, "POST", "/api/post", post_body(content="", visibility="friends"))
    fields = [error["field"] for error in json_body(response)["errors"]]
    assert response.status == 400
    assert fields == ["content", "visibility"]


def test_get_own_followers_post(call: Caller) -> None:
    post = create(call, visibility="followers")
    assert call(ALICE, "GET", f"/api/post/{post['id']}").status == 200


def test_get_public_post_by_other(call: Caller) -> None:
    post = create(call)
    assert json_body(call(BOB, "GET", f"/api/post/{post['id']}"))["id"] == post["id"]


def test_get_followers_post_by_other_404(call: Caller) -> None:
    post = create(call, visibility="followers")
    assert call(BOB, "GET", f"/api/post/{post['id']}").status == 404


@pytest.mark.parametrize("post_id", [MISSING_ID, "nothex", "F" * 32, "1%27%20OR%201=1"])
def test_get_unknown_id_404(call: Caller, post_id: str) -> None:
    assert call(ALICE, "GET", f"/api/post/{post_id}").status == 404


def test_update_by_author(call: Caller) -> None:
    post = create(call)
    response = call(ALICE, "PUT", f"/api/post/{post['id']}", post_body(content="Changed"))
    body = json_body(response)
    assert response.status == 200
    assert body["content"] == "Changed"
    assert body["created_at"] == post["created_at"]
    assert body["updated_at"] > post["updated_at"]


def test_update_by_other_404(call: Caller) -> None:
    post = create(call)
    assert call(BOB, "PUT", f"/api/post/{post['id']}", post_body()).status == 404


def test_update_by_other_leaves_post(call: Caller) -> None:
    post = create(call)
    call(BOB, "PUT", f"/api/post/{post['id']}", post_body(content="Hijacked"))
    assert json_body(call(ALICE, "GET", f"/api/post/{post['id']}"))["content"] == "A neat loop"


def test_update_invalid_400(call: Caller) -> None:
    post = create(call)
    assert call(ALICE, "PUT", f"/api/post/{post['id']}", post_body(type="gist")).status == 400


def test_update_other_author_field_403(call: Caller) -> None:
    post = create(call)
    response = call(ALICE, "PUT", f"/api/post/{post['id']}", post_body(author_id=BOB))
    assert response.status == 403


def test_update_missing_404(call: Caller) -> None:
    assert call(ALICE, "PUT", f"/api/post/{MISSING_ID}", post_body()).status == 404


def test_delete_by_author_204(call: Caller) -> None:
    post = create(call)
    assert call(ALICE, "DELETE", f"/api/post/{post['id']}").status == 204


def test_delete_removes_post(call: Caller) -> None:
    post = create(call)
    call(ALICE, "DELETE", f"/api/post/{post['id']}")
    assert call(ALICE, "GET", f"/api/post/{post['id']}").status == 404


def test_delete_by_other_404(call: Caller) -> None:
    post = create(call)
    assert call(BOB, "DELETE", f"/api/post/{post['id']}").status == 404


def test_list_newest_first(call: Caller) -> None:
    ids = [create(call, content=f"post {n}")["id"] for n in range(3)]
    body = json_body(call(ALICE, "GET", "/api/post"))
    assert [item["id"] for item in body["items"]] == ids[::-1]


def test_list_only_callers_posts(call: Caller) -> None:
    create(call, ALICE)
    create(call, BOB)
    items = json_body(call(BOB, "GET", "/api/post"))["items"]
    assert [item["author_id"] for item in items] == [BOB]


def test_list_ties_broken_by_id(call: Caller, database: SqliteTestDatabase) -> None:
    ids = [str(create(call)["id"]) for _ in range(3)]
    database.execute("UPDATE posts SET created_at = ?", ["2026-01-01T00:00:00.000000Z"])
    items = json_body(call(ALICE, "GET", "/api/post"))["items"]
    assert [item["id"] for item in items] == sorted(ids, reverse=True)


def test_list_default_limit_5(call: Caller) -> None:
    for _ in range(7):
        create(call)
    body = json_body(call(ALICE, "GET", "/api/post"))
    assert len(body["items"]) == 5
    assert body["limit"] == 5


def test_list_offset_pages(call: Caller) -> None:
    ids = [create(call)["id"] for _ in range(4)]
    body = json_body(call(ALICE, "GET", "/api/post?limit=2&offset=2"))
    assert [item["id"] for item in body["items"]] == ids[1::-1]


def test_list_limit_clamped(call: Caller) -> None:
    body = json_body(call(ALICE, "GET", "/api/post?limit=100&offset=-3"))
    assert (body["limit"], body["offset"]) == (25, 0)


@pytest.mark.parametrize("query", ["limit=abc", "offset=1.5", "limit=1&limit=2"])
def test_list_bad_query_400(call: Caller, query: str) -> None:
    assert call(ALICE, "GET", f"/api/post?{query}").status == 400


def test_list_without_profile_empty(call: Caller) -> None:
    assert json_body(call("auth0|carol", "GET", "/api/post"))["items"] == []


def test_profile_delete_removes_posts(call: Caller, profile_call: Caller) -> None:
    post = create(call, visibility="public")
    profile_call(ALICE, "DELETE", "/api/profile/me")
    assert call(BOB, "GET", f"/api/post/{post['id']}").status == 404


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/post", "GET, POST"),
        ("POST", f"/api/post/{MISSING_ID}", "DELETE, GET, PUT"),
    ],
)
def test_unsupported_method_405(call: Caller, method: str, path: str, allow: str) -> None:
    response = call(ALICE, method, path)
    assert response.status == 405
    assert response.headers["allow"] == allow


def test_unknown_path_404(call: Caller) -> None:
    assert call(ALICE, "GET", f"/api/post/{MISSING_ID}/comments").status == 404
