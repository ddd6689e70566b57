-- MySQL and MariaDB variant of the SQLite migration of the same number; keep them in step.
-- Text columns are VARCHAR with a binary collation: comparisons are case- and
-- trailing-space-sensitive as on the other backends, and sqlx's Any driver reads VARCHAR
-- (it cannot read TEXT or TINYINT). Flags are SMALLINT 0 or 1 for the same reason.
-- CREATE ... IF NOT EXISTS makes a migration resumable, since MySQL commits each DDL
-- statement at once.
-- Sesame's schema. Table and column names follow Laravel Passport where the meaning is the same.
-- Times are UTC seconds since the Unix epoch, computed by the application. Like Passport's
-- schema, token tables declare no foreign keys: deleting rows by hand never cascades.

CREATE TABLE IF NOT EXISTS users (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL UNIQUE,
    email VARCHAR(320),
    password VARCHAR(255),
    disabled SMALLINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS oauth_clients (
    id VARCHAR(64) PRIMARY KEY,
    user_id BIGINT,
    name VARCHAR(255) NOT NULL,
    -- 'sha256:<hex>' (or a bcrypt hash moved from Passport); NULL for public clients.
    secret VARCHAR(255),
    provider VARCHAR(255),
    -- JSON arrays of strings.
    redirect_uris VARCHAR(8000) NOT NULL DEFAULT '[]',
    grant_types VARCHAR(500) NOT NULL DEFAULT '[]',
    -- JSON array of the scopes the client may request; NULL allows every declared scope.
    scopes VARCHAR(2000),
    personal_access_client SMALLINT NOT NULL DEFAULT 0,
    password_client SMALLINT NOT NULL DEFAULT 0,
    first_party SMALLINT NOT NULL DEFAULT 0,
    require_pkce SMALLINT NOT NULL DEFAULT 1,
    revoked SMALLINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per issued access token; `id` is the token's `jti`. Personal access tokens are the
-- rows with a `name`, as in Passport.
CREATE TABLE IF NOT EXISTS oauth_access_tokens (
    id VARCHAR(64) PRIMARY KEY,
    user_id BIGINT,
    client_id VARCHAR(64) NOT NULL,
    name VARCHAR(255),
    scopes VARCHAR(2000) NOT NULL DEFAULT '[]',
    revoked SMALLINT NOT NULL DEFAULT 0,
    kid VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX IF NOT EXISTS oauth_access_tokens_user_id_index ON oauth_access_tokens (user_id);

-- Refresh tokens are stored only as SHA-256 hashes. Every rotation of one grant shares a
-- `family_id`, so reuse of a spent token can revoke the whole family.
CREATE TABLE IF NOT EXISTS oauth_refresh_tokens (
    id VARCHAR(64) PRIMARY KEY,
    token_hash VARCHAR(80) NOT NULL UNIQUE,
    access_token_id VARCHAR(64) NOT NULL,
    family_id VARCHAR(64) NOT NULL,
    client_id VARCHAR(64) NOT NULL,
    user_id BIGINT,
    scopes VARCHAR(2000) NOT NULL DEFAULT '[]',
    revoked SMALLINT NOT NULL DEFAULT 0,
    used_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX IF NOT EXISTS oauth_refresh_tokens_family_id_index ON oauth_refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS oauth_refresh_tokens_access_token_id_index ON oauth_refresh_tokens (access_token_id);

-- Every public key that has signed or will sign tokens. `state` is next, current, previous
-- or retired; JWKS and verification use next, current and previous.
CREATE TABLE IF NOT EXISTS sesame_keys (
    kid VARCHAR(64) PRIMARY KEY,
    alg VARCHAR(16) NOT NULL,
    jwk VARCHAR(4000) NOT NULL,
    state VARCHAR(8192) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Installation state: `installed_at`, and the ids of the current personal access client and
-- password client under unique names.
CREATE TABLE IF NOT EXISTS sesame_meta (
    name VARCHAR(255) PRIMARY KEY,
    value VARCHAR(2000) NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
