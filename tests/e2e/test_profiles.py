"""Profiles over HTTP: /api/profile on the running app."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from .client import User, unique_handle
from .conftest import AppUnderTest


def test_create_profile_201(alice: User) -> None:
    handle = unique_handle("Alice")
    reply = alice.post("/api/profile", {"handle": handle, "avatar": "https://e.com/a.png"})
    body = reply.json()
    assert reply.status == 201
    assert reply.content_type == "application/json"
    assert reply.headers["location"] == f"/api/profile/{handle}"
    assert body["id"] == alice.sub
    assert body["handle"] == handle
    assert body["avatar"] == "https://e.com/a.png"
    assert body["created_at"] == body["updated_at"]


def test_create_profile_stored_in_backend(app: AppUnderTest, alice: User) -> None:
    if not app.is_local:
        pytest.skip("the database of a remote app is not reachable from the suite")
    alice.create_profile()
    if app.backend == "postgres":
        assert app.db_url is not None
        with psycopg.connect(app.db_url) as connection:
            row = connection.execute(
                "SELECT id FROM profiles WHERE id = %s", [alice.sub]
            ).fetchone()
    else:
        assert app.state_dir is not None
        with sqlite3.connect(app.state_dir / "sqlite_db.db") as connection:
            row = connection.execute("SELECT id FROM profiles WHERE id = ?", [alice.sub]).fetchone()
    assert row == (alice.sub,)


def test_create_profile_twice_409(alice: User) -> None:
    alice.create_profile()
    reply = alice.post("/api/profile", {"handle": unique_handle()})
    assert reply.status == 409
    assert reply.content_type == "application/problem+json"


def test_create_profile_taken_handle_409(alice: User, bob: User) -> None:
    handle = unique_handle("Taken")
    alice.create_profile(handle)
    reply = bob.post("/api/profile", {"handle": handle.upper()})
    assert reply.status == 409
    assert reply.error_fields() == ["handle"]


@pytest.mark.parametrize("handle", ["me", "ME", "new", "ab", "a" * 33, "bad handle", "ha!"])
def test_create_profile_bad_handle_400(alice: User, handle: str) -> None:
    reply = alice.post("/api/profile", {"handle": handle})
    assert reply.status == 400
    assert reply.error_fields() == ["handle"]


@pytest.mark.parametrize(
    "avatar", ["http://e.com/a.png", "https://e.com/" + "a" * 250, "not a url", 5]
)
def test_create_profile_bad_avatar_400(alice: User, avatar: object) -> None:
    reply = alice.post("/api/profile", {"handle": unique_handle(), "avatar": avatar})
    assert reply.status == 400
    assert reply.error_fields() == ["avatar"]


def test_create_profile_names_all_fields(alice: User) -> None:
    reply = alice.post("/api/profile", {"handle": "x", "avatar": "ftp://e.com", "bio": "hi"})
    body = reply.json()
    assert reply.status == 400
    assert sorted(reply.error_fields()) == ["avatar", "bio", "handle"]
    assert body["type"] == "about:blank"
    assert body["title"]
    assert body["status"] == 400
    assert body["detail"]


def test_create_profile_other_id_403(alice: User, bob: User) -> None:
    reply = alice.post("/api/profile", {"handle": unique_handle(), "id": bob.sub})
    assert reply.status == 403


def test_get_me(alice: User) -> None:
    created = alice.create_profile()
    reply = alice.get("/api/profile/me")
    assert reply.status == 200
    assert reply.json() == created


def test_get_me_without_profile_404(alice: User) -> None:
    reply = alice.get("/api/profile/me")
    assert reply.status == 404
    assert reply.content_type == "application/problem+json"


def test_get_by_handle_ignoring_case(alice: User, bob: User) -> None:
    created = alice.create_profile(unique_handle("MiXeD"))
    reply = bob.get(f"/api/profile/{created['handle'].swapcase()}")
    assert reply.status == 200
    assert reply.json()["id"] == alice.sub


@pytest.mark.parametrize("handle", ["nobody_here_9", "a%2Fb", "%E2%9C%93%E2%9C%93%E2%9C%93"])
def test_get_by_handle_unknown_404(alice: User, handle: str) -> None:
    reply = alice.get(f"/api/profile/{handle}")
    assert reply.status == 404
    assert reply.content_type == "application/problem+json"


def test_update_me(alice: User) -> None:
    created = alice.create_profile()
    handle = unique_handle("new")
    reply = alice.put("/api/profile/me", {"handle": handle, "avatar": "https://e.com/b.png"})
    body = reply.json()
    assert reply.status == 200
    assert body["handle"] == handle
    assert body["avatar"] == "https://e.com/b.png"
    assert body["created_at"] == created["created_at"]
    assert body["updated_at"] > created["updated_at"]


def test_update_me_frees_old_handle(alice: User, bob: User) -> None:
    old = alice.create_profile()["handle"]
    alice.put("/api/profile/me", {"handle": unique_handle()})
    assert bob.post("/api/profile", {"handle": old}).status == 201


def test_update_me_clears_avatar(alice: User) -> None:
    alice.post("/api/profile", {"handle": unique_handle(), "avatar": "https://e.com/a.png"})
    reply = alice.put("/api/profile/me", {"handle": unique_handle()})
    assert reply.json()["avatar"] is None


def test_update_me_taken_handle_409(alice: User, bob: User) -> None:
    taken = alice.create_profile()["handle"]
    bob.create_profile()
    reply = bob.put("/api/profile/me", {"handle": taken.upper()})
    assert reply.status == 409


def test_update_me_without_profile_404(alice: User) -> None:
    assert alice.put("/api/profile/me", {"handle": unique_handle()}).status == 404


def test_update_me_invalid_400(alice: User) -> None:
    alice.create_profile()
    reply = alice.put("/api/profile/me", {"handle": "me", "avatar": "javascript:x"})
    assert reply.status == 400
    assert reply.error_fields() == ["handle", "avatar"]


def test_delete_me_204(alice: User) -> None:
    alice.create_profile()
    reply = alice.delete("/api/profile/me")
    assert reply.status == 204
    assert reply.body == b""


def test_delete_me_then_get_404(alice: User) -> None:
    alice.create_profile()
    alice.delete("/api/profile/me")
    assert alice.get("/api/profile/me").status == 404


def test_delete_me_removes_posts(alice: User, bob: User) -> None:
    alice.create_profile()
    post = alice.create_post(visibility="public")
    alice.delete("/api/profile/me")
    assert bob.get(f"/api/post/{post['id']}").status == 404


def test_delete_me_without_profile_404(alice: User) -> None:
    assert alice.delete("/api/profile/me").status == 404


def test_profile_recreate_after_delete(alice: User) -> None:
    alice.create_profile()
    alice.delete("/api/profile/me")
    assert alice.post("/api/profile", {"handle": unique_handle()}).status == 201
