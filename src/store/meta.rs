//! The `sesame_meta` table: installation state under unique names.

use sqlx::{AnyConnection, Row as _};

use super::{Backend, Store};
use crate::error::Result;

/// Name of the row that records when the installation was made.
pub const INSTALLED_AT: &str = "installed_at";
/// Name of the row that holds the current personal access client's id.
pub const PERSONAL_ACCESS_CLIENT: &str = "personal_access_client";
/// Name of the row that holds the password client's id.
pub const PASSWORD_CLIENT: &str = "password_client";

impl Store {
    /// Reads one meta value.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn meta(&self, connection: &mut AnyConnection, name: &str) -> Result<Option<String>> {
        let row = sqlx::query(&self.sql("SELECT value FROM sesame_meta WHERE name = ?"))
            .bind(name)
            .fetch_optional(connection)
            .await?;
        Ok(row.map(|row| row.try_get("value")).transpose()?)
    }

    /// Inserts a meta value unless the name exists. Returns whether this call inserted it.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn insert_meta(
        &self,
        connection: &mut AnyConnection,
        name: &str,
        value: &str,
        now: i64,
    ) -> Result<bool> {
        let query = match self.backend {
            Backend::MySql => {
                "INSERT IGNORE INTO sesame_meta (name, value, updated_at) VALUES (?, ?, ?)"
            }
            _ => {
                "INSERT INTO sesame_meta (name, value, updated_at) VALUES (?, ?, ?) \
                  ON CONFLICT (name) DO NOTHING"
            }
        };
        let result = sqlx::query(&self.sql(query))
            .bind(name)
            .bind(value)
            .bind(now)
            .execute(connection)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Replaces a meta value only if it still equals `expected`. Returns whether it did, so
    /// two writers racing to replace the same value cannot both succeed.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn replace_meta(
        &self,
        connection: &mut AnyConnection,
        name: &str,
        expected: &str,
        value: &str,
        now: i64,
    ) -> Result<bool> {
        let result =
            sqlx::query(&self.sql(
                "UPDATE sesame_meta SET value = ?, updated_at = ? WHERE name = ? AND value = ?",
            ))
            .bind(value)
            .bind(now)
            .bind(name)
            .bind(expected)
            .execute(connection)
            .await?;
        Ok(result.rows_affected() == 1)
    }
}
