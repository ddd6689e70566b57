-- Sesame's schema. Table and column names follow Laravel Passport where the meaning is the same.
-- Times are UTC seconds since the Unix epoch, computed by the application. Like Passport's
-- schema, token tables declare no foreign keys: deleting rows by hand never cascades.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    email TEXT,
    password TEXT,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE oauth_clients (
    id TEXT PRIMARY KEY,
    user_id INTEGER,
    name TEXT NOT NULL,
    -- 'sha256:<hex>' (or a bcrypt hash moved from Passport); NULL for public clients.
    secret TEXT,
    provider TEXT,
    -- JSON arrays of strings.
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    grant_types TEXT NOT NULL DEFAULT '[]',
    -- JSON array of the scopes the client may request; NULL allows every declared scope.
    scopes TEXT,
    personal_access_client INTEGER NOT NULL DEFAULT 0,
    password_client INTEGER NOT NULL DEFAULT 0,
    first_party INTEGER NOT NULL DEFAULT 0,
    require_pkce INTEGER NOT NULL DEFAULT 1,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One row per issued access token; `id` is the token's `jti`. Personal access tokens are the
-- rows with a `name`, as in Passport.
CREATE TABLE oauth_access_tokens (
    id TEXT PRIMARY KEY,
    user_id INTEGER,
    client_id TEXT NOT NULL,
    name TEXT,
    scopes TEXT NOT NULL DEFAULT '[]',
    revoked INTEGER NOT NULL DEFAULT 0,
    kid TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX oauth_access_tokens_user_id_index ON oauth_access_tokens (user_id);

-- Refresh tokens are stored only as SHA-256 hashes. Every rotation of one grant shares a
-- `family_id`, so reuse of a spent token can revoke the whole family.
CREATE TABLE oauth_refresh_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    access_token_id TEXT NOT NULL,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id INTEGER,
    scopes TEXT NOT NULL DEFAULT '[]',
    revoked INTEGER NOT NULL DEFAULT 0,
    used_at INTEGER,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX oauth_refresh_tokens_family_id_index ON oauth_refresh_tokens (family_id);
CREATE INDEX oauth_refresh_tokens_access_token_id_index ON oauth_refresh_tokens (access_token_id);

-- Every public key that has signed or will sign tokens. `state` is next, current, previous
-- or retired; JWKS and verification use next, current and previous.
CREATE TABLE sesame_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    jwk TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Installation state: `installed_at`, and the ids of the current personal access client and
-- password client under unique names.
CREATE TABLE sesame_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
