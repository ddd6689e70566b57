//! Stored client secrets, read and replaced by `sesame hash`.

use sqlx::{AnyConnection, Row as _};

use super::Store;
use crate::error::Result;

/// A client's stored secret. `Debug` never shows the value.
pub struct StoredSecret {
    /// The client id.
    pub client_id: String,
    /// The stored value: a hash, or a plain secret left by an import.
    pub value: String,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Lists every stored client secret.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn client_secrets(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Vec<StoredSecret>> {
        let rows = sqlx::query("SELECT id, secret FROM oauth_clients WHERE secret IS NOT NULL")
            .fetch_all(connection)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredSecret {
                    client_id: row.try_get("id")?,
                    value: row.try_get("secret")?,
                })
            })
            .collect()
    }

    /// Replaces a client's stored secret only if it still equals `expected`. Returns whether
    /// it did.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn replace_client_secret(
        &self,
        connection: &mut AnyConnection,
        client_id: &str,
        expected: &str,
        replacement: &str,
        now: i64,
    ) -> Result<bool> {
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_clients SET secret = ?, updated_at = ? WHERE id = ? AND secret = ?",
        ))
        .bind(replacement)
        .bind(now)
        .bind(client_id)
        .bind(expected)
        .execute(connection)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}
