//! `POST /oauth/introspect` (RFC 7662).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::form::{OAuthForm, client_credentials, missing_client_credentials};
use super::no_store;
use crate::app::Sesame;
use crate::grant::{GrantError, Params, client_auth};
use crate::token::introspection;
use crate::token::revocation::SearchOrder;

/// Authenticates a confidential client and describes the token, with `Cache-Control:
/// no-store` and `Pragma: no-cache` on every response.
pub(crate) async fn introspect(
    State(sesame): State<Sesame>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    match introspect_inner(&sesame, &headers, &params).await {
        Ok(answer) => no_store(axum::Json(answer).into_response()),
        Err(error) => error.into_response(),
    }
}

async fn introspect_inner(
    sesame: &Sesame,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Value, GrantError> {
    let credentials =
        client_credentials(headers, params)?.ok_or_else(missing_client_credentials)?;
    let client = client_auth::authenticate(sesame, &credentials).await?;
    let token = params.require("token")?;
    let order = SearchOrder::from_hint(params.get("token_type_hint"));
    introspection::introspect(sesame, &client, token, order).await
}
