//! `GET/POST /oauth/userinfo`: the token's user (OpenID Connect Core §5.3).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiError;
use crate::app::Sesame;
use crate::guard::{Bearer, BearerError};

/// Answers `sub` to any valid user token; `name` with the `profile` scope and `email` with
/// the `email` scope. Client tokens are refused.
pub(crate) async fn userinfo(
    State(sesame): State<Sesame>,
    bearer: Bearer,
) -> Result<Response, ApiError> {
    let user_id = bearer.user_id()?;
    let user =
        sesame
            .store()
            .user(user_id)
            .await?
            .ok_or(ApiError::Bearer(BearerError::InvalidToken(
                "the access token's user is gone",
            )))?;
    let mut claims = json!({"sub": user.id.to_string()});
    if bearer.has_scope("profile") {
        claims["name"] = json!(user.name);
        claims["preferred_username"] = json!(user.name);
    }
    if bearer.has_scope("email")
        && let Some(email) = user.email
    {
        claims["email"] = json!(email);
    }
    Ok(axum::Json(claims).into_response())
}
