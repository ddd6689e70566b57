//! [`AccountUser`]: the signed-in user of the account-management JSON APIs
//! (`/oauth/personal-access-tokens`, `/oauth/clients`, `/oauth/tokens`).

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::ApiError;
use crate::app::Sesame;
use crate::config::ACCOUNT_SCOPE;
use crate::guard::Bearer;

/// The user managing their own account.
///
/// Today the only credential is a bearer token that speaks for a user and carries the
/// reserved scope `sesame:account`. A request without credentials gets 401, and a token of a
/// client principal or without the scope gets 403.
#[derive(Debug, Clone)]
pub(crate) struct AccountUser {
    /// The user.
    pub user_id: i64,
    credential: AccountCredential,
}

#[derive(Debug, Clone)]
enum AccountCredential {
    /// A bearer token carrying `sesame:account`.
    Bearer(Bearer),
}

impl AccountUser {
    /// Checks whether the user may put `scope` into a new token. A bearer token passes on only the
    /// scopes it holds, so a token never mints a token with more scopes than it has.
    pub fn may_grant(&self, scope: &str) -> bool {
        match &self.credential {
            AccountCredential::Bearer(bearer) => bearer.has_scope(scope),
        }
    }
}

impl<S> FromRequestParts<S> for AccountUser
where
    Sesame: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // TODO: accept the login session cookie with its CSRF token here too, once the login
        // page exists. A session may then grant every scope its user may have.
        let bearer = Bearer::from_request_parts(parts, state).await?;
        let user_id = bearer.user_id()?;
        bearer.require_all(&[ACCOUNT_SCOPE])?;
        Ok(AccountUser {
            user_id,
            credential: AccountCredential::Bearer(bearer),
        })
    }
}

/// Parses a JSON request body; a malformed body or a field of the wrong type or name is 400
/// `invalid_request` naming the expected `shape`.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::Status(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the body must be JSON {shape}: {error}"),
        )
    })
}
