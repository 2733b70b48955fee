-- A user can be disabled (`tiledesk-auth users disable`): no token is minted for them while it is set.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- The identity audit trail: one row per minted token (`minted`), per user disabled or enabled, and, when the
-- writer's queue was full, how many records were lost (`dropped`). Times are Unix seconds.
CREATE TABLE audit (
    at         INTEGER NOT NULL,
    event      TEXT NOT NULL,
    way        TEXT,
    chat_id    TEXT,
    user_id    TEXT,
    jti        TEXT,
    expires_at INTEGER,
    address    TEXT,
    dropped    INTEGER
) STRICT;
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_user_at ON audit (user_id, at);
