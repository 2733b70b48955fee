-- The site's users who sign in through POST /auth.
-- `id` is stable for life; `email_key` (lower-cased) makes emails unique case-insensitively.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL UNIQUE,
    firstname     TEXT,
    lastname      TEXT,
    attributes    TEXT NOT NULL DEFAULT '{}',
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
