//! The `oauth_access_tokens` and `oauth_refresh_tokens` tables.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::{Store, json_list, parse_list};
use crate::error::Result;

/// An access token row to insert.
#[derive(Clone, Debug)]
pub struct NewAccessToken {
    /// The `jti`.
    pub id: String,
    /// The user, or `None` for client credentials.
    pub user_id: Option<i64>,
    /// The client it was issued to.
    pub client_id: String,
    /// The name of a personal access token; `None` for every other token.
    pub name: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The signing key's id.
    pub kid: String,
    /// Issue time, seconds since the epoch.
    pub created_at: i64,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

/// A stored access token with the state of its client and user, as the guard needs them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AccessTokenRecord {
    /// The `jti`.
    pub id: String,
    /// The user, or `None` for client credentials.
    pub user_id: Option<i64>,
    /// The client it was issued to.
    pub client_id: String,
    /// The name of a personal access token.
    pub name: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Issue time, seconds since the epoch.
    pub created_at: i64,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
    /// `Some(true)` if its client is revoked, `None` if the client row is gone.
    #[serde(skip)]
    pub client_revoked: Option<bool>,
    /// `Some(true)` if its user is disabled, `None` if there is no user row.
    #[serde(skip)]
    pub user_disabled: Option<bool>,
    /// Whether the key that signed it was retired, which invalidates the token at once.
    #[serde(skip)]
    pub key_retired: bool,
    /// Its user's name, read with the token so that userinfo needs no second query.
    #[serde(skip)]
    pub user_name: Option<String>,
    /// Its user's e-mail address, if the user has one.
    #[serde(skip)]
    pub user_email: Option<String>,
}

impl AccessTokenRecord {
    /// Whether this is a personal access token (it has a name, as in Passport).
    pub fn is_personal(&self) -> bool {
        self.name.is_some()
    }
}

const ACCESS_SELECT: &str = "SELECT t.id, t.user_id, t.client_id, t.name, t.scopes, t.revoked, \
    t.created_at, t.expires_at, c.revoked AS client_revoked, u.disabled AS user_disabled, \
    u.name AS user_name, u.email AS user_email, k.state AS key_state \
    FROM oauth_access_tokens t \
    LEFT JOIN oauth_clients c ON c.id = t.client_id \
    LEFT JOIN users u ON u.id = t.user_id \
    LEFT JOIN sesame_keys k ON k.kid = t.kid";

fn access_from_row(row: &AnyRow) -> Result<AccessTokenRecord> {
    Ok(AccessTokenRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        scopes: parse_list(&row.try_get::<String, _>("scopes")?),
        revoked: super::flag(row, "revoked")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        client_revoked: super::optional_flag(row, "client_revoked")?,
        user_disabled: super::optional_flag(row, "user_disabled")?,
        key_retired: row.try_get::<Option<String>, _>("key_state")?.as_deref()
            == Some(super::KeyState::Retired.as_str()),
        user_name: row.try_get("user_name")?,
        user_email: row.try_get("user_email")?,
    })
}

