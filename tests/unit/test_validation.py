"""Rules for handles, avatars, posts and paging in codethings.validation."""

from __future__ import annotations

import pytest
from codethings.problems import ProblemError
from codethings.validation import (
    MAX_CONTENT_CHARS,
    is_post_id,
    parse_paging,
    parse_post,
    parse_profile,
)

SUB = "auth0|alice"


def field_names(problem: ProblemError) -> list[str]:
    errors = problem.extra["errors"]
    assert isinstance(errors, list)
    return [error["field"] for error in errors]


def valid_post(**changes: object) -> dict[str, object]:
    post: dict[str, object] = {
        "content": "Look at this loop",
        "type": "permalink-range",
        "data": {
            "url": "https://github.com/o/r/blob/abc/x.py#L1-L3",
            "start_line": 1,
            "end_line": 3,
        },
        "visibility": "public",
    }
    post.update(changes)
    return post


@pytest.mark.parametrize("handle", ["abc", "a" * 32, "Alice_B-2", "___", "ME2"])
def test_profile_handle_valid(handle: str) -> None:
    assert parse_profile({"handle": handle}, SUB).handle == handle


@pytest.mark.parametrize(
    "handle",
    ["ab", "a" * 33, "al ice", "alice!", "ålice", "alice\n", "", 123, None, ["alice"]],
)
def test_profile_handle_invalid(handle: object) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_profile({"handle": handle}, SUB)
    assert caught.value.status == 400
    assert field_names(caught.value) == ["handle"]


@pytest.mark.parametrize("handle", ["new", "NEW", "Admin", "profile", "self"])
def test_profile_handle_reserved(handle: str) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_profile({"handle": handle}, SUB)
    assert caught.value.status == 400
    errors = caught.value.extra["errors"]
    assert isinstance(errors, list)
    assert "reserved" in errors[0]["message"]


def test_profile_handle_missing() -> None:
    with pytest.raises(ProblemError) as caught:
        parse_profile({}, SUB)
    assert field_names(caught.value) == ["handle"]


@pytest.mark.parametrize(
    "avatar",
    [None, "https://example.com/a.png", "https://e.com/" + "a" * (256 - len("https://e.com/"))],
)
def test_profile_avatar_valid(avatar: str | None) -> None:
    assert parse_profile({"handle": "alice", "avatar": avatar}, SUB).avatar == avatar


@pytest.mark.parametrize(
    "avatar",
    [
        "http://example.com/a.png",
        "https://",
        "example.com/a.png",
        "javascript:alert(1)",
        "https://e.com/" + "a" * (257 - len("https://e.com/")),
        "https://e.com/a b.png",
        "https://e.com/\x00",
        "https://e.com/\ud800",
        "https://e.com:99999/a.png",
        "https://e.com:port/a.png",
        42,
        {"url": "https://e.com"},
    ],
)
def test_profile_avatar_invalid(avatar: object) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_profile({"handle": "alice", "avatar": avatar}, SUB)
    assert field_names(caught.value) == ["avatar"]


def test_profile_errors_name_every_field() -> None:
    with pytest.raises(ProblemError) as caught:
        parse_profile({"handle": "x", "avatar": "ftp://e.com", "bio": "hi"}, SUB)
    assert sorted(field_names(caught.value)) == ["avatar", "bio", "handle"]


def test_profile_read_only_fields_ignored() -> None:
    body = {"handle": "alice", "id": SUB, "created_at": "x", "updated_at": "y"}
    assert parse_profile(body, SUB).handle == "alice"


def test_profile_other_id_forbidden() -> None:
    with pytest.raises(ProblemError) as caught:
        parse_profile({"handle": "alice", "id": "auth0|mallory"}, SUB)
    assert caught.value.status == 403


def test_post_valid() -> None:
    post = parse_post(valid_post(), SUB)
    assert post.data == {
        "url": "https://github.com/o/r/blob/abc/x.py#L1-L3",
        "start_line": 1,
        "end_line": 3,
    }


def test_post_own_author_accepted() -> None:
    assert parse_post(valid_post(author_id=SUB), SUB).content == "Look at this loop"


def test_post_other_author_forbidden() -> None:
    with pytest.raises(ProblemError) as caught:
        parse_post(valid_post(author_id="auth0|mallory"), SUB)
    assert caught.value.status == 403


def test_post_content_max_length() -> None:
    assert parse_post(valid_post(content="x" * MAX_CONTENT_CHARS), SUB).content


