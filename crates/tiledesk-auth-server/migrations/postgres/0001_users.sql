-- The site's users who sign in through POST /auth: migration 1 of ../sqlite, in PostgreSQL's words.
-- Same columns, types and constraints (a test compares the two schemas); the differences are the dialect's:
-- BIGINT for SQLite's 64-bit INTEGER, and `seq` giving rows the insertion order SQLite's `rowid` gives.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL UNIQUE,
    firstname     TEXT,
    lastname      TEXT,
    attributes    TEXT NOT NULL DEFAULT '{}',
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    seq           BIGINT GENERATED ALWAYS AS IDENTITY
);
