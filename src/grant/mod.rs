//! Grants: the rules of each way to obtain tokens. HTTP parsing lives in [`crate::http`]; SQL
//! lives in [`crate::store`].

pub mod authorization_code;
pub mod client_auth;
pub mod client_credentials;
pub mod device_code;
pub mod password;
pub mod personal_access;
pub mod refresh_token;

use std::collections::HashMap;

use serde::Serialize;
use sqlx::AnyConnection;

use crate::app::Sesame;
use crate::error::Error;
use crate::store::{ClientRecord, NewAccessToken, NewRefreshToken};
use crate::token::jwt::{self, AccessClaims};
use crate::token::secret::Secret;

/// An RFC 6749 §5.2 error: the `error` code, a description safe to show, and the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The `error` code, such as `invalid_grant`.
    pub code: &'static str,
    /// The `error_description`.
    pub description: String,
    /// 400, or 401 for `invalid_client`.
    pub status: u16,
    /// Whether the client tried HTTP Basic authentication, which makes a 401 carry
    /// `WWW-Authenticate: Basic`.
    pub basic_challenge: bool,
    /// Seconds the client must wait, sent as `Retry-After`.
    pub retry_after: Option<i64>,
}

impl OAuthError {
    fn new(code: &'static str, status: u16, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
            status,
            basic_challenge: false,
            retry_after: None,
        }
    }

    /// `invalid_request`: a parameter is missing, repeated or malformed.
    pub fn invalid_request(description: impl Into<String>) -> OAuthError {
        Self::new("invalid_request", 400, description)
    }

    /// `invalid_client`: client authentication failed (401).
    pub fn invalid_client(description: impl Into<String>) -> OAuthError {
        Self::new("invalid_client", 401, description)
    }

    /// `invalid_grant`: the grant or refresh token is invalid, expired, revoked or not this
    /// client's.
    pub fn invalid_grant(description: impl Into<String>) -> OAuthError {
        Self::new("invalid_grant", 400, description)
    }

    /// `unauthorized_client`: this client may not use this grant.
    pub fn unauthorized_client(description: impl Into<String>) -> OAuthError {
        Self::new("unauthorized_client", 400, description)
    }

    /// `unsupported_grant_type`.
    pub fn unsupported_grant_type(description: impl Into<String>) -> OAuthError {
        Self::new("unsupported_grant_type", 400, description)
    }

    /// `invalid_scope`.
    pub fn invalid_scope(description: impl Into<String>) -> OAuthError {
        Self::new("invalid_scope", 400, description)
    }

    /// `temporarily_unavailable` (503).
    pub fn temporarily_unavailable(description: impl Into<String>) -> OAuthError {
        Self::new("temporarily_unavailable", 503, description)
    }
}

/// The outcome of a failed grant: an error for the client, or an internal failure that is
/// logged and answered with a generic 500.
#[derive(Debug)]
pub enum GrantError {
    /// An error the client caused.
    OAuth(OAuthError),
    /// A server-side failure.
    Internal(Error),
}

impl From<OAuthError> for GrantError {
    fn from(error: OAuthError) -> Self {
        GrantError::OAuth(error)
    }
}

impl From<Error> for GrantError {
    fn from(error: Error) -> Self {
        match error {
            Error::Busy => GrantError::OAuth(OAuthError::temporarily_unavailable(
                "the server is busy; retry shortly",
            )),
            other => GrantError::Internal(other),
        }
    }
}

impl From<sqlx::Error> for GrantError {
    fn from(error: sqlx::Error) -> Self {
        GrantError::Internal(Error::Database(error))
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Serialize)]
pub struct TokenResponse {
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The signed JWT.
    pub access_token: String,
    /// The opaque refresh token, when one was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The OpenID Connect ID token, when `openid` was granted through the authorization code
    /// grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Form parameters of a token request, each present at most once.
#[derive(Default)]
pub struct Params(pub(crate) HashMap<String, String>);

impl Params {
    /// Returns a parameter, treating an empty value as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// Returns a required parameter or an `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing {name}")))
    }
}

