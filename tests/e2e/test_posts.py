"""Posts over HTTP: /api/post on the running app, including checks across two callers."""

from __future__ import annotations

from typing import Any

import pytest

from .client import User, post_body

MISSING_ID = "0" * 32


@pytest.fixture
def author(alice: User) -> User:
    alice.create_profile()
    return alice


@pytest.fixture
def other(bob: User) -> User:
    bob.create_profile()
    return bob


def ids_of(reply_body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in reply_body["items"]]


def test_create_post_201(author: User) -> None:
    reply = author.post("/api/post", post_body())
    body = reply.json()
    assert reply.status == 201
    assert reply.headers["location"] == f"/api/post/{body['id']}"
    assert body["author_id"] == author.sub
    assert body["data"] == post_body()["data"]
    assert body["visibility"] == "public"
    assert body["created_at"] == body["updated_at"]


def test_create_post_with_own_author(author: User) -> None:
    assert author.post("/api/post", post_body(author_id=author.sub)).status == 201


def test_create_post_other_author_403(author: User, other: User) -> None:
    reply = author.post("/api/post", post_body(author_id=other.sub))
    assert reply.status == 403
    assert reply.content_type == "application/problem+json"


def test_create_post_without_profile_403(alice: User) -> None:
    reply = alice.post("/api/post", post_body())
    assert reply.status == 403
    assert "profile" in reply.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"content": ""}, ["content"]),
        ({"content": " \n "}, ["content"]),
        ({"content": "x" * 10_001}, ["content"]),
        ({"type": "gist"}, ["type"]),
        ({"visibility": "private"}, ["visibility"]),
        ({"data": "https://e.com"}, ["data"]),
        ({"data": {"url": "https://e.com/x", "start_line": 9, "end_line": 3}}, ["data.end_line"]),
        ({"data": {"url": "ftp://e.com/x", "start_line": 1, "end_line": 3}}, ["data.url"]),
        ({"content": None, "visibility": None}, ["content", "visibility"]),
    ],
)
def test_create_post_invalid_400(author: User, changes: dict[str, Any], fields: list[str]) -> None:
    reply = author.post("/api/post", post_body(**changes))
    assert reply.status == 400
    assert reply.error_fields() == fields


def test_create_post_content_at_limit(author: User) -> None:
    assert author.post("/api/post", post_body(content="é" * 10_000)).status == 201


def test_get_own_followers_post(author: User) -> None:
    post = author.create_post(visibility="followers")
    reply = author.get(f"/api/post/{post['id']}")
    assert reply.status == 200
    assert reply.json() == post


def test_get_public_post_by_other(author: User, other: User) -> None:
    post = author.create_post(visibility="public")
    assert other.get(f"/api/post/{post['id']}").json() == post


def test_get_followers_post_by_other_404(author: User, other: User) -> None:
    post = author.create_post(visibility="followers")
    reply = other.get(f"/api/post/{post['id']}")
    assert reply.status == 404
    assert reply.content_type == "application/problem+json"


def test_get_followers_post_same_as_missing(author: User, other: User) -> None:
    post = author.create_post(visibility="followers")
    hidden = other.get(f"/api/post/{post['id']}").json()
    missing = other.get(f"/api/post/{MISSING_ID}").json()
    assert hidden["status"] == missing["status"]
    assert hidden["title"] == missing["title"]


@pytest.mark.parametrize("post_id", [MISSING_ID, "xyz", "A" * 32, "0" * 31, "%27%20OR%201%3D1"])
def test_get_bad_id_404(author: User, post_id: str) -> None:
    assert author.get(f"/api/post/{post_id}").status == 404


def test_update_post(author: User) -> None:
    post = author.create_post()
    reply = author.put(
        f"/api/post/{post['id']}", post_body(content="Fixed", visibility="followers")
    )
    body = reply.json()
    assert reply.status == 200
    assert body["content"] == "Fixed"
    assert body["visibility"] == "followers"
    assert body["created_at"] == post["created_at"]
    assert body["updated_at"] > post["updated_at"]


def test_update_post_by_other_404(author: User, other: User) -> None:
    post = author.create_post(visibility="public")
    assert other.put(f"/api/post/{post['id']}", post_body(content="Mine now")).status == 404


def test_update_post_by_other_unchanged(author: User, other: User) -> None:
    post = author.create_post(visibility="public")
    other.put(f"/api/post/{post['id']}", post_body(content="Mine now"))
    assert author.get(f"/api/post/{post['id']}").json()["content"] == post["content"]


