//! The `oauth_auth_codes` and `oauth_device_codes` tables.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::{Store, json_list, parse_list};
use crate::error::Result;

/// An authorization code to insert; the code itself is stored only as its hash.
#[derive(Clone, Debug)]
pub struct NewAuthCode {
    /// Row id.
    pub id: String,
    /// `sha256:` hash of the code.
    pub code_hash: String,
    /// The user who approved.
    pub user_id: i64,
    /// The client it was issued to.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The `redirect_uri` parameter of the request, `None` when it was omitted.
    pub redirect_uri: Option<String>,
    /// The PKCE S256 challenge, if one was sent.
    pub code_challenge: Option<String>,
    /// The OpenID Connect nonce, if one was sent.
    pub nonce: Option<String>,
    /// When the user signed in.
    pub auth_time: i64,
    /// Issue time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// A stored authorization code.
#[derive(Clone, Debug)]
pub struct AuthCodeRecord {
    /// Row id.
    pub id: String,
    /// The user who approved.
    pub user_id: i64,
    /// The client it was issued to.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The `redirect_uri` parameter of the request.
    pub redirect_uri: Option<String>,
    /// The PKCE challenge.
    pub code_challenge: Option<String>,
    /// The OpenID Connect nonce.
    pub nonce: Option<String>,
    /// When the user signed in.
    pub auth_time: i64,
    /// Whether it was revoked.
    pub revoked: bool,
    /// When it was redeemed.
    pub used_at: Option<i64>,
    /// The access token its redemption issued.
    pub access_token_id: Option<String>,
    /// The refresh family its redemption issued.
    pub family_id: Option<String>,
    /// Expiry.
    pub expires_at: i64,
}

fn code_from_row(row: &AnyRow) -> Result<AuthCodeRecord> {
    Ok(AuthCodeRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        scopes: parse_list(&row.try_get::<String, _>("scopes")?),
        redirect_uri: row.try_get("redirect_uri")?,
        code_challenge: row.try_get("code_challenge")?,
        nonce: row.try_get("nonce")?,
        auth_time: row.try_get("auth_time")?,
        revoked: super::flag(row, "revoked")?,
        used_at: row.try_get("used_at")?,
        access_token_id: row.try_get("access_token_id")?,
        family_id: row.try_get("family_id")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// The state of a device authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the user.
    Pending,
    /// The user approved; tokens not yet issued.
    Approved,
    /// The user denied.
    Denied,
    /// Tokens were issued; the device code is spent.
    Issued,
}

impl DeviceStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Issued => "issued",
        }
    }

    fn parse(text: &str) -> DeviceStatus {
        match text {
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            "issued" => DeviceStatus::Issued,
            _ => DeviceStatus::Pending,
        }
    }
}

/// A stored device authorization. `Debug` never shows the user code.
#[derive(Clone)]
pub struct DeviceCodeRecord {
    /// Row id.
    pub id: String,
    /// The normalised user code.
    pub user_code: String,
    /// The client that asked.
    pub client_id: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// The user who approved or denied.
    pub user_id: Option<i64>,
    /// Where the authorization stands.
    pub status: DeviceStatus,
    /// Seconds the device must wait between polls.
    pub poll_interval: i64,
    /// When the device last polled.
    pub last_polled_at: Option<i64>,
    /// When the approving user signed in.
    pub auth_time: Option<i64>,
    /// Expiry.
    pub expires_at: i64,
}

impl std::fmt::Debug for DeviceCodeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCodeRecord")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("user_id", &self.user_id)
            .field("status", &self.status)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

const DEVICE_COLUMNS: &str = "id, user_code, client_id, scopes, user_id, status, poll_interval, \
                              last_polled_at, auth_time, expires_at";

