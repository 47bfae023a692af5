"""SQL for the `posts` table. Every statement is parameterised.

Post ids are 32 lowercase hex digits (128 random bits) made by the component. `data`
is stored as JSON text and parsed back into an object when read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from .db import Database, Row, utc_timestamp
from .validation import PostInput, ordered_post_data

_COLUMNS = "id, author_id, content, type, data, visibility, created_at, updated_at"


@dataclass(frozen=True)
class Post:
    """One row of `posts`; timestamps are UTC ISO-8601 text."""

    id: str
    author_id: str
    content: str
    type: str
    data: dict[str, object]
    visibility: str
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "author_id": self.author_id,
            "content": self.content,
            "type": self.type,
            "data": self.data,
            "visibility": self.visibility,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _from_row(row: Row) -> Post:
    data = json.loads(str(row["data"]))
    return Post(
        id=str(row["id"]),
        author_id=str(row["author_id"]),
        content=str(row["content"]),
        type=str(row["type"]),
        data=ordered_post_data(data) if isinstance(data, dict) else {},
        visibility=str(row["visibility"]),
        created_at=str(row["created_at"]),
        updated_at=str(row["updated_at"]),
    )


def _data_text(data: dict[str, object]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def insert(db: Database, post_id: str, author_id: str, post: PostInput, now: datetime) -> Post:
    """Insert a post; the author must have a profile (foreign key)."""
    stamp = utc_timestamp(now)
    row = Post(
        id=post_id,
        author_id=author_id,
        content=post.content,
        type=post.type,
        data=post.data,
        visibility=post.visibility,
        created_at=stamp,
        updated_at=stamp,
    )
    db.execute(
        f"INSERT INTO posts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            row.id,
            row.author_id,
            row.content,
            row.type,
            _data_text(row.data),
            row.visibility,
            stamp,
            stamp,
        ],
    )
    return row


def get_visible(db: Database, post_id: str, viewer_id: str) -> Post | None:
    """Return the post if `viewer_id` wrote it or it is public, else None."""
    rows = db.query(
        f"SELECT {_COLUMNS} FROM posts WHERE id = ? AND (author_id = ? OR visibility = ?)",
        [post_id, viewer_id, "public"],
    )
    return _from_row(rows[0]) if rows else None


def list_by_author(db: Database, author_id: str, limit: int, offset: int) -> list[Post]:
    """Return the author's posts, newest first, ties broken by id (descending)."""
    rows = db.query(
        f"SELECT {_COLUMNS} FROM posts WHERE author_id = ? "
        "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        [author_id, limit, offset],
    )
    return [_from_row(row) for row in rows]


def update(
    db: Database, post_id: str, author_id: str, post: PostInput, now: datetime
) -> Post | None:
    """Replace a post written by `author_id`; return None if there is no such post of theirs."""
    rows = db.query(
        "UPDATE posts SET content = ?, type = ?, data = ?, visibility = ?, updated_at = ? "
        f"WHERE id = ? AND author_id = ? RETURNING {_COLUMNS}",
        [
            post.content,
            post.type,
            _data_text(post.data),
            post.visibility,
            utc_timestamp(now),
            post_id,
            author_id,
        ],
    )
    return _from_row(rows[0]) if rows else None


def delete(db: Database, post_id: str, author_id: str) -> bool:
    """Delete a post written by `author_id`; return whether it existed."""
    rows = db.query(
        "DELETE FROM posts WHERE id = ? AND author_id = ? RETURNING id", [post_id, author_id]
    )
    return bool(rows)
