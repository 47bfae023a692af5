"""SQL for the `profiles` table. Every statement is parameterised.

A profile's `id` is the subject (`sub`) of its owner's token. Handles are unique
case-insensitively: the schema has a unique index on `lower(handle)`, and lookups
compare `lower(handle)` too (handles are ASCII, so `lower` agrees in both databases).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .db import Database, Row, utc_timestamp

_COLUMNS = "id, handle, avatar, created_at, updated_at"


@dataclass(frozen=True)
class Profile:
    """One row of `profiles`; timestamps are UTC ISO-8601 text."""

    id: str
    handle: str
    avatar: str | None
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "handle": self.handle,
            "avatar": self.avatar,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _from_row(row: Row) -> Profile:
    avatar = row["avatar"]
    return Profile(
        id=str(row["id"]),
        handle=str(row["handle"]),
        avatar=str(avatar) if avatar is not None else None,
        created_at=str(row["created_at"]),
        updated_at=str(row["updated_at"]),
    )


def get_by_id(db: Database, profile_id: str) -> Profile | None:
    rows = db.query(f"SELECT {_COLUMNS} FROM profiles WHERE id = ?", [profile_id])
    return _from_row(rows[0]) if rows else None


def get_by_handle(db: Database, handle: str) -> Profile | None:
    """Find a profile by handle, ignoring case."""
    rows = db.query(f"SELECT {_COLUMNS} FROM profiles WHERE lower(handle) = lower(?)", [handle])
    return _from_row(rows[0]) if rows else None


def insert(
    db: Database, profile_id: str, handle: str, avatar: str | None, now: datetime
) -> Profile:
    """Insert a profile; a taken id or handle raises a unique-violation `DatabaseError`."""
    stamp = utc_timestamp(now)
    db.execute(
        f"INSERT INTO profiles ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
        [profile_id, handle, avatar, stamp, stamp],
    )
    return Profile(profile_id, handle, avatar, stamp, stamp)


def update(
    db: Database, profile_id: str, handle: str, avatar: str | None, now: datetime
) -> Profile | None:
    """Replace handle and avatar; return the new row, or None if there is no such profile.

    A handle taken by another profile raises a unique-violation `DatabaseError`.
    """
    rows = db.query(
        f"UPDATE profiles SET handle = ?, avatar = ?, updated_at = ? WHERE id = ? "
        f"RETURNING {_COLUMNS}",
        [handle, avatar, utc_timestamp(now), profile_id],
    )
    return _from_row(rows[0]) if rows else None


def delete(db: Database, profile_id: str) -> bool:
    """Delete a profile and its posts; return whether the profile existed.

    The posts are deleted explicitly first, because SQLite cascades only on connections
    that enabled foreign keys, which a host may not keep between statements.
    """
    db.execute("DELETE FROM posts WHERE author_id = ?", [profile_id])
    rows = db.query("DELETE FROM profiles WHERE id = ? RETURNING id", [profile_id])
    return bool(rows)