/// A refresh token row to insert; the token itself is stored only as its hash.
#[derive(Clone, Debug)]
pub struct NewRefreshToken {
    /// Row id.
    pub id: String,
    /// `sha256:` hash of the token.
    pub token_hash: String,
    /// The access token issued beside it.
    pub access_token_id: String,
    /// Shared by every rotation of one grant.
    pub family_id: String,
    /// The client it belongs to.
    pub client_id: String,
    /// The user it belongs to.
    pub user_id: Option<i64>,
    /// Granted scopes, kept across rotations.
    pub scopes: Vec<String>,
    /// Issue time, seconds since the epoch.
    pub created_at: i64,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

/// A stored refresh token.
#[derive(Clone, Debug)]
pub struct RefreshTokenRecord {
    /// Row id.
    pub id: String,
    /// The access token issued beside it.
    pub access_token_id: String,
    /// Shared by every rotation of one grant.
    pub family_id: String,
    /// The client it belongs to.
    pub client_id: String,
    /// The user it belongs to.
    pub user_id: Option<i64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Whether it was revoked or spent.
    pub revoked: bool,
    /// When it was spent by a rotation; `None` if never used.
    pub used_at: Option<i64>,
    /// Issue time, seconds since the epoch.
    pub created_at: i64,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

/// The start of an INSERT into `oauth_access_tokens`, followed by one or more
/// [`ACCESS_TOKEN_VALUES`] groups that [`bind_access_token`] fills.
const INSERT_ACCESS_TOKENS: &str = "INSERT INTO oauth_access_tokens (id, user_id, client_id, \
    name, scopes, revoked, kid, created_at, updated_at, expires_at) VALUES ";

/// The placeholders of one access token row in [`INSERT_ACCESS_TOKENS`].
const ACCESS_TOKEN_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Binds one row's values in the order of [`ACCESS_TOKEN_VALUES`].
fn bind_access_token<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    token: &'q NewAccessToken,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&token.id)
        .bind(token.user_id)
        .bind(&token.client_id)
        .bind(token.name.as_deref())
        .bind(json_list(&token.scopes))
        .bind(false)
        .bind(&token.kid)
        .bind(token.created_at)
        .bind(token.created_at)
        .bind(token.expires_at)
}

impl Store {
    /// Inserts an access token row.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn insert_access_token(
        &self,
        connection: &mut AnyConnection,
        token: &NewAccessToken,
    ) -> Result<()> {
        let text = format!("{INSERT_ACCESS_TOKENS}{ACCESS_TOKEN_VALUES}");
        let sql = self.sql(&text);
        bind_access_token(sqlx::query(&sql), token)
            .execute(connection)
            .await?;
        Ok(())
    }

    /// Inserts several access token rows with one statement, which commits them together.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure; then no row was inserted.
    pub(crate) async fn insert_access_tokens(
        &self,
        connection: &mut AnyConnection,
        tokens: &[&NewAccessToken],
    ) -> Result<()> {
        if tokens.is_empty() {
            return Ok(());
        }
        let values = vec![ACCESS_TOKEN_VALUES; tokens.len()].join(", ");
        let text = format!("{INSERT_ACCESS_TOKENS}{values}");
        let sql = self.sql(&text);
        let mut query = sqlx::query(&sql);
        for token in tokens {
            query = bind_access_token(query, token);
        }
        query.execute(connection).await?;
        Ok(())
    }