/// Who a new access token is for.
pub(crate) struct Issue<'a> {
    pub user_id: Option<i64>,
    pub client_id: &'a str,
    pub scopes: &'a [String],
    pub ttl_seconds: i64,
    pub name: Option<&'a str>,
}

/// Signs an access token and inserts its row on `connection`. Returns the JWT and the row.
pub(crate) async fn issue_access_token(
    sesame: &Sesame,
    connection: &mut AnyConnection,
    issue: Issue<'_>,
) -> Result<(String, NewAccessToken), Error> {
    let (token, row) = sign_access_token(sesame, issue).await?;
    sesame.store().insert_access_token(connection, &row).await?;
    Ok((token, row))
}

/// Signs an access token that no other row depends on and inserts its row through the
/// group-commit writer, so concurrent requests share one commit. Returns the JWT and the row
/// once the row is committed. `cached_client` is the client as the request read it from the
/// client cache, if it did. The row is then stored only if the stored client still equals it.
pub(crate) async fn issue_standalone_access_token(
    sesame: &Sesame,
    issue: Issue<'_>,
    cached_client: Option<&ClientRecord>,
) -> Result<(String, NewAccessToken), Error> {
    let announced = sesame.announce_access_token();
    let started = std::time::Instant::now();
    let (token, row) = sign_access_token(sesame, issue).await?;
    announced.signed_in(started.elapsed());
    sesame
        .insert_access_token(row.clone(), cached_client.cloned(), announced)
        .await?;
    Ok((token, row))
}

async fn sign_access_token(
    sesame: &Sesame,
    issue: Issue<'_>,
) -> Result<(String, NewAccessToken), Error> {
    let now = sesame.now();
    let config = sesame.config();
    let key = sesame.issuing_key().await?;
    let row = NewAccessToken {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: issue.user_id,
        client_id: issue.client_id.to_owned(),
        name: issue.name.map(str::to_owned),
        scopes: issue.scopes.to_vec(),
        kid: key.kid().to_owned(),
        created_at: now,
        expires_at: now.saturating_add(issue.ttl_seconds),
    };
    let claims = AccessClaims {
        iss: config.issuer.clone(),
        sub: match issue.user_id {
            Some(user_id) => user_id.to_string(),
            None => issue.client_id.to_owned(),
        },
        aud: config.audience.clone(),
        client_id: row.client_id.clone(),
        jti: row.id.clone(),
        iat: now,
        exp: row.expires_at,
        scope: issue.scopes.join(" "),
        scopes: issue.scopes.to_vec(),
    };
    let token = jwt::sign(&key, &claims)?;
    Ok((token, row))
}

/// Creates a refresh token row beside `access`, in `family_id`. Returns the plain token.
pub(crate) async fn issue_refresh_token(
    sesame: &Sesame,
    connection: &mut AnyConnection,
    access: &NewAccessToken,
    family_id: &str,
    scopes: &[String],
) -> Result<String, Error> {
    let secret = Secret::generate()?;
    let now = sesame.now();
    let ttl = i64::try_from(sesame.config().refresh_ttl.as_secs()).unwrap_or(i64::MAX);
    let row = NewRefreshToken {
        id: uuid::Uuid::now_v7().to_string(),
        token_hash: secret.stored(),
        access_token_id: access.id.clone(),
        family_id: family_id.to_owned(),
        client_id: access.client_id.clone(),
        user_id: access.user_id,
        scopes: scopes.to_vec(),
        created_at: now,
        expires_at: now.saturating_add(ttl),
    };
    sesame
        .store()
        .insert_refresh_token(connection, &row)
        .await?;
    Ok(secret.expose().to_owned())
}

/// Parses the `scope` parameter and checks it for `client`.
pub(crate) fn requested_scopes(
    sesame: &Sesame,
    client: &ClientRecord,
    params: &Params,
) -> Result<Vec<String>, OAuthError> {
    let scopes = crate::scopes::parse(params.get("scope").unwrap_or_default())
        .map_err(|error| OAuthError::invalid_scope(error.0))?;
    crate::scopes::check_for_client(sesame.config(), client, &scopes)
        .map_err(|error| OAuthError::invalid_scope(error.0))?;
    Ok(scopes)
}

pub(crate) fn ttl_seconds(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
