-- Code Things schema for PostgreSQL. Apply with `python db/apply.py postgres://...`.
-- Every statement is idempotent, so applying it again is safe.
--
-- The components reach PostgreSQL through `fermyon:spin/postgres@2.0.0` (the interface
-- spin-sdk 3.4.1 uses). It sends string parameters as `text` and returns values of types
-- such as `timestamptz` and `jsonb` as `unsupported`, so those columns are `text` here:
-- timestamps are UTC ISO-8601 text with microseconds (`2026-12-04T20:08:34.123456Z`),
-- whose fixed width makes text order chronological order, and `data` holds a JSON
-- object that the component validates. The CHECK constraints keep other writers honest.

CREATE TABLE IF NOT EXISTS profiles (
    id text PRIMARY KEY,            -- the token's `sub`
    handle text NOT NULL,
    avatar text,
    created_at text NOT NULL,
    updated_at text NOT NULL
);

-- Handles are ASCII, so lower() makes the index case-insensitive.
CREATE UNIQUE INDEX IF NOT EXISTS profiles_handle_lower ON profiles (lower(handle));

CREATE TABLE IF NOT EXISTS posts (
    id text PRIMARY KEY,            -- 32 lowercase hex digits, random, made by the component
    author_id text NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    content text NOT NULL,
    type text NOT NULL,
    data text NOT NULL CHECK (jsonb_typeof(data::jsonb) = 'object'),
    visibility text NOT NULL CHECK (visibility IN ('public', 'followers')),
    created_at text NOT NULL,
    updated_at text NOT NULL
);

-- Serves "the caller's posts, newest first, ties broken by id".
CREATE INDEX IF NOT EXISTS posts_author_created ON posts (author_id, created_at DESC, id DESC);
