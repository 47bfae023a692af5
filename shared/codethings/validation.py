"""Input rules for profiles, posts and paging.

Each `parse_*` function checks every field before it raises, so one 400 response names
all invalid fields: `ProblemError` with `errors: [{"field", "message"}, ...]`. Nested
fields are named with dots, for example `data.start_line`.

Limits (also stated in docs/openapi.yaml):
- handle: 3-32 characters of `A-Z a-z 0-9 _ -`, not a reserved word (compared
  case-insensitively), because a handle is a path segment beside route words like `me`;
- avatar: absent, null, or an `https://` URL of at most 256 characters;
- post content: a string of 1-10,000 characters that is not only whitespace;
- post type: `permalink-range`; visibility: `public` or `followers`;
- post data: `{"url", "start_line", "end_line"}` where `url` is an `https://` URL of at
  most 2,048 characters, `1 <= start_line <= end_line <= 1,000,000`, and the range
  spans at most 1,000 lines;
- paging: `limit` defaults to 5 and is clamped to 1-25, `offset` defaults to 0 and is
  clamped to 0-10,000; a value that is not an integer is rejected.

No string may contain NUL (PostgreSQL `text` cannot store it) or an unpaired surrogate
(it cannot be encoded as UTF-8).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .problems import ProblemError

HANDLE_PATTERN = re.compile(r"[A-Za-z0-9_-]{3,32}")
# Words that are, or may become, route segments under /api/profile/.
RESERVED_HANDLES = frozenset({"me", "new", "self", "admin", "api", "profile", "profiles"})
MAX_AVATAR_CHARS = 256

MAX_CONTENT_CHARS = 10_000
POST_TYPES = ("permalink-range",)
VISIBILITIES = ("public", "followers")
# The keys of a permalink-range `data` object, in the order responses list them.
POST_DATA_FIELDS = ("url", "start_line", "end_line")
MAX_PERMALINK_URL_CHARS = 2_048
MAX_LINE_NUMBER = 1_000_000
MAX_RANGE_LINES = 1_000

DEFAULT_LIMIT = 5
MIN_LIMIT, MAX_LIMIT = 1, 25
MAX_OFFSET = 10_000

POST_ID_PATTERN = re.compile(r"[0-9a-f]{32}")

# Fields a client may send back unchanged after reading a resource. They are ignored,
# except the owner field, which must match the caller.
_PROFILE_READ_ONLY = frozenset({"id", "created_at", "updated_at"})
_POST_READ_ONLY = frozenset({"id", "author_id", "created_at", "updated_at"})


@dataclass(frozen=True)
class FieldError:
    """One invalid field and what is wrong with it."""

    field: str
    message: str


@dataclass(frozen=True)
class ProfileInput:
    """A validated profile body."""

    handle: str
    avatar: str | None


@dataclass(frozen=True)
class PostInput:
    """A validated post body; `data` is the permalink range object."""

    content: str
    type: str
    data: dict[str, object]
    visibility: str


def validation_problem(errors: list[FieldError]) -> ProblemError:
    """Build the 400 problem that names every invalid field."""
    names = ", ".join(error.field for error in errors)
    return ProblemError(
        400,
        "Invalid request body",
        f"{len(errors)} field(s) are invalid: {names}. See `errors` for each rule.",
        errors=[{"field": error.field, "message": error.message} for error in errors],
    )


def parse_profile(body: Mapping[str, object], sub: str) -> ProfileInput:
    """Validate a profile body for the caller `sub`; raise 403 or 400 `ProblemError`."""
    _check_owner(body, "id", sub)
    errors = _unknown_fields(body, {"handle", "avatar"} | _PROFILE_READ_ONLY)

    handle = body.get("handle")
    handle_error = check_handle(handle)
    if handle_error:
        errors.append(FieldError("handle", handle_error))

    avatar = body.get("avatar")
    avatar_error = _check_avatar(avatar)
    if avatar_error:
        errors.append(FieldError("avatar", avatar_error))

    if errors:
        raise validation_problem(errors)
    assert isinstance(handle, str)
    return ProfileInput(handle=handle, avatar=avatar if isinstance(avatar, str) else None)


def check_handle(handle: object) -> str | None:
    """Return what is wrong with `handle`, or None if it is a valid handle."""
    if handle is None:
        return "is required"
    if not isinstance(handle, str):
        return "must be a string"
    if not HANDLE_PATTERN.fullmatch(handle):
        return "must be 3-32 characters of letters A-Z or a-z, digits, '_' or '-'"
    if handle.lower() in RESERVED_HANDLES:
        return f"is reserved; choose a handle other than {', '.join(sorted(RESERVED_HANDLES))}"
    return None


def _check_avatar(avatar: object) -> str | None:
    if avatar is None:
        return None
    if not isinstance(avatar, str):
        return "must be a string or null"
    if len(avatar) > MAX_AVATAR_CHARS:
        return f"must be at most {MAX_AVATAR_CHARS} characters, got {len(avatar)}"
    return _check_https_url(avatar)


def parse_post(body: Mapping[str, object], sub: str) -> PostInput:
    """Validate a post body for the caller `sub`; raise 403 or 400 `ProblemError`."""
    _check_owner(body, "author_id", sub)
    errors = _unknown_fields(body, {"content", "type", "data", "visibility"} | _POST_READ_ONLY)

    content = body.get("content")
    content_error = _check_content(content)
    if content_error:
        errors.append(FieldError("content", content_error))

    post_type = body.get("type")
    if post_type not in POST_TYPES:
        errors.append(FieldError("type", f"must be one of: {', '.join(POST_TYPES)}"))

    visibility = body.get("visibility")
    if visibility not in VISIBILITIES:
        errors.append(FieldError("visibility", f"must be one of: {', '.join(VISIBILITIES)}"))

    data = body.get("data")
    errors.extend(_check_permalink_range(data))

    if errors:
        raise validation_problem(errors)
    assert isinstance(content, str) and isinstance(post_type, str)
    assert isinstance(visibility, str) and isinstance(data, dict)
    return PostInput(
        content=content, type=post_type, data=ordered_post_data(data), visibility=visibility
    )


def ordered_post_data(data: Mapping[str, object]) -> dict[str, object]:
    """Return a copy of post `data` with its keys in `POST_DATA_FIELDS` order, any others last.

    Responses list the keys in one order whatever order the request or the database used
    (PostgreSQL's jsonb and the stored JSON text each reorder them).
    """
    ordered = {name: data[name] for name in POST_DATA_FIELDS if name in data}
    ordered.update({name: value for name, value in data.items() if name not in ordered})
    return ordered


def _check_content(content: object) -> str | None:
    if content is None:
        return "is required"
    if not isinstance(content, str):
        return "must be a string"
    if not content.strip():
        return "must not be empty or only whitespace"
    if len(content) > MAX_CONTENT_CHARS:
        return f"must be at most {MAX_CONTENT_CHARS} characters, got {len(content)}"
    return _check_storable(content)


def _check_permalink_range(data: object) -> list[FieldError]:
    if data is None:
        return [FieldError("data", "is required")]
    if not isinstance(data, dict):
        return [FieldError("data", "must be an object with url, start_line and end_line")]

    errors = [
        FieldError(f"data.{name}", "is not a known field; allowed: url, start_line, end_line")
        for name in sorted(set(data) - set(POST_DATA_FIELDS))
    ]

    url = data.get("url")
    if url is None:
        errors.append(FieldError("data.url", "is required"))
    elif not isinstance(url, str):
        errors.append(FieldError("data.url", "must be a string"))
    elif len(url) > MAX_PERMALINK_URL_CHARS:
        errors.append(
            FieldError("data.url", f"must be at most {MAX_PERMALINK_URL_CHARS} characters")
        )
    else:
        url_error = _check_https_url(url)
        if url_error:
            errors.append(FieldError("data.url", url_error))

    start = data.get("start_line")
    end = data.get("end_line")
    start_error = _check_line_number(start)
    end_error = _check_line_number(end)
    if start_error:
        errors.append(FieldError("data.start_line", start_error))
    if end_error:
        errors.append(FieldError("data.end_line", end_error))
    if not start_error and not end_error:
        assert isinstance(start, int) and isinstance(end, int)
        if end < start:
            errors.append(FieldError("data.end_line", f"must be >= start_line ({start})"))
        elif end - start + 1 > MAX_RANGE_LINES:
            errors.append(
                FieldError("data.end_line", f"the range may span at most {MAX_RANGE_LINES} lines")
            )
    return errors


def _check_line_number(value: object) -> str | None:
    if value is None:
        return "is required"
    # bool is a subclass of int in Python, but `true` is not a line number.
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer"
    if not 1 <= value <= MAX_LINE_NUMBER:
        return f"must be between 1 and {MAX_LINE_NUMBER}"
    return None


def _check_https_url(url: str) -> str | None:
    storable_error = _check_storable(url)
    if storable_error:
        return storable_error
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        # urlsplit checks the port only when it is read.
        parts.port  # noqa: B018
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if parts.scheme != "https" or not parts.hostname:
        return "must be an absolute https:// URL"
    return None


def _check_storable(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain unpaired surrogates"
    return None


def _unknown_fields(
    body: Mapping[str, object], allowed: set[str] | frozenset[str]
) -> list[FieldError]:
    return [
        FieldError(name, f"is not a known field; allowed: {', '.join(sorted(allowed))}")
        for name in sorted(set(body) - set(allowed))
    ]


def _check_owner(body: Mapping[str, object], field: str, sub: str) -> None:
    """Raise 403 when the body names an owner other than the caller."""
    if field in body and body[field] != sub:
        raise ProblemError(
            403,
            "Forbidden",
            f"`{field}` must be the authenticated caller's subject; omit it or send your own.",
        )


def parse_paging(limit: str | None, offset: str | None) -> tuple[int, int]:
    """Return `(limit, offset)` from raw query values, clamped; raise 400 for non-integers."""
    errors: list[FieldError] = []
    limit_value = _parse_integer("limit", limit, DEFAULT_LIMIT, errors)
    offset_value = _parse_integer("offset", offset, 0, errors)
    if errors:
        names = ", ".join(error.field for error in errors)
        raise ProblemError(
            400,
            "Invalid query parameter",
            f"Query parameter(s) {names} must be integers.",
            errors=[{"field": error.field, "message": error.message} for error in errors],
        )
    return (
        min(max(limit_value, MIN_LIMIT), MAX_LIMIT),
        min(max(offset_value, 0), MAX_OFFSET),
    )


def _parse_integer(name: str, raw: str | None, default: int, errors: list[FieldError]) -> int:
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        errors.append(FieldError(name, f"must be an integer, got {raw[:40]!r}"))
        return default
    # Longer digit strings only ever clamp, so they skip int() to keep its cost bounded.
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 30:
        return sign * 10**30
    return int(text)


def is_post_id(value: str) -> bool:
    """Return whether `value` has the form of a post id (32 lowercase hex digits)."""
    return POST_ID_PATTERN.fullmatch(value) is not None
