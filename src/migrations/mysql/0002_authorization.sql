-- MySQL and MariaDB variant of the SQLite migration of the same number; keep them in step.
-- Text columns are VARCHAR with a binary collation: comparisons are case- and
-- trailing-space-sensitive as on the other backends, and sqlx's Any driver reads VARCHAR
-- (it cannot read TEXT or TINYINT). Flags are SMALLINT 0 or 1 for the same reason.
-- CREATE ... IF NOT EXISTS makes a migration resumable, since MySQL commits each DDL
-- statement at once.
-- The authorization code and device flows, browser sessions, remembered consent and
-- back-off counters for failed logins and user-code entries.

-- Authorization codes, stored only as SHA-256 hashes. A redemption records the tokens it
-- issued in the same transaction, so a replay can revoke them.
CREATE TABLE IF NOT EXISTS oauth_auth_codes (
    id VARCHAR(64) PRIMARY KEY,
    code_hash VARCHAR(80) NOT NULL UNIQUE,
    user_id BIGINT NOT NULL,
    client_id VARCHAR(64) NOT NULL,
    scopes VARCHAR(2000) NOT NULL DEFAULT '[]',
    -- The redirect_uri parameter of the authorization request; NULL when it was omitted.
    redirect_uri VARCHAR(2000),
    code_challenge VARCHAR(128),
    nonce VARCHAR(512),
    auth_time BIGINT NOT NULL,
    revoked SMALLINT NOT NULL DEFAULT 0,
    used_at BIGINT,
    access_token_id VARCHAR(64),
    family_id VARCHAR(64),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Device authorization (RFC 8628). `status` is pending, approved, denied or issued.
CREATE TABLE IF NOT EXISTS oauth_device_codes (
    id VARCHAR(64) PRIMARY KEY,
    device_code_hash VARCHAR(80) NOT NULL UNIQUE,
    user_code VARCHAR(16) NOT NULL UNIQUE,
    client_id VARCHAR(64) NOT NULL,
    scopes VARCHAR(2000) NOT NULL DEFAULT '[]',
    user_id BIGINT,
    status VARCHAR(16) NOT NULL,
    poll_interval BIGINT NOT NULL,
    last_polled_at BIGINT,
    auth_time BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Browser sessions. The cookie holds a random value; only its hash is stored. A session
-- without a user exists between the login form and a successful sign-in.
CREATE TABLE IF NOT EXISTS sesame_sessions (
    id_hash VARCHAR(80) PRIMARY KEY,
    user_id BIGINT,
    csrf_token VARCHAR(64) NOT NULL,
    auth_time BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX IF NOT EXISTS sesame_sessions_user_id_index ON sesame_sessions (user_id);

-- Authorization requests waiting on the consent page, bound to the session that saw them.
CREATE TABLE IF NOT EXISTS sesame_auth_requests (
    id_hash VARCHAR(80) PRIMARY KEY,
    session_hash VARCHAR(80) NOT NULL,
    client_id VARCHAR(64) NOT NULL,
    redirect_uri VARCHAR(2000) NOT NULL,
    redirect_uri_given SMALLINT NOT NULL,
    scopes VARCHAR(2000) NOT NULL,
    state VARCHAR(8192),
    code_challenge VARCHAR(128),
    nonce VARCHAR(512),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Remembered consent: the scopes a user granted a client for one redirect URI.
CREATE TABLE IF NOT EXISTS sesame_consents (
    user_id BIGINT NOT NULL,
    client_id VARCHAR(64) NOT NULL,
    redirect_uri VARCHAR(2000) NOT NULL,
    scopes VARCHAR(2000) NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id, redirect_uri(255))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Failed attempts per key (such as a user name or an address) within a window; past a
-- threshold the key must wait before trying again.
CREATE TABLE IF NOT EXISTS sesame_attempts (
    attempt_key VARCHAR(400) PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
