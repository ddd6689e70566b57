//! `GET/POST /oauth/userinfo`: the token's user (OpenID Connect Core §5.3).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiError;
use crate::app::Sesame;
use crate::guard::BearerError;

/// Answers `sub` to any valid user token; `name` with the `profile` scope and `email` with
/// the `email` scope. Client tokens are refused.
pub(crate) async fn userinfo(
    State(sesame): State<Sesame>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The same checks as the `Bearer` extractor; the token row also carries the user's name
    // and e-mail address, so no second query is needed.
    let validated = sesame.validate_bearer_header(&headers).await?;
    let user_id = validated.bearer.user_id()?;
    let (name, email) = validated
        .user
        .ok_or(ApiError::Bearer(BearerError::InvalidToken(
            "the access token's user is gone",
        )))?;
    let mut claims = json!({"sub": user_id.to_string()});
    if validated.bearer.has_scope("profile") {
        claims["name"] = json!(name);
        claims["preferred_username"] = json!(name);
    }
    if validated.bearer.has_scope("email")
        && let Some(email) = email
    {
        claims["email"] = json!(email);
    }
    Ok(axum::Json(claims).into_response())
}
