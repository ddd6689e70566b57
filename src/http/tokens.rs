//! `GET /oauth/tokens` and `DELETE /oauth/tokens/{id}`: the access tokens the user's authorized
//! applications hold. Personal access tokens have their own endpoints.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiError;
use super::account::{AccountUser, RowId};
use crate::app::Sesame;

/// Lists the user's unrevoked, unexpired application tokens with their client's id and name.
pub(crate) async fn list(
    State(sesame): State<Sesame>,
    account: AccountUser,
) -> Result<Response, ApiError> {
    let tokens = sesame
        .store()
        .authorized_tokens(account.user_id, sesame.now())
        .await?;
    let body: Vec<Value> = tokens
        .iter()
        .map(|token| {
            json!({
                "id": token.id,
                "client_id": token.client_id,
                "client": {"id": token.client_id, "name": token.client_name},
                "scopes": token.scopes,
                "created_at": token.created_at,
                "expires_at": token.expires_at,
            })
        })
        .collect();
    Ok(axum::Json(body).into_response())
}

/// Revokes one of the user's application tokens and the refresh token family issued with it.
pub(crate) async fn revoke(
    State(sesame): State<Sesame>,
    account: AccountUser,
    RowId(id): RowId,
) -> Result<Response, ApiError> {
    let user_id = account.user_id;
    if sesame
        .store()
        .revoke_authorized_token(user_id, &id, sesame.now())
        .await?
    {
        tracing::info!(user_id, token_id = %id, "user revoked an application token");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::Status(
            StatusCode::NOT_FOUND,
            "not_found",
            "no application token with that id".into(),
        ))
    }
}
