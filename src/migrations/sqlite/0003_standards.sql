-- Revocation, introspection, key rotation and purging.

-- The audience of a resource server: a confidential client that may introspect access tokens
-- whose `aud` names this value. NULL for every other client.
ALTER TABLE oauth_clients ADD COLUMN audience TEXT;
CREATE INDEX oauth_clients_user_id_index ON oauth_clients (user_id);

-- For a `next` key made by a rotation, the kid of the current key it takes over from; that key
-- becomes `previous` when this one becomes current. `updated_at` is when the state last changed.
ALTER TABLE sesame_keys ADD COLUMN replaces TEXT;

-- When a refresh token was revoked (NULL for spent, live or older rows), so that `purge --hours`
-- can keep recent revocations.
ALTER TABLE oauth_refresh_tokens ADD COLUMN revoked_at INTEGER;

-- `purge --expired` and the check that no live token still names a key.
CREATE INDEX oauth_access_tokens_expires_at_index ON oauth_access_tokens (expires_at);