@pytest.mark.parametrize(
    "content", ["", "   \n\t", "x" * (MAX_CONTENT_CHARS + 1), 7, None, "nul\x00", "\udc00"]
)
def test_post_content_invalid(content: object) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_post(valid_post(content=content), SUB)
    assert field_names(caught.value) == ["content"]


@pytest.mark.parametrize("visibility", ["private", "", None, "PUBLIC"])
def test_post_visibility_invalid(visibility: object) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_post(valid_post(visibility=visibility), SUB)
    assert field_names(caught.value) == ["visibility"]


@pytest.mark.parametrize("post_type", ["permalink", "", None, 1])
def test_post_type_invalid(post_type: object) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_post(valid_post(type=post_type), SUB)
    assert field_names(caught.value) == ["type"]


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        (None, ["data"]),
        ([1, 2], ["data"]),
        ("https://e.com", ["data"]),
        ({}, ["data.url", "data.start_line", "data.end_line"]),
        ({"url": "http://e.com/x", "start_line": 1, "end_line": 1}, ["data.url"]),
        ({"url": "https://e.com/x", "start_line": 0, "end_line": 1}, ["data.start_line"]),
        ({"url": "https://e.com/x", "start_line": True, "end_line": 1}, ["data.start_line"]),
        ({"url": "https://e.com/x", "start_line": 1.5, "end_line": 2}, ["data.start_line"]),
        ({"url": "https://e.com/x", "start_line": "1", "end_line": 2}, ["data.start_line"]),
        ({"url": "https://e.com/x", "start_line": 5, "end_line": 4}, ["data.end_line"]),
        ({"url": "https://e.com/x", "start_line": 1, "end_line": 1001}, ["data.end_line"]),
        ({"url": "https://e.com/x", "start_line": 1, "end_line": 1_000_001}, ["data.end_line"]),
        ({"url": "https://e.com/x", "start_line": 1, "end_line": 2, "lang": "py"}, ["data.lang"]),
        ({"url": "https://e.com/" + "a" * 2048, "start_line": 1, "end_line": 2}, ["data.url"]),
    ],
)
def test_post_data_invalid(data: object, fields: list[str]) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_post(valid_post(data=data), SUB)
    assert field_names(caught.value) == fields


def test_post_data_range_limit_inclusive() -> None:
    data = {"url": "https://e.com/x", "start_line": 1, "end_line": 1000}
    assert parse_post(valid_post(data=data), SUB).data["end_line"] == 1000


def test_post_errors_name_every_field() -> None:
    body = {"content": "", "type": "x", "data": {}, "visibility": "all", "extra": 1}
    with pytest.raises(ProblemError) as caught:
        parse_post(body, SUB)
    assert sorted(field_names(caught.value)) == [
        "content",
        "data.end_line",
        "data.start_line",
        "data.url",
        "extra",
        "type",
        "visibility",
    ]


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [
        (None, None, (5, 0)),
        ("", "", (5, 0)),
        ("10", "20", (10, 20)),
        ("0", "-1", (1, 0)),
        ("-7", "0", (1, 0)),
        ("26", "10001", (25, 10000)),
        ("+3", "007", (3, 7)),
        ("9" * 100, "9" * 100, (25, 10000)),
        (" 4 ", None, (4, 0)),
    ],
)
def test_paging_clamped(limit: str | None, offset: str | None, expected: tuple[int, int]) -> None:
    assert parse_paging(limit, offset) == expected


@pytest.mark.parametrize(
    ("limit", "offset", "fields"),
    [
        ("abc", None, ["limit"]),
        ("1.5", None, ["limit"]),
        (None, "1e3", ["offset"]),
        ("0x10", "two", ["limit", "offset"]),
        ("٣", None, ["limit"]),  # an Arabic-Indic digit, which int() would accept
    ],
)
def test_paging_invalid(limit: str | None, offset: str | None, fields: list[str]) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_paging(limit, offset)
    assert caught.value.status == 400
    assert field_names(caught.value) == fields


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0123456789abcdef0123456789abcdef", True),
        ("0123456789ABCDEF0123456789ABCDEF", False),
        ("0123456789abcdef", False),
        ("0123456789abcdef0123456789abcdef0", False),
        ("../../etc/passwd", False),
        ("", False),
    ],
)
def test_post_id_form(value: str, expected: bool) -> None:
    assert is_post_id(value) is expected
