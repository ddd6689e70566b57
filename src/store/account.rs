//! Queries of the account-management APIs: a user's own clients, and the access tokens the
//! user's authorized applications hold.

use sqlx::Row as _;

use super::clients::{COLUMNS, client_from_row};
use super::{ClientRecord, Store, json_list, parse_list};
use crate::error::Result;

/// An unrevoked, unexpired access token that an application holds for a user.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuthorizedToken {
    /// The token's `jti`.
    pub id: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// That client's display name.
    pub client_name: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Issue time, seconds since the epoch.
    pub created_at: i64,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

impl Store {
    /// Lists a user's unrevoked clients, oldest first.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn user_clients(&self, user_id: i64) -> Result<Vec<ClientRecord>> {
        let query = format!(
            "SELECT {COLUMNS} FROM oauth_clients WHERE user_id = ? AND revoked = ? \
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(&self.sql(&query))
            .bind(user_id)
            .bind(false)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// Finds one of a user's unrevoked clients.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn user_client(&self, user_id: i64, client_id: &str) -> Result<Option<ClientRecord>> {
        let query = format!(
            "SELECT {COLUMNS} FROM oauth_clients WHERE id = ? AND user_id = ? AND revoked = ?"
        );
        let row = sqlx::query(&self.sql(&query))
            .bind(client_id)
            .bind(user_id)
            .bind(false)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    /// Replaces the name and redirect URIs of a user's unrevoked client. Returns whether the
    /// user has such a client.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn update_user_client(
        &self,
        user_id: i64,
        client_id: &str,
        name: &str,
        redirect_uris: &[String],
        now: i64,
    ) -> Result<bool> {
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_clients SET name = ?, redirect_uris = ?, updated_at = ? \
             WHERE id = ? AND user_id = ? AND revoked = ?",
        ))
        .bind(name)
        .bind(json_list(redirect_uris))
        .bind(now)
        .bind(client_id)
        .bind(user_id)
        .bind(false)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Revokes a user's unrevoked client. Returns whether the user had such a client.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn revoke_user_client(
        &self,
        user_id: i64,
        client_id: &str,
        now: i64,
    ) -> Result<bool> {
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_clients SET revoked = ?, updated_at = ? \
             WHERE id = ? AND user_id = ? AND revoked = ?",
        ))
        .bind(true)
        .bind(now)
        .bind(client_id)
        .bind(user_id)
        .bind(false)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Replaces the secret hash of a user's unrevoked confidential client. Returns whether the
    /// user has such a client.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn set_user_client_secret(
        &self,
        user_id: i64,
        client_id: &str,
        secret_hash: &str,
        now: i64,
    ) -> Result<bool> {
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_clients SET secret = ?, updated_at = ? \
             WHERE id = ? AND user_id = ? AND revoked = ? AND secret IS NOT NULL",
        ))
        .bind(secret_hash)
        .bind(now)
        .bind(client_id)
        .bind(user_id)
        .bind(false)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Lists the unrevoked, unexpired access tokens, other than personal access tokens, that
    /// unrevoked clients hold for a user, newest first.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn authorized_tokens(&self, user_id: i64, now: i64) -> Result<Vec<AuthorizedToken>> {
        let rows = sqlx::query(&self.sql(
            "SELECT t.id, t.client_id, c.name AS client_name, t.scopes, t.created_at, \
             t.expires_at FROM oauth_access_tokens t \
             JOIN oauth_clients c ON c.id = t.client_id \
             WHERE t.user_id = ? AND t.name IS NULL AND t.revoked = ? AND t.expires_at > ? \
             AND c.revoked = ? ORDER BY t.created_at DESC, t.id DESC",
        ))
        .bind(user_id)
        .bind(false)
        .bind(now)
        .bind(false)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuthorizedToken {
                    id: row.try_get("id")?,
                    client_id: row.try_get("client_id")?,
                    client_name: row.try_get("client_name")?,
                    scopes: parse_list(&row.try_get::<String, _>("scopes")?),
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Revokes one of a user's unrevoked access tokens other than personal access tokens,
    /// with the refresh token family issued beside it, in one transaction. Returns whether the
    /// user had such a token.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn revoke_authorized_token(&self, user_id: i64, id: &str, now: i64) -> Result<bool> {
        let mut transaction = self.begin_write().await?;
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_access_tokens SET revoked = ?, updated_at = ? \
             WHERE id = ? AND user_id = ? AND name IS NULL AND revoked = ?",
        ))
        .bind(true)
        .bind(now)
        .bind(id)
        .bind(user_id)
        .bind(false)
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        let families: Vec<String> =
            sqlx::query_scalar(&self.sql(
                "SELECT DISTINCT family_id FROM oauth_refresh_tokens WHERE access_token_id = ?",
            ))
            .bind(id)
            .fetch_all(&mut *transaction)
            .await?;
        for family_id in families {
            self.revoke_refresh_family(&mut transaction, &family_id, now)
                .await?;
        }
        transaction.commit().await?;
        Ok(true)
    }
}
