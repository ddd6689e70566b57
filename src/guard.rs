//! Protecting APIs: the [`Bearer`] extractor and scope checks, responding as RFC 6750 §3.1 specifies.
//! [`VerifiedToken`] is the verify-only guard, which skips the token row.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::Sesame;
use crate::token::jwt::{Rejection, VerifiedClaims};

mod verify_only;

pub use verify_only::VerifiedToken;

/// Who a valid access token speaks for, decided by the stored token (a user present or not),
/// never by the `sub` claim alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A user, through some client.
    User(i64),
    /// A client acting for itself (client credentials).
    Client(String),
}

/// A verified bearer token.
///
/// Extracting it checks the signature by a published key with that key's algorithm,
/// `typ: at+jwt`, the issuer byte for byte, the audience, and expiry with 60 s of leeway. It
/// also checks that the stored row exists and is not revoked and that its signing key is not
/// retired. Its client (except for personal access tokens) must exist and not be revoked, and
/// its user, if any, must exist and not be disabled.
#[derive(Debug, Clone)]
pub struct Bearer {
    /// Who the token speaks for.
    pub principal: Principal,
    /// The token's `jti` and row id.
    pub token_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

impl Bearer {
    /// Checks whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }

    /// Requires every scope in `scopes`.
    ///
    /// # Errors
    ///
    /// [`BearerError::InsufficientScope`] naming the scopes when one is missing. An empty
    /// grant never satisfies a non-empty requirement.
    pub fn require_all(&self, scopes: &[&str]) -> Result<(), BearerError> {
        require_all_of(&self.scopes, scopes)
    }

    /// Requires at least one scope in `scopes`.
    ///
    /// # Errors
    ///
    /// [`BearerError::InsufficientScope`] naming the scopes when none is granted.
    pub fn require_any(&self, scopes: &[&str]) -> Result<(), BearerError> {
        require_any_of(&self.scopes, scopes)
    }

    /// Returns the user the token speaks for.
    ///
    /// # Errors
    ///
    /// [`BearerError::UserRequired`] when the token speaks for a client.
    pub fn user_id(&self) -> Result<i64, BearerError> {
        match self.principal {
            Principal::User(user_id) => Ok(user_id),
            Principal::Client(_) => Err(BearerError::UserRequired),
        }
    }
}

/// Requires every scope of `required` in `granted`, for [`Bearer`] and [`VerifiedToken`].
fn require_all_of(granted: &[String], required: &[&str]) -> Result<(), BearerError> {
    let has = |scope: &&str| granted.iter().any(|item| item == scope);
    if required.iter().all(has) {
        Ok(())
    } else {
        Err(BearerError::InsufficientScope(required.join(" ")))
    }
}

/// Requires at least one scope of `required` in `granted`.
fn require_any_of(granted: &[String], required: &[&str]) -> Result<(), BearerError> {
    let has = |scope: &&str| granted.iter().any(|item| item == scope);
    if required.iter().any(has) {
        Ok(())
    } else {
        Err(BearerError::InsufficientScope(required.join(" ")))
    }
}

/// Why a request was refused by the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// No credentials: 401 with a bare `WWW-Authenticate: Bearer`.
    Missing,
    /// A malformed request, such as two Authorization headers: 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// The token is not valid: 401 `invalid_token`.
    InvalidToken(&'static str),
    /// The token lacks a scope: 403 `insufficient_scope` naming the required scopes.
    InsufficientScope(String),
    /// The endpoint needs a user and the token speaks for a client: 403 `insufficient_scope`
    /// without a scope to name, since no scope would make a client's token a user's.
    UserRequired,
    /// The database could not be asked: 503.
    Unavailable,
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let (status, challenge, code, description) = match &self {
            BearerError::Missing => {
                let body = serde_json::json!({
                    "error": "unauthenticated",
                    "message": "an access token is required",
                });
                let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            BearerError::InvalidRequest(description) => (
                StatusCode::BAD_REQUEST,
                true,
                "invalid_request",
                (*description).to_owned(),
            ),
            BearerError::InvalidToken(description) => (
                StatusCode::UNAUTHORIZED,
                true,
                "invalid_token",
                (*description).to_owned(),
            ),
            BearerError::InsufficientScope(scopes) => (
                StatusCode::FORBIDDEN,
                true,
                "insufficient_scope",
                format!("this request requires the scopes: {scopes}"),
            ),
            BearerError::UserRequired => (
                StatusCode::FORBIDDEN,
                true,
                "insufficient_scope",
                "this endpoint requires a token issued to a user".to_owned(),
            ),
            BearerError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                false,
                "temporarily_unavailable",
                "the token could not be checked; retry shortly".to_owned(),
            ),
        };
        let body = serde_json::json!({"error": code, "error_description": description});
        let mut response = (status, axum::Json(body)).into_response();
        if challenge {
            let mut value = format!("Bearer error=\"{code}\", error_description=\"{description}\"");
            if let BearerError::InsufficientScope(scopes) = &self {
                value.push_str(&format!(", scope=\"{scopes}\""));
            }
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(WWW_AUTHENTICATE, value);
            }
        }
        if matches!(self, BearerError::Unavailable) {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Takes the bearer token from the request headers.
///
/// Returns `Ok(None)` when there are no bearer credentials at all.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| BearerError::InvalidRequest("the Authorization header is not ASCII"))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return if value.eq_ignore_ascii_case("bearer") {
            Err(BearerError::InvalidRequest("the bearer token is empty"))
        } else {
            Ok(None)
        };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(BearerError::InvalidRequest("the bearer token is empty"));
    }
    // RFC 6750 §2.1 b64token.
    let valid = token.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
    });
    if !valid {
        return Err(BearerError::InvalidToken("the access token is malformed"));
    }
    Ok(Some(token))
}

