-- Migration 2 of ../sqlite, in PostgreSQL's words: disabled users, and the identity audit trail (`seq` gives rows
-- the insertion order SQLite's `rowid` gives).
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

CREATE TABLE audit (
    at         BIGINT NOT NULL,
    event      TEXT NOT NULL,
    way        TEXT,
    chat_id    TEXT,
    user_id    TEXT,
    jti        TEXT,
    expires_at BIGINT,
    address    TEXT,
    dropped    BIGINT,
    seq        BIGINT GENERATED ALWAYS AS IDENTITY
);
