//! `GET/POST /oauth/clients`, `PUT/DELETE /oauth/clients/{id}` and
//! `POST /oauth/clients/{id}/secret`: the clients a user registered. Another user's client
//! gets 404, as an unknown one does.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::account::{AccountUser, JsonBytes, RowId, json_body};
use super::{ApiError, no_store};
use crate::app::Sesame;
use crate::store::ClientRecord;

const CREATE_SHAPE: &str =
    r#"{"name": "...", "redirect_uris": ["https://..."], "confidential": true}"#;
const UPDATE_SHAPE: &str = r#"{"name": "...", "redirect_uris": ["https://..."]}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    redirect_uris: Vec<String>,
    #[serde(default = "confidential_by_default")]
    confidential: bool,
}

fn confidential_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRequest {
    name: String,
    redirect_uris: Vec<String>,
}

/// Renders the client as the API shows it, never with its secret.
fn client_json(client: &ClientRecord) -> Value {
    json!({
        "id": client.id,
        "name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "confidential": client.is_confidential(),
        "first_party": client.first_party,
        "created_at": client.created_at,
    })
}

/// Lists the user's unrevoked clients.
pub(crate) async fn list(
    State(sesame): State<Sesame>,
    account: AccountUser,
) -> Result<Response, ApiError> {
    let clients = sesame.store().user_clients(account.user_id).await?;
    let body: Vec<Value> = clients.iter().map(client_json).collect();
    Ok(axum::Json(body).into_response())
}

/// Registers a client; a confidential client's secret is in this response only.
pub(crate) async fn create(
    State(sesame): State<Sesame>,
    account: AccountUser,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let request: CreateRequest = json_body(&body, CREATE_SHAPE)?;
    let (client, secret) = sesame
        .create_user_client(
            account.user_id,
            &request.name,
            &request.redirect_uris,
            request.confidential,
        )
        .await?;
    let mut body = client_json(&client);
    body["secret"] = json!(secret.as_ref().map(|secret| secret.expose()));
    Ok(no_store(
        (StatusCode::CREATED, axum::Json(body)).into_response(),
    ))
}

/// Replaces the name and redirect URIs of one of the user's clients.
pub(crate) async fn update(
    State(sesame): State<Sesame>,
    account: AccountUser,
    RowId(id): RowId,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let request: UpdateRequest = json_body(&body, UPDATE_SHAPE)?;
    let client = sesame
        .update_user_client(account.user_id, &id, &request.name, &request.redirect_uris)
        .await?;
    Ok(axum::Json(client_json(&client)).into_response())
}

/// Revokes one of the user's clients; its tokens stop working.
pub(crate) async fn revoke(
    State(sesame): State<Sesame>,
    account: AccountUser,
    RowId(id): RowId,
) -> Result<Response, ApiError> {
    sesame.revoke_user_client(account.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Gives one of the user's confidential clients a new secret, shown in this response only.
pub(crate) async fn replace_secret(
    State(sesame): State<Sesame>,
    account: AccountUser,
    RowId(id): RowId,
) -> Result<Response, ApiError> {
    let (client, secret) = sesame
        .replace_user_client_secret(account.user_id, &id)
        .await?;
    let mut body = client_json(&client);
    body["secret"] = json!(secret.expose());
    Ok(no_store(axum::Json(body).into_response()))
}