/// A valid access token with its verified claims.
#[derive(Debug, Clone)]
pub(crate) struct ValidatedAccessToken {
    pub bearer: Bearer,
    pub claims: VerifiedClaims,
    /// The user's name and e-mail address, read with the token row; `None` for a client.
    pub user: Option<(String, Option<String>)>,
}

impl Sesame {
    /// Verifies an access token as the [`Bearer`] extractor does.
    ///
    /// # Errors
    ///
    /// [`BearerError::InvalidToken`] for any invalid token, [`BearerError::Unavailable`] when
    /// the database cannot be asked.
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Bearer, BearerError> {
        let audience = self.config().audience.as_str();
        let validated = self.validate_access_token(token, Some(audience)).await?;
        Ok(validated.bearer)
    }

    /// Reads the bearer token from `headers` and applies every check of the [`Bearer`]
    /// extractor, keeping the verified claims and the user read with the token row.
    pub(crate) async fn validate_bearer_header(
        &self,
        headers: &HeaderMap,
    ) -> Result<ValidatedAccessToken, BearerError> {
        let token = bearer_token(headers)?.ok_or(BearerError::Missing)?;
        let audience = self.config().audience.as_str();
        self.validate_access_token(token, Some(audience)).await
    }

    /// Applies every check of [`Sesame::authenticate_bearer`] to an access token. With
    /// `audience` of `None` a token for any audience passes, which introspection needs; the
    /// caller then decides who may see it.
    pub(crate) async fn validate_access_token(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<ValidatedAccessToken, BearerError> {
        let config = self.config();
        let now = self.now();
        let claims = self
            .verifier()
            .verify(token, self.store(), &config.issuer, audience, now)
            .await
            .map_err(|rejection: Rejection| BearerError::InvalidToken(rejection.description()))?;
        let row = match self.lookup_access_token(&claims.jti).await {
            Ok(Some(row)) => row,
            Ok(None) => return Err(BearerError::InvalidToken("the access token is unknown")),
            Err(error) => {
                tracing::error!(%error, "access token lookup failed");
                return Err(BearerError::Unavailable);
            }
        };
        let revoked = BearerError::InvalidToken("the access token was revoked");
        // Only a holder of a signing key can make a token whose claims differ from its row.
        let mismatch = BearerError::InvalidToken("the access token does not match its record");
        if row.revoked || row.key_retired {
            return Err(revoked);
        }
        if row.client_id != claims.client_id {
            return Err(mismatch);
        }
        if !row.is_personal() && row.client_revoked != Some(false) {
            return Err(revoked);
        }
        let principal = match row.user_id {
            Some(user_id) => {
                if row.user_disabled == Some(true) {
                    return Err(BearerError::InvalidToken(
                        "the access token's user is disabled",
                    ));
                }
                if row.user_disabled.is_none() {
                    return Err(revoked);
                }
                if claims.sub != user_id.to_string() {
                    return Err(mismatch);
                }
                Principal::User(user_id)
            }
            None => {
                if claims.sub != row.client_id {
                    return Err(mismatch);
                }
                Principal::Client(row.client_id.clone())
            }
        };
        let bearer = Bearer {
            principal,
            token_id: row.id,
            client_id: row.client_id,
            scopes: row.scopes,
            expires_at: claims.exp,
        };
        let user = row.user_name.map(|name| (name, row.user_email));
        Ok(ValidatedAccessToken {
            bearer,
            claims,
            user,
        })
    }
}

impl<S> FromRequestParts<S> for Bearer
where
    Sesame: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = BearerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let sesame = Sesame::from_ref(state);
        let validated = sesame.validate_bearer_header(&parts.headers).await?;
        Ok(validated.bearer)
    }
}

