//! [`AccountUser`]: the signed-in user of the account-management JSON APIs
//! (`/oauth/personal-access-tokens`, `/oauth/clients`, `/oauth/tokens`).

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};

use super::{ApiError, MAX_BODY_BYTES};
use crate::app::Sesame;
use crate::config::ACCOUNT_SCOPE;
use crate::guard::{Bearer, BearerError};

/// The user managing their own account.
///
/// Two credentials work: a bearer token that speaks for a user and carries the reserved scope
/// `sesame:account`, or the sign-in session cookie. With the cookie, every method but GET and
/// HEAD must also send the session's CSRF token in the `X-CSRF-Token` header (the token pages
/// carry it), so another site cannot make the browser act. A request without credentials gets
/// 401; a token of a client principal or without the scope, or a cookie request without a
/// valid CSRF token, gets 403.
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
    /// The browser session of the signed-in user.
    Session,
}

impl AccountUser {
    /// Checks that the user may put each of `scopes` into a new token. A bearer token passes on
    /// only the scopes it holds, so a token never mints a token with more scopes than it has.
    /// A scope it lacks gets RFC 6750's 403 with a challenge naming that scope. A bearer token
    /// never passes on `sesame:account` (400 `invalid_scope`).
    pub fn check_grantable(&self, scopes: &[String]) -> Result<(), ApiError> {
        let AccountCredential::Bearer(bearer) = &self.credential else {
            // A signed-in user may give their own tokens any scope, as on the token page.
            return Ok(());
        };
        // Otherwise a stolen token that expires in an hour could mint a personal token with
        // the same power that lasts a year.
        if scopes.iter().any(|scope| scope == ACCOUNT_SCOPE) {
            return Err(ApiError::Status(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                format!(
                    "a bearer token cannot create a token with {ACCOUNT_SCOPE}; use `sesame \
                     token --scopes {ACCOUNT_SCOPE}` or the signed-in token page"
                ),
            ));
        }
        match scopes.iter().find(|scope| !bearer.has_scope(scope)) {
            Some(missing) => Err(BearerError::InsufficientScope(missing.clone()).into()),
            None => Ok(()),
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
        let has_authorization = parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION);
        if !has_authorization {
            let sesame = Sesame::from_ref(state);
            let session = super::pages::current_session(&sesame, &parts.headers).await?;
            if let Some((session, user_id)) = session.and_then(|s| s.user_id().map(|id| (s, id))) {
                let safe = matches!(parts.method, Method::GET | Method::HEAD);
                let csrf = parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok());
                if !safe && !session.csrf_matches(csrf) {
                    return Err(ApiError::Status(
                        StatusCode::FORBIDDEN,
                        "invalid_csrf_token",
                        "send the session's CSRF token in the X-CSRF-Token header".into(),
                    ));
                }
                return Ok(AccountUser {
                    user_id,
                    credential: AccountCredential::Session,
                });
            }
        }
        let bearer = Bearer::from_request_parts(parts, state).await?;
        let user_id = bearer.user_id()?;
        bearer.require_all(&[ACCOUNT_SCOPE])?;
        Ok(AccountUser {
            user_id,
            credential: AccountCredential::Bearer(bearer),
        })
    }
}

/// The body of a request to a JSON API, read only when its `Content-Type` is
/// `application/json` (parameters such as `charset` allowed). Any other type, or none, is 415
/// `invalid_request`, so a form or text body is never parsed as JSON; a body over the size
/// limit is 413.
pub(crate) struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !declares_json(request.headers()) {
            return Err(ApiError::Status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "the body must be JSON sent with Content-Type: application/json".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    let message = format!("the request body is larger than {MAX_BODY_BYTES} bytes");
                    ApiError::Status(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", message)
                } else {
                    let message = "the body could not be read".to_owned();
                    ApiError::Status(StatusCode::BAD_REQUEST, "invalid_request", message)
                }
            })?;
        Ok(JsonBytes(bytes))
    }
}

/// Returns whether the one `Content-Type` header names `application/json`, in any letter
/// case.
fn declares_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let media_type = value.to_str().unwrap_or_default().split(';').next();
    media_type.is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a JSON request body. A malformed body, one that is not an object, a field of the
/// wrong type or name, or a string containing a NUL byte is 400 `invalid_request` naming the
/// expected `shape`.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    let invalid = |reason: String| {
        ApiError::Status(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the body must be JSON {shape}: {reason}"),
        )
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| invalid(error.to_string()))?;
    // serde reads a struct from an array of its fields in order too; only an object is meant.
    if !value.is_object() {
        return Err(invalid("expected an object".to_owned()));
    }
    // No stored value contains a NUL, and PostgreSQL rejects one in a query parameter.
    if contains_nul(&value) {
        return Err(invalid("a string contains a NUL byte".to_owned()));
    }
    serde_json::from_value(value).map_err(|error| invalid(error.to_string()))
}

fn contains_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        serde_json::Value::Object(fields) => fields
            .iter()
            .any(|(name, field)| name.contains('\0') || contains_nul(field)),
        _ => false,
    }
}

/// The `{id}` path segment of a route that names one stored row. An id containing a NUL byte
/// names no row, and PostgreSQL rejects one in a query parameter, so it is 404 before any
/// query runs.
pub(crate) struct RowId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RowId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let not_found = || {
            ApiError::Status(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such item".to_owned(),
            )
        };
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        if id.contains('\0') {
            return Err(not_found());
        }
        Ok(RowId(id))
    }
}
