//! The `users` table: Sesame's built-in user store.

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

impl Store {
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
