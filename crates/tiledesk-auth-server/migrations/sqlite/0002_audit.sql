-- A user can be disabled (`tiledesk-auth users disable`): no token is minted for them while it is set.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- The identity audit trail: one row per minted token (`minted`), per user disabled or enabled, and, when the
-- writer's queue was full, how many records were lost (`dropped`). Times are Unix seconds. No index: rows come in
-- time order and are written at the rate tokens are minted, where an index would double the cost of each; reading
-- (`tiledesk-auth audit`) and the hourly pruning scan the table.
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