/// A fixed list of scopes for [`AllScopes`] and [`AnyScope`].
///
/// ```
/// struct ReadWrite;
/// impl sesame::ScopeList for ReadWrite {
///     const SCOPES: &'static [&'static str] = &["read", "write"];
/// }
/// ```
pub trait ScopeList: Send + Sync + 'static {
    /// The scopes.
    const SCOPES: &'static [&'static str];
}

/// A [`Bearer`] that carries every scope of `L`; otherwise 403 `insufficient_scope`.
/// Dereferences to the [`Bearer`].
#[derive(Debug, Clone)]
pub struct AllScopes<L> {
    /// The verified token.
    pub bearer: Bearer,
    scopes: PhantomData<L>,
}

/// A [`Bearer`] that carries at least one scope of `L`; otherwise 403 `insufficient_scope`.
/// Dereferences to the [`Bearer`].
#[derive(Debug, Clone)]
pub struct AnyScope<L> {
    /// The verified token.
    pub bearer: Bearer,
    scopes: PhantomData<L>,
}

impl<L> std::ops::Deref for AllScopes<L> {
    type Target = Bearer;

    fn deref(&self) -> &Bearer {
        &self.bearer
    }
}

impl<L> std::ops::Deref for AnyScope<L> {
    type Target = Bearer;

    fn deref(&self) -> &Bearer {
        &self.bearer
    }
}

impl<S, L> FromRequestParts<S> for AllScopes<L>
where
    Sesame: FromRef<S>,
    S: Send + Sync,
    L: ScopeList,
{
    type Rejection = BearerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bearer = Bearer::from_request_parts(parts, state).await?;
        bearer.require_all(L::SCOPES)?;
        Ok(AllScopes {
            bearer,
            scopes: PhantomData,
        })
    }
}

impl<S, L> FromRequestParts<S> for AnyScope<L>
where
    Sesame: FromRef<S>,
    S: Send + Sync,
    L: ScopeList,
{
    type Rejection = BearerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bearer = Bearer::from_request_parts(parts, state).await?;
        bearer.require_any(L::SCOPES)?;
        Ok(AnyScope {
            bearer,
            scopes: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                AUTHORIZATION,
                HeaderValue::from_str(value).expect("valid header"),
            );
        }
        map
    }

    #[test]
    fn no_header_means_no_credentials() {
        assert_eq!(bearer_token(&headers(&[])), Ok(None));
        assert_eq!(bearer_token(&headers(&["Basic abc"])), Ok(None));
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(
            bearer_token(&headers(&["bearer abc.def.ghi"])),
            Ok(Some("abc.def.ghi"))
        );
    }

    #[test]
    fn duplicate_header_is_invalid_request() {
        let map = headers(&["Bearer a", "Bearer b"]);
        let result = bearer_token(&map);
        assert!(matches!(result, Err(BearerError::InvalidRequest(_))));
    }

    #[test]
    fn empty_token_is_invalid_request() {
        assert!(matches!(
            bearer_token(&headers(&["Bearer "])),
            Err(BearerError::InvalidRequest(_))
        ));
    }

    #[test]
    fn non_b64token_is_invalid_token() {
        let map = headers(&["Bearer a\"b"]);
        let result = bearer_token(&map);
        assert!(matches!(result, Err(BearerError::InvalidToken(_))));
    }

    #[test]
    fn empty_grant_fails_scope_requirement() {
        let bearer = Bearer {
            principal: Principal::User(1),
            token_id: "t".into(),
            client_id: "c".into(),
            scopes: Vec::new(),
            expires_at: 0,
        };
        assert!(bearer.require_all(&["read"]).is_err());
        assert!(bearer.require_any(&["read"]).is_err());
    }
}
