"""Profile component handlers over a real SQLite database (profile_api/app.py)."""

from __future__ import annotations

from typing import Any

import pytest
from codethings import profiles
from codethings.db import Database

from .conftest import load_component_module
from .handler_support import Caller, ContextFactory, json_body

ALICE = "auth0|alice"
BOB = "auth0|bob"


@pytest.fixture
def call(make_context: ContextFactory) -> Caller:
    return Caller(load_component_module("profile_api"), make_context)


def test_create_returns_201_and_location(call: Caller) -> None:
    response = call(ALICE, "POST", "/api/profile", {"handle": "Alice"})
    assert response.status == 201
    assert response.headers["location"] == "/api/profile/Alice"


def test_create_body_is_profile(call: Caller) -> None:
    body = json_body(call(ALICE, "POST", "/api/profile", {"handle": "alice", "avatar": None}))
    assert body["id"] == ALICE
    assert body["handle"] == "alice"
    assert body["avatar"] is None
    assert body["created_at"] == body["updated_at"]
    assert str(body["created_at"]).endswith("Z")


def test_create_twice_409(call: Caller) -> None:
    call(ALICE, "POST", "/api/profile", {"handle": "alice"})
    assert call(ALICE, "POST", "/api/profile", {"handle": "alice2"}).status == 409


def test_create_race_same_caller_409(call: Caller, monkeypatch: pytest.MonkeyPatch) -> None:
    insert = profiles.insert

    def racing_insert(db: Database, profile_id: str, handle: str, *args: Any) -> Any:
        # A concurrent request of the same caller inserts its profile first.
        insert(db, profile_id, "alice_other", *args)
        return insert(db, profile_id, handle, *args)

    monkeypatch.setattr(profiles, "insert", racing_insert)
    response = call(ALICE, "POST", "/api/profile", {"handle": "alice"})
    assert response.status == 409
    assert str(json_body(response)["detail"]).startswith("You already have a profile.")


def test_create_taken_handle_ignoring_case_409(call: Caller) -> None:
    call(ALICE, "POST", "/api/profile", {"handle": "alice"})
    response = call(BOB, "POST", "/api/profile", {"handle": "ALICE"})
    assert response.status == 409
    assert json_body(response)["errors"] == [{"field": "handle", "message": "is taken"}]


def test_create_reserved_handle_400(call: Caller) -> None:
    assert call(ALICE, "POST", "/api/profile", {"handle": "new"}).status == 400


def test_create_other_id_403(call: Caller) -> None:
    response = call(ALICE, "POST", "/api/profile", {"handle": "alice", "id": BOB})
    assert response.status == 403


def test_create_wrong_content_type_415(call: Caller) -> None:
    response = call(ALICE, "POST", "/api/profile", b"handle=alice", "text/plain")
    assert response.status == 415


def test_get_me(call: Caller) -> None:
    call(ALICE, "POST", "/api/profile", {"handle": "alice"})
    assert json_body(call(ALICE, "GET", "/api/profile/me"))["handle"] == "alice"


def test_get_me_without_profile_404(call: Caller) -> None:
    assert call(ALICE, "GET", "/api/profile/me").status == 404


def test_get_by_handle_ignoring_case(call: Caller) -> None:
    call(ALICE, "POST", "/api/profile", {"handle": "Alice"})
    assert json_body(call(BOB, "GET", "/api/profile/aLICE"))["id"] == ALICE


@pytest.mark.parametrize("handle", ["nobody", "x", "a%2Fb", "%00%00%00"])
def test_get_by_handle_unknown_404(call: Caller, handle: str) -> None:
    response = call(ALICE, "GET", f"/api/profile/{handle}")
    assert response.status == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_update_me(call: Caller) -> None:
    created = json_body(call(ALICE, "POST", "/api/profile", {"handle": "alice"}))
    response = call(
        ALICE, "PUT", "/api/profile/me", {"handle": "alice2", "avatar": "https://e.com/a.png"}
    )
    body = json_body(response)
    assert response.status == 200
    assert body["handle"] == "alice2"
    assert body["avatar"] == "https://e.com/a.png"
    assert body["created_at"] == created["created_at"]
    assert body["updated_at"] > created["updated_at"]


def test_update_me_same_handle_other_case(call: Caller) -> None:
    call(ALICE, "POST", "/api/profile", {"handle": "alice"})
    assert call(ALICE, "PUT", "/api/profile/me", {"handle": "ALICE"}).status == 200


def test_update_me_taken_handle_409(call: Caller) -> None:
    call(ALICE, "POST", "/api/profile", {"handle": "alice"})
    call(BOB, "POST", "/api/profile", {"handle": "bob"})
    assert call(BOB, "PUT", "/api/profile/me", {"handle": "Alice"}).status == 409


def test_update_me_without_profile_404(call: Caller) -> None:
    assert call(ALICE, "PUT", "/api/profile/me", {"handle": "alice"}).status == 404


def test_update_me_invalid_400(call: Caller) -> None:
    call(ALICE, "POST", "/api/profile", {"handle": "alice"})
    response = call(ALICE, "PUT", "/api/profile/me", {"handle": "a", "avatar": "http://e.com"})
    fields = [error["field"] for error in json_body(response)["errors"]]
    assert response.status == 400
    assert fields == ["handle", "avatar"]


def test_delete_me_204(call: Caller) -> None:
    call(ALICE, "POST", "/api/profile", {"handle": "alice"})
    assert call(ALICE, "DELETE", "/api/profile/me").status == 204


def test_delete_me_frees_handle(call: Caller) -> None:
    call(ALICE, "POST", "/api/profile", {"handle": "alice"})
    call(ALICE, "DELETE", "/api/profile/me")
    assert call(BOB, "POST", "/api/profile", {"handle": "alice"}).status == 201


def test_delete_me_twice_404(call: Caller) -> None:
    call(ALICE, "POST", "/api/profile", {"handle": "alice"})
    call(ALICE, "DELETE", "/api/profile/me")
    assert call(ALICE, "DELETE", "/api/profile/me").status == 404


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/profile", "POST"),
        ("POST", "/api/profile/me", "DELETE, GET, PUT"),
        ("DELETE", "/api/profile/alice", "GET"),
    ],
)
def test_unsupported_method_405(call: Caller, method: str, path: str, allow: str) -> None:
    response = call(ALICE, method, path)
    assert response.status == 405
    assert response.headers["allow"] == allow


def test_unknown_path_404(call: Caller) -> None:
    assert call(ALICE, "GET", "/api/profile/alice/posts").status == 404