def test_update_post_other_author_field_403(author: User, other: User) -> None:
    post = author.create_post()
    assert author.put(f"/api/post/{post['id']}", post_body(author_id=other.sub)).status == 403


def test_update_post_invalid_400(author: User) -> None:
    post = author.create_post()
    reply = author.put(f"/api/post/{post['id']}", post_body(content="", type="x"))
    assert reply.status == 400
    assert reply.error_fields() == ["content", "type"]


def test_update_post_missing_404(author: User) -> None:
    assert author.put(f"/api/post/{MISSING_ID}", post_body()).status == 404


def test_delete_post_204(author: User) -> None:
    post = author.create_post()
    assert author.delete(f"/api/post/{post['id']}").status == 204


def test_delete_post_then_get_404(author: User) -> None:
    post = author.create_post()
    author.delete(f"/api/post/{post['id']}")
    assert author.get(f"/api/post/{post['id']}").status == 404


def test_delete_post_by_other_404(author: User, other: User) -> None:
    post = author.create_post(visibility="public")
    assert other.delete(f"/api/post/{post['id']}").status == 404


def test_delete_post_by_other_keeps_it(author: User, other: User) -> None:
    post = author.create_post(visibility="followers")
    other.delete(f"/api/post/{post['id']}")
    assert author.get(f"/api/post/{post['id']}").status == 200


def test_list_newest_first(author: User) -> None:
    ids = [author.create_post(content=f"post {n}")["id"] for n in range(3)]
    reply = author.get("/api/post")
    assert reply.status == 200
    assert ids_of(reply.json()) == ids[::-1]


def test_list_default_limit_5(author: User) -> None:
    for n in range(6):
        author.create_post(content=f"post {n}")
    body = author.get("/api/post").json()
    assert len(body["items"]) == 5
    assert body["limit"] == 5
    assert body["offset"] == 0


def test_list_pages(author: User) -> None:
    ids = [author.create_post()["id"] for _ in range(5)]
    newest_first = ids[::-1]
    first = author.get("/api/post?limit=2").json()
    second = author.get("/api/post?limit=2&offset=2").json()
    last = author.get("/api/post?limit=2&offset=4").json()
    assert ids_of(first) == newest_first[0:2]
    assert ids_of(second) == newest_first[2:4]
    assert ids_of(last) == newest_first[4:5]


def test_list_only_own_posts(author: User, other: User) -> None:
    author.create_post(visibility="public")
    other_post = other.create_post(visibility="public")
    assert ids_of(other.get("/api/post").json()) == [other_post["id"]]


@pytest.mark.parametrize(
    ("query", "limit", "offset"),
    [("limit=0", 1, 0), ("limit=1000", 25, 0), ("offset=-5", 5, 0), ("offset=99999", 5, 10_000)],
)
def test_list_clamps_paging(author: User, query: str, limit: int, offset: int) -> None:
    body = author.get(f"/api/post?{query}").json()
    assert body["limit"] == limit
    assert body["offset"] == offset


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("limit=ten", ["limit"]),
        ("offset=1.5", ["offset"]),
        ("limit=x&offset=y", ["limit", "offset"]),
    ],
)
def test_list_bad_paging_400(author: User, query: str, fields: list[str]) -> None:
    reply = author.get(f"/api/post?{query}")
    assert reply.status == 400
    assert reply.error_fields() == fields


def test_list_without_profile_empty(alice: User) -> None:
    assert alice.get("/api/post").json()["items"] == []


def test_post_timestamps_round_trip(author: User) -> None:
    # The timestamps the database returns must keep microseconds and the Z suffix.
    post = author.create_post()
    fetched = author.get(f"/api/post/{post['id']}").json()
    assert fetched["created_at"] == post["created_at"]
    assert fetched["created_at"].endswith("Z")


def test_post_data_key_order(author: User) -> None:
    # The request lists the keys in another order. Every response lists them as the
    # docs do, whatever order the database stores them in.
    data = {"end_line": 20, "url": post_body()["data"]["url"], "start_line": 10}
    expected = ["url", "start_line", "end_line"]
    created = author.post("/api/post", post_body(data=data)).json()
    post_path = f"/api/post/{created['id']}"
    assert list(created["data"]) == expected
    assert list(author.get(post_path).json()["data"]) == expected
    assert list(author.put(post_path, post_body(data=data)).json()["data"]) == expected
    assert list(author.get("/api/post").json()["items"][0]["data"]) == expected
