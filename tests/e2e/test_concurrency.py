"""Concurrent writes: the database's unique index decides, and nobody gets a 500."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .client import User, unique_handle
from .conftest import AppUnderTest

CALLERS = 8


def test_same_handle_race_one_wins(app: AppUnderTest) -> None:
    handle = unique_handle("race")
    users = [app.user("race") for _ in range(CALLERS)]

    def claim(user: User) -> int:
        return user.post("/api/profile", {"handle": handle}).status

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        statuses = sorted(pool.map(claim, users))
    assert statuses == [201] + [409] * (CALLERS - 1)


def test_same_user_race_one_profile(app: AppUnderTest) -> None:
    user = app.user("twice")

    def claim(_: int) -> int:
        return user.post("/api/profile", {"handle": unique_handle()}).status

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        statuses = sorted(pool.map(claim, range(CALLERS)))
    assert statuses == [201] + [409] * (CALLERS - 1)


def test_parallel_posts_all_listed(app: AppUnderTest) -> None:
    user = app.user("writer")
    user.create_profile()

    def write(n: int) -> int:
        return user.post(
            "/api/post",
            {
                "content": f"post {n}",
                "type": "permalink-range",
                "data": {"url": "https://e.com/x", "start_line": n + 1, "end_line": n + 1},
                "visibility": "public",
            },
        ).status

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        statuses = list(pool.map(write, range(CALLERS)))
    listed = user.get("/api/post?limit=25").json()["items"]
    assert statuses == [201] * CALLERS
    assert len(listed) == CALLERS
