//! `GET/POST /oauth/personal-access-tokens` and `DELETE /oauth/personal-access-tokens/{id}`:
//! the signed-in user's personal access tokens, in Passport's JSON shape.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::account::{AccountUser, JsonBytes, RowId};
use super::{ApiError, no_store};
use crate::app::Sesame;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Lists the user's unrevoked, unexpired personal access tokens.
pub(crate) async fn list(
    State(sesame): State<Sesame>,
    account: AccountUser,
) -> Result<Response, ApiError> {
    let tokens = sesame
        .store()
        .personal_tokens(account.user_id, sesame.now())
        .await?;
    Ok(axum::Json(tokens).into_response())
}

/// Creates a personal access token with at most the scopes the user may grant. Returns
/// `{"accessToken": ..., "token": {...}}` as Passport does; the token is shown only here.
pub(crate) async fn create(
    State(sesame): State<Sesame>,
    account: AccountUser,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let request: CreateRequest =
        super::account::json_body(&body, "{\"name\": ..., \"scopes\": [...]}")?;
    if let Some(unknown) = request
        .scopes
        .iter()
        .find(|scope| sesame.config().scope_description(scope).is_none())
    {
        return Err(ApiError::Status(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!("unknown scope {unknown:?}"),
        ));
    }
    account.check_grantable(&request.scopes)?;
    let scopes: Vec<&str> = request.scopes.iter().map(String::as_str).collect();
    let created = sesame
        .create_token(account.user_id, &request.name, &scopes)
        .await?;
    let body = json!({"accessToken": created.access_token, "token": created.token});
    Ok(no_store(
        (StatusCode::CREATED, axum::Json(body)).into_response(),
    ))
}

/// Revokes one of the user's personal access tokens; 404 if the user has no such token.
pub(crate) async fn revoke(
    State(sesame): State<Sesame>,
    account: AccountUser,
    RowId(id): RowId,
) -> Result<Response, ApiError> {
    let user_id = account.user_id;
    if sesame
        .store()
        .revoke_personal_token(&id, user_id, sesame.now())
        .await?
    {
        tracing::info!(user_id, token_id = %id, "revoked personal access token");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::Status(
            StatusCode::NOT_FOUND,
            "not_found",
            "no personal access token with that id".into(),
        ))
    }
}