    /// Finds an access token row with its client's and user's state.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn access_token(&self, id: &str) -> Result<Option<AccessTokenRecord>> {
        let query = format!("{ACCESS_SELECT} WHERE t.id = ?");
        let row = sqlx::query(&self.sql(&query))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(access_from_row).transpose()
    }

    /// Lists a user's personal access tokens that are neither revoked nor expired, newest
    /// first.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn personal_tokens(&self, user_id: i64, now: i64) -> Result<Vec<AccessTokenRecord>> {
        let query = format!(
            "{ACCESS_SELECT} WHERE t.user_id = ? AND t.name IS NOT NULL AND t.revoked = ? \
             AND t.expires_at > ? ORDER BY t.created_at DESC, t.id DESC"
        );
        let rows = sqlx::query(&self.sql(&query))
            .bind(user_id)
            .bind(false)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(access_from_row).collect()
    }

    /// Revokes a user's personal access token. Returns whether the user owned an unrevoked
    /// personal token with that id.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn revoke_personal_token(&self, id: &str, user_id: i64, now: i64) -> Result<bool> {
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_access_tokens SET revoked = ?, updated_at = ? \
             WHERE id = ? AND user_id = ? AND name IS NOT NULL AND revoked = ?",
        ))
        .bind(true)
        .bind(now)
        .bind(id)
        .bind(user_id)
        .bind(false)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Revokes one access token by id.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn revoke_access_token(
        &self,
        connection: &mut AnyConnection,
        id: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            &self.sql("UPDATE oauth_access_tokens SET revoked = ?, updated_at = ? WHERE id = ?"),
        )
        .bind(true)
        .bind(now)
        .bind(id)
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Inserts a refresh token row.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn insert_refresh_token(
        &self,
        connection: &mut AnyConnection,
        token: &NewRefreshToken,
    ) -> Result<()> {
        sqlx::query(&self.sql(
            "INSERT INTO oauth_refresh_tokens (id, token_hash, access_token_id, family_id, \
             client_id, user_id, scopes, revoked, used_at, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
        ))
        .bind(&token.id)
        .bind(&token.token_hash)
        .bind(&token.access_token_id)
        .bind(&token.family_id)
        .bind(&token.client_id)
        .bind(token.user_id)
        .bind(json_list(&token.scopes))
        .bind(false)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Finds a refresh token by the hash of its value.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn refresh_token_by_hash(
        &self,
        connection: &mut AnyConnection,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>> {
        let row = sqlx::query(&self.sql(
            "SELECT id, access_token_id, family_id, client_id, user_id, scopes, revoked, used_at, \
             created_at, expires_at FROM oauth_refresh_tokens WHERE token_hash = ?",
        ))
        .bind(token_hash)
        .fetch_optional(connection)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(RefreshTokenRecord {
            id: row.try_get("id")?,
            access_token_id: row.try_get("access_token_id")?,
            family_id: row.try_get("family_id")?,
            client_id: row.try_get("client_id")?,
            user_id: row.try_get("user_id")?,
            scopes: parse_list(&row.try_get::<String, _>("scopes")?),
            revoked: super::flag(&row, "revoked")?,
            used_at: row.try_get("used_at")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Marks an unspent refresh token as used. Returns whether this call spent it; of two
    /// concurrent calls only one can.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn spend_refresh_token(
        &self,
        connection: &mut AnyConnection,
        id: &str,
        now: i64,
    ) -> Result<bool> {
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_refresh_tokens SET revoked = ?, used_at = ? WHERE id = ? AND revoked = ?",
        ))
        .bind(true)
        .bind(now)
        .bind(id)
        .bind(false)
        .execute(connection)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Revokes one refresh token row.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn revoke_refresh_token_row(
        &self,
        connection: &mut AnyConnection,
        id: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(&self.sql(
            "UPDATE oauth_refresh_tokens SET revoked = ?, revoked_at = COALESCE(revoked_at, ?) \
             WHERE id = ?",
        ))
        .bind(true)
        .bind(now)
        .bind(id)
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Revokes every refresh token of a family and every access token issued with them, and
    /// records the time of revocation on refresh tokens not revoked before.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn revoke_refresh_family(
        &self,
        connection: &mut AnyConnection,
        family_id: &str,
        now: i64,
    ) -> Result<()> {
        // Refresh rows first, then access rows: every transaction that touches both locks them
        // in this order, so concurrent revocations and refreshes cannot deadlock.
        sqlx::query(&self.sql(
            "UPDATE oauth_refresh_tokens SET revoked = ?, revoked_at = COALESCE(revoked_at, ?) \
             WHERE family_id = ?",
        ))
        .bind(true)
        .bind(now)
        .bind(family_id)
        .execute(&mut *connection)
        .await?;
        sqlx::query(&self.sql(
            "UPDATE oauth_access_tokens SET revoked = ?, updated_at = ? WHERE id IN \
             (SELECT access_token_id FROM oauth_refresh_tokens WHERE family_id = ?)",
        ))
        .bind(true)
        .bind(now)
        .bind(family_id)
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Counts unexpired, unrevoked access tokens grouped by the key that signed them.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn live_tokens_by_kid(&self, now: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(&self.sql(
            "SELECT kid, COUNT(*) AS n FROM oauth_access_tokens \
             WHERE revoked = ? AND expires_at > ? GROUP BY kid",
        ))
        .bind(false)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("kid")?, row.try_get("n")?)))
            .collect()
    }
}

impl super::lookup::Keyed for AccessTokenRecord {
    fn key(&self) -> &str {
        &self.id
    }

    async fn fetch_many(
        store: &Store,
        connection: &mut AnyConnection,
        keys: &[&str],
    ) -> Result<Vec<AccessTokenRecord>> {
        let select = format!("{ACCESS_SELECT} WHERE t.id IN");
        super::lookup::rows_by_ids(store, connection, &select, keys, access_from_row).await
    }
}