fn device_from_row(row: &AnyRow) -> Result<DeviceCodeRecord> {
    Ok(DeviceCodeRecord {
        id: row.try_get("id")?,
        user_code: row.try_get("user_code")?,
        client_id: row.try_get("client_id")?,
        scopes: parse_list(&row.try_get::<String, _>("scopes")?),
        user_id: row.try_get("user_id")?,
        status: DeviceStatus::parse(&row.try_get::<String, _>("status")?),
        poll_interval: row.try_get("poll_interval")?,
        last_polled_at: row.try_get("last_polled_at")?,
        auth_time: row.try_get("auth_time")?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl Store {
    /// Inserts an authorization code.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn insert_auth_code(&self, code: &NewAuthCode) -> Result<()> {
        sqlx::query(&self.sql(
            "INSERT INTO oauth_auth_codes (id, code_hash, user_id, client_id, scopes, redirect_uri, \
             code_challenge, nonce, auth_time, revoked, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(&code.id)
        .bind(&code.code_hash)
        .bind(code.user_id)
        .bind(&code.client_id)
        .bind(json_list(&code.scopes))
        .bind(code.redirect_uri.as_deref())
        .bind(code.code_challenge.as_deref())
        .bind(code.nonce.as_deref())
        .bind(code.auth_time)
        .bind(false)
        .bind(code.created_at)
        .bind(code.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Finds an authorization code by the hash of its value.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn auth_code_by_hash(
        &self,
        connection: &mut AnyConnection,
        code_hash: &str,
    ) -> Result<Option<AuthCodeRecord>> {
        let row = sqlx::query(&self.sql(
            "SELECT id, user_id, client_id, scopes, redirect_uri, code_challenge, nonce, auth_time, \
             revoked, used_at, access_token_id, family_id, expires_at \
             FROM oauth_auth_codes WHERE code_hash = ?",
        ))
        .bind(code_hash)
        .fetch_optional(connection)
        .await?;
        row.as_ref().map(code_from_row).transpose()
    }

    /// Marks an unused code as used. Returns whether this call used it; of concurrent calls
    /// only one can.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn use_auth_code(
        &self,
        connection: &mut AnyConnection,
        id: &str,
        now: i64,
    ) -> Result<bool> {
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_auth_codes SET used_at = ? WHERE id = ? AND used_at IS NULL AND revoked = ?",
        ))
        .bind(now)
        .bind(id)
        .bind(false)
        .execute(connection)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records the tokens a code's redemption issued, in the redemption's transaction.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn record_code_tokens(
        &self,
        connection: &mut AnyConnection,
        id: &str,
        access_token_id: &str,
        family_id: &str,
    ) -> Result<()> {
        sqlx::query(
            &self
                .sql("UPDATE oauth_auth_codes SET access_token_id = ?, family_id = ? WHERE id = ?"),
        )
        .bind(access_token_id)
        .bind(family_id)
        .bind(id)
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Inserts a device authorization. Returns `false` when the user code is taken, so the
    /// caller can draw another.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_device_code(
        &self,
        id: &str,
        device_code_hash: &str,
        user_code: &str,
        client_id: &str,
        scopes: &[String],
        poll_interval: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<bool> {
        let insert = sqlx::query(&self.sql(
            "INSERT INTO oauth_device_codes (id, device_code_hash, user_code, client_id, scopes, \
             status, poll_interval, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(id)
        .bind(device_code_hash)
        .bind(user_code)
        .bind(client_id)
        .bind(json_list(scopes))
        .bind(DeviceStatus::Pending.as_str())
        .bind(poll_interval)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await;
        match insert {
            Ok(_) => Ok(true),
            Err(error) if super::is_unique_violation(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Finds a device authorization by the hash of its device code.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn device_code_by_hash(
        &self,
        connection: &mut AnyConnection,
        device_code_hash: &str,
    ) -> Result<Option<DeviceCodeRecord>> {
        let query =
            format!("SELECT {DEVICE_COLUMNS} FROM oauth_device_codes WHERE device_code_hash = ?");
        let row = sqlx::query(&self.sql(&query))
            .bind(device_code_hash)
            .fetch_optional(connection)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    /// Finds a device authorization by its normalised user code.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn device_code_by_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<DeviceCodeRecord>> {
        // PostgreSQL rejects NUL in text, and no user code contains one.
        if user_code.contains('\0') {
            return Ok(None);
        }
        let query = format!("SELECT {DEVICE_COLUMNS} FROM oauth_device_codes WHERE user_code = ?");
        let row = sqlx::query(&self.sql(&query))
            .bind(user_code)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    /// Moves a pending device authorization to approved or denied. Returns whether it was
    /// still pending; of two concurrent decisions only one takes effect.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn decide_device_code(
        &self,
        id: &str,
        user_id: i64,
        auth_time: i64,
        status: DeviceStatus,
    ) -> Result<bool> {
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_device_codes SET status = ?, user_id = ?, auth_time = ? \
             WHERE id = ? AND status = ?",
        ))
        .bind(status.as_str())
        .bind(user_id)
        .bind(auth_time)
        .bind(id)
        .bind(DeviceStatus::Pending.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records a poll and the interval the device must keep from now on.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn record_device_poll(
        &self,
        connection: &mut AnyConnection,
        id: &str,
        now: i64,
        poll_interval: i64,
    ) -> Result<()> {
        sqlx::query(&self.sql(
            "UPDATE oauth_device_codes SET last_polled_at = ?, poll_interval = ? WHERE id = ?",
        ))
        .bind(now)
        .bind(poll_interval)
        .bind(id)
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Moves an approved device authorization to issued. Returns whether this call did.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn issue_device_code(
        &self,
        connection: &mut AnyConnection,
        id: &str,
    ) -> Result<bool> {
        let result = sqlx::query(
            &self.sql("UPDATE oauth_device_codes SET status = ? WHERE id = ? AND status = ?"),
        )
        .bind(DeviceStatus::Issued.as_str())
        .bind(id)
        .bind(DeviceStatus::Approved.as_str())
        .execute(connection)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}
