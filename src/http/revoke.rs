//! `POST /oauth/revoke` (RFC 7009).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::form::{OAuthForm, client_credentials, missing_client_credentials};
use super::no_store;
use crate::app::Sesame;
use crate::grant::{GrantError, Params, client_auth};
use crate::token::revocation::{self, SearchOrder};

/// Authenticates the client as the token endpoint does and revokes the token. Returns 200
/// with an empty body for a revoked, unknown or already revoked token, and RFC 6749 §5.2
/// errors otherwise, always with `Cache-Control: no-store`.
pub(crate) async fn revoke(
    State(sesame): State<Sesame>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    match revoke_inner(&sesame, &headers, &params).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(error) => error.into_response(),
    }
}

async fn revoke_inner(
    sesame: &Sesame,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(), GrantError> {
    let credentials =
        client_credentials(headers, params)?.ok_or_else(missing_client_credentials)?;
    let client = client_auth::authenticate(sesame, &credentials).await?;
    let token = params.require("token")?;
    let order = SearchOrder::from_hint(params.get("token_type_hint"));
    revocation::revoke(sesame, &client, token, order).await
}
