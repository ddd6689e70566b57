-- PostgreSQL variant of the SQLite migration of the same number; keep them in step.
-- The authorization code and device flows, browser sessions, remembered consent and
-- back-off counters for failed logins and user-code entries.

-- Authorization codes, stored only as SHA-256 hashes. A redemption records the tokens it
-- issued in the same transaction, so a replay can revoke them.
CREATE TABLE oauth_auth_codes (
    id TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    -- The redirect_uri parameter of the authorization request; NULL when it was omitted.
    redirect_uri TEXT,
    code_challenge TEXT,
    nonce TEXT,
    auth_time BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    used_at BIGINT,
    access_token_id TEXT,
    family_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Device authorization (RFC 8628). `status` is pending, approved, denied or issued.
CREATE TABLE oauth_device_codes (
    id TEXT PRIMARY KEY,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    user_id BIGINT,
    status TEXT NOT NULL,
    poll_interval BIGINT NOT NULL,
    last_polled_at BIGINT,
    auth_time BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Browser sessions. The cookie holds a random value; only its hash is stored. A session
-- without a user exists between the login form and a successful sign-in.
CREATE TABLE sesame_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT,
    csrf_token TEXT NOT NULL,
    auth_time BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sesame_sessions_user_id_index ON sesame_sessions (user_id);

-- Authorization requests waiting on the consent page, bound to the session that saw them.
CREATE TABLE sesame_auth_requests (
    id_hash TEXT PRIMARY KEY,
    session_hash TEXT NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    redirect_uri_given BOOLEAN NOT NULL,
    scopes TEXT NOT NULL,
    state TEXT,
    code_challenge TEXT,
    nonce TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Remembered consent: the scopes a user granted a client for one redirect URI.
CREATE TABLE sesame_consents (
    user_id BIGINT NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id, redirect_uri)
);

-- Failed attempts per key (such as a user name or an address) within a window; past a
-- threshold the key must wait before trying again.
CREATE TABLE sesame_attempts (
    attempt_key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);
