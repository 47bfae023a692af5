-- Code Things schema for SQLite (Spin's `default` database).
-- Apply at start-up: `spin up --sqlite @db/sqlite.sql` or `spinlocal up --sqlite @db/sqlite.sql`.
-- Every statement is idempotent, so applying it on each start is safe.
--
-- Timestamps are UTC ISO-8601 text with microseconds (`2026-12-04T20:08:34.123456Z`),
-- written by the component. The fixed width makes text order chronological order.
-- The posts.author_id cascade works only on connections that run
-- `PRAGMA foreign_keys = ON`; the component does so and also deletes a profile's posts
-- explicitly, so the cascade is not needed for correctness.

CREATE TABLE IF NOT EXISTS profiles (
    id TEXT PRIMARY KEY,            -- the token's `sub`
    handle TEXT NOT NULL,
    avatar TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Handles are ASCII, so lower() makes the index case-insensitive.
CREATE UNIQUE INDEX IF NOT EXISTS profiles_handle_lower ON profiles (lower(handle));

CREATE TABLE IF NOT EXISTS posts (
    id TEXT PRIMARY KEY,            -- 32 lowercase hex digits, random, made by the component
    author_id TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,             -- a JSON object, validated by the component
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'followers')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Serves "the caller's posts, newest first, ties broken by id".
CREATE INDEX IF NOT EXISTS posts_author_created ON posts (author_id, created_at DESC, id DESC);
