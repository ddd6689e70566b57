//! The `oauth_clients` table.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::{Store, json_list, parse_list};
use crate::error::Result;

/// The kinds of client the CLI creates, each with its grant types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// Issues personal access tokens; never used at the token endpoint.
    Personal,
    /// A first-party confidential client allowed the password and refresh grants.
    Password,
    /// A confidential machine client allowed the client credentials grant.
    ClientCredentials,
    /// A confidential web application using the authorization code and refresh grants.
    AuthorizationCode,
    /// A public application (single-page, mobile, desktop) using the authorization code
    /// grant with PKCE and refresh tokens; it has no secret.
    Public,
    /// A public input-constrained device using the device authorization grant.
    Device,
    /// A confidential client with no grant that introspects tokens issued for its audience.
    ResourceServer,
}

impl ClientKind {
    /// The grant types a client of this kind may use.
    pub fn grant_types(self) -> Vec<String> {
        let grants: &[&str] = match self {
            ClientKind::Personal => &["personal_access"],
            ClientKind::Password => &["password", "refresh_token"],
            ClientKind::ClientCredentials => &["client_credentials"],
            ClientKind::AuthorizationCode | ClientKind::Public => {
                &["authorization_code", "refresh_token"]
            }
            ClientKind::Device => &[DEVICE_CODE_GRANT, "refresh_token"],
            ClientKind::ResourceServer => &[],
        };
        grants.iter().map(|grant| (*grant).to_owned()).collect()
    }

    /// Whether clients of this kind get a secret.
    pub fn confidential(self) -> bool {
        !matches!(
            self,
            ClientKind::Personal | ClientKind::Public | ClientKind::Device
        )
    }

    /// Whether clients of this kind redirect users back, so they need a redirect URI.
    pub fn needs_redirect_uri(self) -> bool {
        matches!(self, ClientKind::AuthorizationCode | ClientKind::Public)
    }
}

/// The device authorization grant type (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A client to insert. The secret is already hashed, and `Debug` does not show the hash.
#[derive(Clone)]
pub struct NewClient {
    /// The new client's id.
    pub id: String,
    /// Display name shown on consent pages and in listings.
    pub name: String,
    /// Stored secret hash, `None` for public clients.
    pub secret_hash: Option<String>,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// Scopes it may request; `None` allows every declared scope.
    pub scopes: Option<Vec<String>>,
    /// Whether this is a personal access client.
    pub personal_access_client: bool,
    /// Whether this is a password client.
    pub password_client: bool,
    /// First-party clients skip consent.
    pub first_party: bool,
    /// Whether authorization requests must carry a PKCE challenge.
    pub require_pkce: bool,
    /// The user who owns it, for clients created through the API.
    pub user_id: Option<i64>,
    /// The audience of a resource server; `None` for every other client.
    pub audience: Option<String>,
}

impl std::fmt::Debug for NewClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewClient")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("grant_types", &self.grant_types)
            .finish_non_exhaustive()
    }
}

/// A stored client. `Debug` never shows the secret hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// The client id.
    pub id: String,
    /// Owner, for clients users created themselves.
    pub user_id: Option<i64>,
    /// Display name.
    pub name: String,
    /// Stored secret (`sha256:` or bcrypt), `None` for public clients.
    pub secret_hash: Option<String>,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// Scopes it may request; `None` allows every declared scope.
    pub scopes: Option<Vec<String>>,
    /// Whether this is a personal access client.
    pub personal_access_client: bool,
    /// Whether this is a password client.
    pub password_client: bool,
    /// First-party clients skip consent.
    pub first_party: bool,
    /// Whether authorization requests must carry a PKCE challenge.
    pub require_pkce: bool,
    /// Revoked clients cannot authenticate and their tokens are invalid.
    pub revoked: bool,
    /// The audience of a resource server; `None` for every other client.
    pub audience: Option<String>,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("grant_types", &self.grant_types)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

impl ClientRecord {
    /// Whether the client authenticates with a secret.
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
    }

    /// Checks whether the client is a resource server, which may introspect tokens for its
    /// audience.
    pub fn is_resource_server(&self) -> bool {
        self.audience.is_some()
    }

    /// Whether the client may use `grant_type`.
    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|grant| grant == grant_type)
    }
}

