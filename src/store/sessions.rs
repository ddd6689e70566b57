//! Browser sessions, pending authorization requests, remembered consent and attempt
//! counters.

use sqlx::Row as _;

use super::{Backend, Store, json_list, parse_list};
use crate::error::Result;

/// A stored session. `Debug` never shows the CSRF token.
#[derive(Clone)]
pub struct SessionRecord {
    /// Hash of the cookie value.
    pub id_hash: String,
    /// The signed-in user, `None` before sign-in.
    pub user_id: Option<i64>,
    /// The anti-CSRF token forms must echo.
    pub csrf_token: String,
    /// When the user signed in.
    pub auth_time: Option<i64>,
    /// Expiry.
    pub expires_at: i64,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("user_id", &self.user_id)
            .field("auth_time", &self.auth_time)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An authorization request waiting for the user's decision.
#[derive(Clone, Debug)]
pub struct AuthRequestRecord {
    /// Hash of the request id the consent form carries.
    pub id_hash: String,
    /// The session that saw the consent page.
    pub session_hash: String,
    /// The client.
    pub client_id: String,
    /// The redirect URI the response goes to.
    pub redirect_uri: String,
    /// Whether the request named the redirect URI (the token request must then repeat it).
    pub redirect_uri_given: bool,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// The client's `state`.
    pub state: Option<String>,
    /// The PKCE challenge.
    pub code_challenge: Option<String>,
    /// The OpenID Connect nonce.
    pub nonce: Option<String>,
    /// Expiry.
    pub expires_at: i64,
}

impl Store {
    /// Inserts a session.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn insert_session(&self, session: &SessionRecord, now: i64) -> Result<()> {
        sqlx::query(&self.sql(
            "INSERT INTO sesame_sessions (id_hash, user_id, csrf_token, auth_time, created_at, \
             expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(&session.id_hash)
        .bind(session.user_id)
        .bind(&session.csrf_token)
        .bind(session.auth_time)
        .bind(now)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Finds an unexpired session by the hash of its cookie value.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(&self.sql(
            "SELECT id_hash, user_id, csrf_token, auth_time, expires_at FROM sesame_sessions \
             WHERE id_hash = ? AND expires_at > ?",
        ))
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRecord {
            id_hash: row.try_get("id_hash")?,
            user_id: row.try_get("user_id")?,
            csrf_token: row.try_get("csrf_token")?,
            auth_time: row.try_get("auth_time")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Deletes a session.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query(&self.sql("DELETE FROM sesame_sessions WHERE id_hash = ?"))
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        sqlx::query(&self.sql("DELETE FROM sesame_auth_requests WHERE session_hash = ?"))
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Inserts a pending authorization request.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn insert_auth_request(&self, request: &AuthRequestRecord, now: i64) -> Result<()> {
        sqlx::query(&self.sql(
            "INSERT INTO sesame_auth_requests (id_hash, session_hash, client_id, redirect_uri, \
             redirect_uri_given, scopes, state, code_challenge, nonce, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(&request.id_hash)
        .bind(&request.session_hash)
        .bind(&request.client_id)
        .bind(&request.redirect_uri)
        .bind(request.redirect_uri_given)
        .bind(json_list(&request.scopes))
        .bind(request.state.as_deref())
        .bind(request.code_challenge.as_deref())
        .bind(request.nonce.as_deref())
        .bind(now)
        .bind(request.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes and returns a pending authorization request of `session_hash`, so a decision
    /// is made at most once.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn take_auth_request(
        &self,
        id_hash: &str,
        session_hash: &str,
        now: i64,
    ) -> Result<Option<AuthRequestRecord>> {
        let mut transaction = self.begin_write().await?;
        let row = sqlx::query(&self.sql(
            "SELECT id_hash, session_hash, client_id, redirect_uri, redirect_uri_given, scopes, \
             state, code_challenge, nonce, expires_at FROM sesame_auth_requests \
             WHERE id_hash = ? AND session_hash = ? AND expires_at > ?",
        ))
        .bind(id_hash)
        .bind(session_hash)
        .bind(now)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let deleted = sqlx::query(&self.sql("DELETE FROM sesame_auth_requests WHERE id_hash = ?"))
            .bind(id_hash)
            .execute(&mut *transaction)
            .await?;
        if deleted.rows_affected() != 1 {
            return Ok(None);
        }
        let record = AuthRequestRecord {
            id_hash: row.try_get("id_hash")?,
            session_hash: row.try_get("session_hash")?,
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            redirect_uri_given: super::flag(&row, "redirect_uri_given")?,
            scopes: parse_list(&row.try_get::<String, _>("scopes")?),
            state: row.try_get("state")?,
            code_challenge: row.try_get("code_challenge")?,
            nonce: row.try_get("nonce")?,
            expires_at: row.try_get("expires_at")?,
        };
        transaction.commit().await?;
        Ok(Some(record))
    }

    /// Returns the scopes a user granted a client for a redirect URI, if any.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn consent(
        &self,
        user_id: i64,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<Option<Vec<String>>> {
        let row = sqlx::query(&self.sql(
            "SELECT scopes FROM sesame_consents WHERE user_id = ? AND client_id = ? AND redirect_uri = ?",
        ))
        .bind(user_id)
        .bind(client_id)
        .bind(redirect_uri)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|row| row.try_get::<String, _>("scopes"))
            .transpose()?
            .map(|s| parse_list(&s)))
    }

    /// Records (or replaces) the scopes a user granted a client for a redirect URI.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn save_consent(
        &self,
        user_id: i64,
        client_id: &str,
        redirect_uri: &str,
        scopes: &[String],
        now: i64,
    ) -> Result<()> {
        let query = match self.backend {
            // The MySQL key holds only the first 255 characters of the redirect URI, so a URI
            // sharing them replaces the row whole. Updating only the scopes would leave them
            // remembered for the other URI.
            Backend::MySql => {
                "INSERT INTO sesame_consents (user_id, client_id, redirect_uri, scopes, created_at) \
                 VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
                 redirect_uri = VALUES(redirect_uri), scopes = VALUES(scopes)"
            }
            _ => {
                "INSERT INTO sesame_consents (user_id, client_id, redirect_uri, scopes, created_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, client_id, redirect_uri) \
                 DO UPDATE SET scopes = excluded.scopes"
            }
        };
        sqlx::query(&self.sql(query))
            .bind(user_id)
            .bind(client_id)
            .bind(redirect_uri)
            .bind(json_list(scopes))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Returns until when `key` must wait, if it is blocked at `now`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn attempt_blocked_until(&self, key: &str, now: i64) -> Result<Option<i64>> {
        let row = sqlx::query(&self.sql(
            "SELECT blocked_until FROM sesame_attempts WHERE attempt_key = ? AND blocked_until > ?",
        ))
        .bind(key)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.try_get("blocked_until")).transpose()?)
    }

    /// Counts a failure for `key` and returns the failures in the current window. A window
    /// older than `window` seconds starts over. From `threshold` failures on, the key is
    /// blocked for a time that doubles with each further failure, up to `window`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn record_failure(
        &self,
        key: &str,
        now: i64,
        window: i64,
        threshold: i64,
    ) -> Result<i64> {
        let mut transaction = self.begin_write().await?;
        let row = sqlx::query(
            &self.sql("SELECT failures, window_start FROM sesame_attempts WHERE attempt_key = ?"),
        )
        .bind(key)
        .fetch_optional(&mut *transaction)
        .await?;
        let failures = match &row {
            Some(row) if row.try_get::<i64, _>("window_start")? + window > now => {
                row.try_get::<i64, _>("failures")? + 1
            }
            _ => 1,
        };
        let window_start = match &row {
            Some(row) if failures > 1 => row.try_get::<i64, _>("window_start")?,
            _ => now,
        };
        let blocked_until = if failures >= threshold {
            let exponent = u32::try_from((failures - threshold).min(10)).unwrap_or(10);
            now + (15 * 2i64.pow(exponent)).min(window)
        } else {
            0
        };
        sqlx::query(&self.sql("DELETE FROM sesame_attempts WHERE attempt_key = ?"))
            .bind(key)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(&self.sql(
            "INSERT INTO sesame_attempts (attempt_key, failures, window_start, blocked_until) \
             VALUES (?, ?, ?, ?)",
        ))
        .bind(key)
        .bind(failures)
        .bind(window_start)
        .bind(blocked_until)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(failures)
    }

    /// Forgets the failures of `key`, after a success.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn clear_failures(&self, key: &str) -> Result<()> {
        sqlx::query(&self.sql("DELETE FROM sesame_attempts WHERE attempt_key = ?"))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
