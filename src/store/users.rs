//! The `users` table: Sesame's built-in user store.

use sqlx::AnyConnection;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::Store;
use crate::error::{Error, Result};

/// A stored user. `Debug` never shows the password hash.
#[derive(Clone)]
pub struct UserRecord {
    /// Numeric id; never reused.
    pub id: i64,
    /// Unique login name.
    pub name: String,
    /// E-mail address, if known.
    pub email: Option<String>,
    /// Argon2id PHC string; `None` when the user cannot sign in with a password.
    pub password_hash: Option<String>,
    /// Disabled users cannot sign in and their tokens are invalid.
    pub disabled: bool,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, name, email, password, disabled, created_at";

fn user_from_row(row: &AnyRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password")?,
        disabled: super::flag(row, "disabled")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The rows [`Store::end_user_access`] revoked or deleted, counted per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EndedAccess {
    /// Access tokens revoked, personal access tokens included.
    pub access_tokens: u64,
    /// Refresh tokens revoked.
    pub refresh_tokens: u64,
    /// Unused authorization codes revoked.
    pub authorization_codes: u64,
    /// Approved device codes not yet exchanged, turned to denied.
    pub device_codes: u64,
    /// Browser sessions deleted.
    pub sessions: u64,
}

impl Store {
    /// Sets a user's `disabled` flag. Returns whether the user exists.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure.
    pub async fn set_user_disabled(
        &self,
        connection: &mut AnyConnection,
        id: i64,
        disabled: bool,
        now: i64,
    ) -> Result<bool> {
        let result =
            sqlx::query(&self.sql("UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?"))
                .bind(disabled)
                .bind(now)
                .bind(id)
                .execute(connection)
                .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Clears a user's disabled flag if it is set, with one conditional UPDATE, so the user row
    /// is locked before anything else the caller changes. Returns whether the flag was set.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure.
    pub async fn enable_disabled_user(
        &self,
        connection: &mut AnyConnection,
        id: i64,
        now: i64,
    ) -> Result<bool> {
        let result = sqlx::query(
            &self
                .sql("UPDATE users SET disabled = ?, updated_at = ? WHERE id = ? AND disabled = ?"),
        )
        .bind(false)
        .bind(now)
        .bind(id)
        .bind(true)
        .execute(connection)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Replaces a user's password hash. Returns whether the user exists.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure.
    pub async fn set_user_password(
        &self,
        connection: &mut AnyConnection,
        id: i64,
        password_hash: &str,
        now: i64,
    ) -> Result<bool> {
        let result =
            sqlx::query(&self.sql("UPDATE users SET password = ?, updated_at = ? WHERE id = ?"))
                .bind(password_hash)
                .bind(now)
                .bind(id)
                .execute(connection)
                .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Revokes every token and unused authorization code of a user and deletes their
    /// browser sessions. With `deny_device_codes`, device codes the user approved that no
    /// device has exchanged yet become denied, so the device's next poll gets
    /// `access_denied`.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure.
    pub async fn end_user_access(
        &self,
        connection: &mut AnyConnection,
        user_id: i64,
        deny_device_codes: bool,
        now: i64,
    ) -> Result<EndedAccess> {
        let (access_tokens, refresh_tokens) =
            self.revoke_user_tokens(connection, user_id, now).await?;
        let authorization_codes = self.revoke_user_codes(connection, user_id).await?;
        let device_codes = if deny_device_codes {
            self.deny_user_device_codes(connection, user_id).await?
        } else {
            0
        };
        let sessions = self.delete_user_sessions(connection, user_id).await?;
        Ok(EndedAccess {
            access_tokens,
            refresh_tokens,
            authorization_codes,
            device_codes,
            sessions,
        })
    }

    /// Revokes a user's access and refresh tokens; returns how many of each.
    async fn revoke_user_tokens(
        &self,
        connection: &mut AnyConnection,
        user_id: i64,
        now: i64,
    ) -> Result<(u64, u64)> {
        // Refresh rows before access rows, the lock order of every transaction that touches
        // both. Refresh tokens have no index on user_id, so this scans the table, which is
        // acceptable for an operator command.
        let refresh = sqlx::query(&self.sql(
            "UPDATE oauth_refresh_tokens SET revoked = ?, revoked_at = COALESCE(revoked_at, ?) \
             WHERE user_id = ? AND revoked = ?",
        ))
        .bind(true)
        .bind(now)
        .bind(user_id)
        .bind(false)
        .execute(&mut *connection)
        .await?;
        let access = sqlx::query(&self.sql(
            "UPDATE oauth_access_tokens SET revoked = ?, updated_at = ? \
             WHERE user_id = ? AND revoked = ?",
        ))
        .bind(true)
        .bind(now)
        .bind(user_id)
        .bind(false)
        .execute(connection)
        .await?;
        Ok((access.rows_affected(), refresh.rows_affected()))
    }

    async fn revoke_user_codes(&self, connection: &mut AnyConnection, user_id: i64) -> Result<u64> {
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_auth_codes SET revoked = ? \
             WHERE user_id = ? AND revoked = ? AND used_at IS NULL",
        ))
        .bind(true)
        .bind(user_id)
        .bind(false)
        .execute(connection)
        .await?;
        Ok(result.rows_affected())
    }

    async fn deny_user_device_codes(
        &self,
        connection: &mut AnyConnection,
        user_id: i64,
    ) -> Result<u64> {
        let result = sqlx::query(
            &self.sql("UPDATE oauth_device_codes SET status = ? WHERE user_id = ? AND status = ?"),
        )
        .bind(super::DeviceStatus::Denied.as_str())
        .bind(user_id)
        .bind(super::DeviceStatus::Approved.as_str())
        .execute(connection)
        .await?;
        Ok(result.rows_affected())
    }

    async fn delete_user_sessions(
        &self,
        connection: &mut AnyConnection,
        user_id: i64,
    ) -> Result<u64> {
        sqlx::query(&self.sql(
            "DELETE FROM sesame_auth_requests WHERE session_hash IN \
             (SELECT id_hash FROM sesame_sessions WHERE user_id = ?)",
        ))
        .bind(user_id)
        .execute(&mut *connection)
        .await?;
        let result = sqlx::query(&self.sql("DELETE FROM sesame_sessions WHERE user_id = ?"))
            .bind(user_id)
            .execute(connection)
            .await?;
        Ok(result.rows_affected())
    }

    /// Inserts a user and returns its id.
    ///
    /// # Errors
    ///
    /// [`Error::UserExists`] when the name is taken.
    pub async fn insert_user(
        &self,
        name: &str,
        email: Option<&str>,
        password_hash: Option<&str>,
        now: i64,
    ) -> Result<i64> {
        let insert = sqlx::query(&self.sql(
            "INSERT INTO users (name, email, password, disabled, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(name)
        .bind(email)
        .bind(password_hash)
        .bind(false)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await;
        match insert {
            Ok(_) => {}
            Err(error) if super::is_unique_violation(&error) => {
                return Err(Error::UserExists(name.to_owned()));
            }
            Err(error) => return Err(error.into()),
        }
        let user = self.user_by_name(name).await?;
        user.map(|user| user.id).ok_or_else(|| Error::NotFound {
            kind: "user",
            id: name.into(),
        })
    }

    /// Finds a user by id.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure.
    pub async fn user(&self, id: i64) -> Result<Option<UserRecord>> {
        let mut connection = self.pool.acquire().await?;
        self.user_in(&mut connection, id).await
    }

    /// Finds a user by id together with the current personal access client's id, in one
    /// query: issuing a personal access token needs both. The client id is `None` when no
    /// personal client is recorded, or the recorded one is gone, revoked or not personal.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure.
    pub async fn user_and_personal_client(
        &self,
        id: i64,
    ) -> Result<Option<(UserRecord, Option<String>)>> {
        let query = "SELECT u.id, u.name, u.email, u.password, u.disabled, u.created_at, \
                     m.value AS recorded, c.id AS client_id, \
                     c.personal_access_client, c.revoked AS client_revoked \
                     FROM users u \
                     LEFT JOIN sesame_meta m ON m.name = ? \
                     LEFT JOIN oauth_clients c ON c.id = m.value \
                     WHERE u.id = ?";
        let mut connection = self.pool.acquire().await?;
        let row = sqlx::query(&self.sql(query))
            .bind(super::meta::PERSONAL_ACCESS_CLIENT)
            .bind(id)
            .fetch_optional(&mut *connection)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user = user_from_row(&row)?;
        let recorded: Option<String> = row.try_get("recorded")?;
        let client_id: Option<String> = row.try_get("client_id")?;
        let personal = super::optional_flag(&row, "personal_access_client")?.unwrap_or(false);
        let revoked = super::optional_flag(&row, "client_revoked")?.unwrap_or(true);
        // MySQL and MariaDB collations ignore trailing spaces, so only an exact match counts.
        let usable = personal && !revoked && client_id.is_some() && client_id == recorded;
        Ok(Some((user, client_id.filter(|_| usable))))
    }

    /// Finds a user by id on a given connection (inside a transaction).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure.
    pub async fn user_in(
        &self,
        connection: &mut sqlx::AnyConnection,
        id: i64,
    ) -> Result<Option<UserRecord>> {
        let query = format!("SELECT {COLUMNS} FROM users WHERE id = ?");
        let row = sqlx::query(&self.sql(&query))
            .bind(id)
            .fetch_optional(connection)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Finds a user by name (exact, case-sensitive).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>> {
        // PostgreSQL rejects NUL in text, and no user name contains one.
        if name.contains('\0') {
            return Ok(None);
        }
        let query = format!("SELECT {COLUMNS} FROM users WHERE name = ?");
        let row = sqlx::query(&self.sql(&query))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let user = row.as_ref().map(user_from_row).transpose()?;
        // MySQL and MariaDB collations ignore trailing spaces, so `'a '` equals `'a'` there;
        // only an exact match names the user.
        Ok(user.filter(|user| user.name == name))
    }

    /// Lists every user, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure.
    pub async fn users(&self) -> Result<Vec<UserRecord>> {
        let query = format!("SELECT {COLUMNS} FROM users ORDER BY id");
        let rows = sqlx::query(&self.sql(&query)).fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }
}
