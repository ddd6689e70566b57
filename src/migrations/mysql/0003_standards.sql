-- MySQL and MariaDB variant of the SQLite migration of the same number; keep them in step.
-- Text columns are VARCHAR with a binary collation: comparisons are case- and
-- trailing-space-sensitive as on the other backends, and sqlx's Any driver reads VARCHAR
-- (it cannot read TEXT or TINYINT). Flags are SMALLINT 0 or 1 for the same reason.
-- CREATE ... IF NOT EXISTS makes a migration resumable, since MySQL commits each DDL
-- statement at once.
-- Revocation, introspection, key rotation and purging.

-- The audience of a resource server: a confidential client that may introspect access tokens
-- whose `aud` names this value. NULL for every other client.
ALTER TABLE oauth_clients ADD COLUMN IF NOT EXISTS audience VARCHAR(2000);
CREATE INDEX IF NOT EXISTS oauth_clients_user_id_index ON oauth_clients (user_id);

-- For a `next` key made by a rotation, the kid of the current key it takes over from; that key
-- becomes `previous` when this one becomes current. `updated_at` is when the state last changed.
ALTER TABLE sesame_keys ADD COLUMN IF NOT EXISTS replaces VARCHAR(64);

-- When a refresh token was revoked (NULL for spent, live or older rows), so that `purge --hours`
-- can keep recent revocations.
ALTER TABLE oauth_refresh_tokens ADD COLUMN IF NOT EXISTS revoked_at BIGINT;

-- `purge --expired` and the check that no live token still names a key.
CREATE INDEX IF NOT EXISTS oauth_access_tokens_expires_at_index ON oauth_access_tokens (expires_at);