pub(super) const COLUMNS: &str = "id, user_id, name, secret, redirect_uris, grant_types, scopes, \
                       personal_access_client, password_client, first_party, require_pkce, revoked, \
                       audience, \
                       created_at";

pub(super) fn client_from_row(row: &AnyRow) -> Result<ClientRecord> {
    let scopes: Option<String> = row.try_get("scopes")?;
    Ok(ClientRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret")?,
        redirect_uris: parse_list(&row.try_get::<String, _>("redirect_uris")?),
        grant_types: parse_list(&row.try_get::<String, _>("grant_types")?),
        scopes: scopes.as_deref().map(parse_list),
        personal_access_client: super::flag(row, "personal_access_client")?,
        password_client: super::flag(row, "password_client")?,
        first_party: super::flag(row, "first_party")?,
        require_pkce: super::flag(row, "require_pkce")?,
        revoked: super::flag(row, "revoked")?,
        audience: row.try_get("audience")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Inserts a client.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn insert_client(
        &self,
        connection: &mut AnyConnection,
        client: &NewClient,
        now: i64,
    ) -> Result<()> {
        sqlx::query(&self.sql(
            "INSERT INTO oauth_clients (id, user_id, name, secret, redirect_uris, grant_types, \
             scopes, personal_access_client, password_client, first_party, require_pkce, revoked, \
             audience, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(&client.id)
        .bind(client.user_id)
        .bind(&client.name)
        .bind(client.secret_hash.as_deref())
        .bind(json_list(&client.redirect_uris))
        .bind(json_list(&client.grant_types))
        .bind(client.scopes.as_deref().map(json_list))
        .bind(client.personal_access_client)
        .bind(client.password_client)
        .bind(client.first_party)
        .bind(client.require_pkce)
        .bind(false)
        .bind(client.audience.as_deref())
        .bind(now)
        .bind(now)
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Finds a client by id, revoked or not.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn client(&self, id: &str) -> Result<Option<ClientRecord>> {
        let mut connection = self.pool.acquire().await?;
        self.client_in(&mut connection, id).await
    }

    /// Finds a client by id on a given connection (inside a transaction).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn client_in(
        &self,
        connection: &mut AnyConnection,
        id: &str,
    ) -> Result<Option<ClientRecord>> {
        // PostgreSQL rejects NUL in text, and no id contains one.
        if id.contains('\0') {
            return Ok(None);
        }
        let query = format!("SELECT {COLUMNS} FROM oauth_clients WHERE id = ?");
        let row = sqlx::query(&self.sql(&query))
            .bind(id)
            .fetch_optional(connection)
            .await?;
        let client = row.as_ref().map(client_from_row).transpose()?;
        // MySQL and MariaDB collations ignore trailing spaces, so `'a '` equals `'a'` there;
        // only an exact match names the client.
        Ok(client.filter(|client| client.id == id))
    }

    /// Lists every client, oldest first.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>> {
        let query = format!("SELECT {COLUMNS} FROM oauth_clients ORDER BY created_at, id");
        let rows = sqlx::query(&self.sql(&query)).fetch_all(&self.pool).await?;
        rows.iter().map(client_from_row).collect()
    }

    /// Marks a client revoked. Returns whether a client with that id exists.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn revoke_client(&self, id: &str, now: i64) -> Result<bool> {
        let result = sqlx::query(
            &self.sql("UPDATE oauth_clients SET revoked = ?, updated_at = ? WHERE id = ?"),
        )
        .bind(true)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Replaces a confidential client's secret hash. Returns whether the client exists and is
    /// confidential.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn set_client_secret(&self, id: &str, secret_hash: &str, now: i64) -> Result<bool> {
        let result = sqlx::query(&self.sql(
            "UPDATE oauth_clients SET secret = ?, updated_at = ? WHERE id = ? AND secret IS NOT NULL",
        ))
        .bind(secret_hash)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

impl super::lookup::Keyed for ClientRecord {
    fn key(&self) -> &str {
        &self.id
    }

    async fn fetch_many(
        store: &Store,
        connection: &mut AnyConnection,
        keys: &[&str],
    ) -> Result<Vec<ClientRecord>> {
        let select = format!("SELECT {COLUMNS} FROM oauth_clients WHERE id IN");
        super::lookup::rows_by_ids(store, connection, &select, keys, client_from_row).await
    }
}
